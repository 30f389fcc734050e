"""Parameter-budget matching for the ``budget`` command: the core lives with the models
(:mod:`convlab.models.budget`, which the runner's ``match_params`` uses too); this module
re-exports it and renders the candidates."""

from __future__ import annotations

from typing import Any

from convlab.models.budget import (  # noqa: F401 - re-exported for the analysis API
    ALIASES,
    BudgetError,
    Candidate,
    apply_vary,
    count_params,
    default_candidates,
    match_params,
)


def render_candidates(cands: list[Candidate], vary: str) -> Any:
    """A rich table ordered by value, the best candidate marked."""
    from rich.table import Table

    best = cands[0]
    t = Table(vary, "params", "target", "difference", "relative", "",
              title=f"target {best.target:,} parameters")
    for c in sorted(cands, key=lambda c: c.value):
        t.add_row(str(c.value), f"{c.params:,}", f"{c.target:,}", f"{c.diff:+,}",
                  f"{c.rel_diff:+.2%}", "<- best" if c is best else "")
    return t
