"""Analyses of a study's trained runs that go into its report, after the groups ran.

One kind today: the equivariance figures of a trained network (Goodfellow et al., "Deep
Learning", 9.2). A test image is shifted and rotated; each layer's feature maps of the
transformed image are transformed back and compared with those of the original (see
``analysis/equivariance.py``). Convolution commutes with shifts, so on units away from
the border the shift is undone exactly up to the first layer whose jump does not divide
it; a rotation is not undone by learned kernels, and a flattening FC head is not
shift-invariant. The section's sentence says which of these the numbers show.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from convlab.report import findings as fd
from convlab.report.report import Image, Section, Table

if TYPE_CHECKING:
    from convlab.analysis.equivariance import EquivarianceResult, LayerEquivariance
    from convlab.studies import EquivarianceProbe

EXACT = 1e-5  # a relative error below this is float64 round-off: the transform commutes


def _error(r: LayerEquivariance) -> float | None:
    """The error that matters: away from the border when that was measurable."""
    return r.interior if r.interior is not None else r.error


def _is_map(r: LayerEquivariance) -> bool:
    return r.error is not None and r.feature_map


def _range(values: Sequence[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:.2g}" if f"{lo:.2g}" == f"{hi:.2g}" else f"{lo:.2g} to {hi:.2g}"


def equivariance_finding(shift: EquivarianceResult, rotate: EquivarianceResult) -> fd.Finding:
    """One sentence from the two per-layer tables (pure: tested on hand-made rows)."""
    parts = []
    maps = [r for r in shift.layers if _is_map(r)]
    errs = [_error(r) for r in maps]
    exact = [r for r, e in zip(maps, errs, strict=True) if e is not None and e < EXACT]
    amount = f"{int(shift.transform.amount)} pixels"
    if maps and len(exact) == len(maps):
        worst = max(e for e in errs if e is not None)
        parts.append(f"shifting the input by {amount} shifts the feature maps of all "
                     f"{len(maps)} layers with it (interior error "
                     f"{'0' if worst == 0 else f'at most {worst:.1g}'})")
    elif maps:
        first = next(r for r, e in zip(maps, errs, strict=True) if e is None or e >= EXACT)
        why = f"its jump {first.jump} does not divide the shift; " \
            if first.jump and int(shift.transform.amount) % first.jump else ""
        parts.append(f"shifting the input by {amount} shifts the maps of {len(exact)} of "
                     f"{len(maps)} layers exactly; from {first.layer} on it does not "
                     f"({why}error {_error(first) or float('nan'):.2g})")
    heads = [r for r in shift.layers if not _is_map(r) and r.error is not None]
    if heads:
        out = heads[-1]
        assert out.error is not None
        parts.append(f"the output scores change by {100 * out.error:.0f}% "
                     f"({'not ' if out.error >= EXACT else ''}shift-invariant)")
    rot = [(r, _error(r)) for r in rotate.layers if _is_map(r)]
    rot_errs = [e for _, e in rot if e is not None and math.isfinite(e)]
    angle = f"{rotate.transform.amount:g} degrees"
    if rot_errs:
        undone = [r for r, e in rot if e is not None and e < EXACT]
        if undone:
            parts.append(f"a rotation by {angle} is undone at {len(undone)} of {len(rot)} "
                         f"layers")
        else:
            parts.append(f"a rotation by {angle} is undone at no layer (interior errors "
                         f"{_range(rot_errs)}): the learned kernels are not "
                         f"rotation-symmetric")
    text = "; ".join(parts)
    data = {"shift_exact": len(exact), "maps": len(maps),
            "rotate_errors": rot_errs, "output_change": heads[-1].error if heads else None}
    return fd.Finding(text[:1].upper() + text[1:] + "." if text else "No feature maps.",
                      data=data)


def _table(shift: EquivarianceResult, rotate: EquivarianceResult) -> Table:
    def cell(r: LayerEquivariance) -> str:
        e = _error(r)
        return "" if e is None else f"{e:.2e}"

    rows = [[a.layer, "x".join(map(str, a.shape)), "" if a.jump is None else str(a.jump),
             cell(a), cell(b)] for a, b in zip(shift.layers, rotate.layers, strict=True)]
    header = ["layer", "output", "jump", shift.transform.describe(),
              rotate.transform.describe()]
    return Table(header, rows, [False, False, True, True, True],
                 "Relative error per layer between F(x) and the transform undone on "
                 "F(T x), away from the border where measurable; for the output scores, "
                 "the change itself.")


def probe_section(probe: EquivarianceProbe, row: dict[str, Any], fig_dir: Path) -> Section:
    """The probe's report section for the trial whose sweep-index ``row`` is given; one
    that cannot run (the trial did not complete, its folder is unreadable) says why."""
    from convlab.errors import ConvlabError

    if not row.get("run") or row.get("status") != "completed":
        status = row.get("status", "missing")
        return Section(_title(probe), fd.Finding(f"Not measured: the trial is {status}.",
                                                 "warning"))
    try:
        return equivariance_section(probe, Path(row["run"]), fig_dir)
    except ConvlabError as e:
        return Section(_title(probe), fd.Finding(f"Not measured: {e}", "warning"))


def _title(probe: EquivarianceProbe) -> str:
    return f"Equivariance of the trained {probe.run} ({probe.group})"


def equivariance_section(probe: EquivarianceProbe, run_path: Path, fig_dir: Path) -> Section:
    """Run the probe on the trained run and draw its figures into ``fig_dir``."""
    from convlab.analysis import equivariance as E
    from convlab.analysis.viz import open_run

    ctx = open_run(run_path)
    image, _ = ctx.test_image(probe.index)
    x = ctx.transform(image[None])
    results = []
    blocks: list[Table | Image] = []
    for kind, amount in (("shift", float(probe.shift)), ("rotate", float(probe.rotate))):
        result = E.equivariance_experiment(ctx.model, x, E.Transform(kind, amount))
        paths = E.save_figures(result, fig_dir / kind)
        results.append(result)
        pngs = [p for p in paths if p.suffix == ".png"]
        # the input, the first layer and the last feature map: where it starts and ends
        shown = [pngs[0], *pngs[1:2], *pngs[-1:]] if len(pngs) > 2 else pngs
        for p in dict.fromkeys(shown):
            what = "the input and its transform" if p == pngs[0] else \
                f"layer {p.stem.split('_', 1)[1]}: F(x), T^-1 F(T x) and their difference"
            blocks.append(Image(f"{kind}-{p.stem}", f"{result.transform.describe()}: {what}.",
                                p))
    shift, rotate = results
    blocks.insert(0, _table(shift, rotate))
    return Section(_title(probe), equivariance_finding(shift, rotate),
                   blocks)  # type: ignore[arg-type]
