"""Shared pydantic pieces of every settings model: the strict base and the common
choices, and the one formatter of validation errors (one line naming each key).

A leaf module: config, models and every registry's settings models use it, and it
imports nothing of convlab's (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

Activation = Literal["relu", "leaky_relu", "tanh", "silu", "gelu", "identity"]
Init = Literal["default", "kaiming", "xavier", "dirac"]
# what a shift, crop or rotation brings in at the border (augmentation and TTA alike)
Fill = Literal["zeros", "reflect"]


class Strict(BaseModel):
    """Frozen, unknown keys refused: the base of every config section."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-"))


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    """One line per problem, joined: ``source: key.path: message (got value)``."""
    parts = []
    for e in err.errors():
        loc = _format_loc(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = e.get("input")
        shown = "" if e["type"] in ("extra_forbidden", "value_error") or isinstance(
            got, dict
        ) else f" (got {got!r})"
        parts.append(f"{loc}: {msg}{shown}" if loc else f"{msg}{shown}")
    return f"{source}: " + "; ".join(parts)
