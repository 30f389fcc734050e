"""Parameter-budget matching: the setting of one free dimension that meets a target count.

The counting core lives beside the models it counts, so the runner (``match_params``)
and the ``budget`` command share it without the runner importing the analysis layer.

Fair comparisons of architectures (a CNN against an MLP, a deep net against a wide one)
hold the number of parameters fixed. :func:`match_params` varies one setting of a base
model (MLP width at fixed depth, MLP depth at fixed width, a CNN kernel size, the
channels of every stage scaled together, or any integer setting by its dotted key) and
returns the candidates nearest to the target.

Counts come from building the model on PyTorch's ``meta`` device: exact for any
builder, no memory for the weights, a few milliseconds each. Widths, channels and
depths give counts that grow with the value, so a binary search finds the crossing in
~log2(range) builds; other keys are enumerated.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from convlab.errors import ConvlabError, ModelError


class BudgetError(ModelError):
    """A budget that cannot be matched: a bad key, an empty range, no model that builds."""



# Keys with a built-in meaning (beyond plain dotted paths into the settings).
ALIASES = {
    "hidden_width": "every hidden layer of an MLP gets this width (depth fixed)",
    "width": "same as hidden_width for an MLP, stages.*.channels for a CNN",
    "depth": "MLP: this many hidden layers of the base width; CNN: this many stages "
             "(the last stage repeated)",
    "stages.*.channels": "the first stage gets this many channels, the others scale with it",
    "stages.*.kernel": "every stage gets this kernel size",
}


@dataclass(frozen=True)
class Candidate:
    """One setting of the free dimension and the parameter count it gives."""

    value: int
    params: int
    target: int
    settings: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def diff(self) -> int:
        return self.params - self.target

    @property
    def rel_diff(self) -> float:
        return self.diff / self.target


def _set_path(tree: Any, keys: list[str], value: Any, vary: str) -> None:
    node = tree
    for i, k in enumerate(keys):
        last = i == len(keys) - 1
        if k == "*":
            if not isinstance(node, list):
                raise BudgetError(f"--vary {vary}: '*' needs a list at {'.'.join(keys[:i])}")
            for item in node:
                _set_path(item, keys[i + 1:], value, vary)
            return
        if isinstance(node, list):
            if not k.isdigit() or int(k) >= len(node):
                raise BudgetError(f"--vary {vary}: {'.'.join(keys[:i]) or 'the list'} has "
                                    f"{len(node)} items; {k!r} is not an index 0..{len(node) - 1}")
            k2: Any = int(k)
        elif isinstance(node, dict):
            if k not in node:
                raise BudgetError(f"--vary {vary}: no setting {k!r}; expected one of: "
                                    f"{', '.join(node)} (or {', '.join(ALIASES)})")
            k2 = k
        else:
            raise BudgetError(f"--vary {vary}: {'.'.join(keys[:i])} is a value, not a section")
        if last:
            if isinstance(node[k2], bool) or not isinstance(node[k2], int | None):
                raise BudgetError(f"--vary {vary}: the setting is {node[k2]!r}, not an integer")
            node[k2] = value
        else:
            node = node[k2]


def apply_vary(name: str, settings: dict[str, Any], vary: str, value: int) -> dict[str, Any]:
    """The settings with the free dimension ``vary`` set to ``value`` (a new dict)."""
    s = copy.deepcopy(settings)
    is_mlp = "hidden" in s and "stages" not in s
    if vary in ("hidden_width", "width") and is_mlp:
        if not s["hidden"]:
            raise BudgetError(f"--vary {vary}: the base MLP has no hidden layer; "
                                f"give it some (--set hidden=[256,256]) or vary depth")
        s["hidden"] = [value] * len(s["hidden"])
    elif vary == "depth" and is_mlp:
        width = s["hidden"][0] if s["hidden"] else 256
        s["hidden"] = [width] * value
    elif vary == "depth" and "stages" in s:
        if value < 1:
            raise BudgetError("--vary depth: a CNN needs at least one stage")
        stages = s["stages"]
        s["stages"] = (stages + [stages[-1]] * value)[:value]
    elif vary in ("width", "stages.*.channels") and "stages" in s:
        first = s["stages"][0]["channels"]  # scale every stage with the first
        for st in s["stages"]:
            st["channels"] = max(1, round(st["channels"] * value / first))
    elif vary == "hidden_width":
        raise BudgetError(f"--vary hidden_width needs an MLP; model {name!r} has no 'hidden'")
    else:
        _set_path(s, vary.split("."), value, vary)
    return s


def count_params(
    name: str, settings: dict[str, Any], in_shape: tuple[int, int, int], num_classes: int
) -> int:
    """Exact parameter count of model ``name`` with ``settings``, built on the meta device."""
    from convlab.models import build

    with torch.device("meta"):
        model = build(name, settings, in_shape, num_classes, check=False)
    return sum(p.numel() for p in model.parameters())


def _monotone(vary: str, settings: dict[str, Any]) -> bool:
    """Counts that only grow with the value: widths, channels, and the depth of an MLP.

    (Not a CNN's depth: each stage also pools, shrinking the flattened head.)
    """
    if vary == "depth":
        return "stages" not in settings
    last = vary.split(".")[-1]
    return vary in ("hidden_width", "width", "stages.*.channels") or last in (
        "channels", "hidden", "width") or "hidden" in vary.split(".")


def default_candidates(vary: str, settings: dict[str, Any]) -> range:
    """Sensible ranges: widths 1..8192, MLP depth 0..128, CNN depth 1..16, kernels 1..15."""
    if vary == "depth":
        return range(1, 17) if "stages" in settings else range(0, 129)
    if vary.split(".")[-1] in ("kernel", "dilation", "stride", "pool_size", "convs"):
        return range(1, 16)
    if _monotone(vary, settings):
        return range(1, 8193)
    return range(1, 257)


def match_params(
    base_model_cfg: dict[str, Any], vary: str, target: int, in_shape: tuple[int, int, int],
    num_classes: int, candidates: Sequence[int] | None = None, keep: int = 3,
) -> list[Candidate]:
    """Candidates for ``vary`` whose models come closest to ``target`` parameters.

    ``base_model_cfg`` is a model config mapping (``{"name": "mlp", "hidden": [256]}``);
    ``vary`` a key of :data:`ALIASES` or a dotted settings path (``stages.0.kernel``,
    ``head.hidden.0``). Returns the best first, then the next nearest, at most
    ``2 * keep + 1``; settings that do not build (a kernel too large for the input) are
    skipped.
    """
    from convlab.models import resolve_settings

    if target < 1:
        raise BudgetError(f"target {target}: expected a positive parameter count")
    cfg = dict(base_model_cfg)
    name = cfg.pop("name", "cnn")
    try:
        base = resolve_settings(name, cfg)
    except ValueError as e:
        raise BudgetError(str(e)) from None
    values = list(candidates if candidates is not None else default_candidates(vary, base))
    if not values:
        raise BudgetError(f"--vary {vary}: the range of candidates is empty")
    cache: dict[int, Candidate | None] = {}

    def evaluate(v: int) -> Candidate | None:
        if v not in cache:
            s = apply_vary(name, base, vary, v)
            try:
                cache[v] = Candidate(v, count_params(name, s, in_shape, num_classes), target, s)
            except (ConvlabError, ValueError):
                cache[v] = None  # this setting does not build (e.g. too deep for the input)
        return cache[v]

    evaluate(values[0])  # an error in the key itself surfaces here, once
    if _monotone(vary, base) and len(values) > 4 * keep + 8 and values == sorted(values):
        lo, hi = 0, len(values) - 1  # first index whose count reaches the target
        while lo < hi:
            mid = (lo + hi) // 2
            c = evaluate(values[mid])
            if c is not None and c.params >= target:
                hi = mid
            else:
                lo = mid + 1
        window = values[max(0, lo - keep - 1): lo + keep + 1]
    else:
        window = values
    found = [c for v in window if (c := evaluate(v)) is not None]
    if not found:
        raise BudgetError(f"--vary {vary}: no candidate in {values[0]}..{values[-1]} gives a "
                            f"model that builds for input {'x'.join(map(str, in_shape))}")
    found.sort(key=lambda c: (abs(c.diff), c.value))
    return found[: 2 * keep + 1]


