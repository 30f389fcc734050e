"""Analysis commands: ``summary``, ``calc``, ``probe``, ``budget``.

Thin by design: parse the options, call a pure function of ``convlab.analysis``, print
what it returns. Bad input raises an ``AnalysisError`` (a ``ConvlabError``), which
``convlab.cli.main`` turns into one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

calc_app = typer.Typer(help="Layer arithmetic: output sizes, receptive fields, convolution "
                       "by hand.", no_args_is_help=True)
probe_app = typer.Typer(help="Numerical probes: linearity, equivariance, invariance; the "
                        "equivariance experiment; linearization.", no_args_is_help=True)

Target = Annotated[str, typer.Argument(
    metavar="MODEL_OR_EXPERIMENT",
    help="A registered model (see 'convlab models ls') or an experiment file / bundled name.",
)]
InputOpt = Annotated[str | None, typer.Option(
    "--input", "-i", metavar="CxHxW",
    help="Input shape [default: 1x28x28 for a model, the dataset's for an experiment].",
)]
ClassesOpt = Annotated[int | None, typer.Option(
    "--classes", help="Number of classes [default: 10 for a model, the dataset's for an "
    "experiment].",
)]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", "-s", metavar="KEY=VALUE",
    help="Override a setting (repeatable): model settings for a model name "
    "(stages.0.kernel=5), experiment keys for an experiment (model.stages.0.kernel=5).",
)]


class Format(str, Enum):
    table = "table"
    md = "md"
    csv = "csv"
    json = "json"


class Boundary(str, Enum):
    circular = "circular"
    zero = "zero"


class LayerType(str, Enum):
    conv = "conv"
    maxpool = "maxpool"
    avgpool = "avgpool"


class Unknown(str, Enum):
    kernel = "kernel"
    stride = "stride"
    padding = "padding"
    dilation = "dilation"


def _console() -> Any:
    """Rich output: the terminal's width, or a wide page when piped (tables stay whole)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True,
                   width=None if sys.stdout.isatty() else 200)


def _resolve(target: str, input_: str | None, classes: int | None,
             set_: list[str] | None, *, architecture: bool = False) -> Any:
    """The model a command analyses; ``architecture``: pretrained weights are not needed
    (shapes, parameters, receptive fields), so none are loaded or downloaded."""
    from convlab.analysis.common import is_model_name, parse_shape, resolve_model

    shape = parse_shape(input_) if input_ else None
    if (Path(target) / "summary.json").is_file():
        return _resolve_run(target, shape, classes, set_)
    overrides = list(set_ or [])
    if architecture and _pretrained(target, overrides):
        overrides.append("weights=none" if is_model_name(target) else "model.weights=none")
    return resolve_model(target, shape, classes, overrides)


def _pretrained(target: str, overrides: list[str]) -> bool:
    """Whether the model of ``target`` would load pretrained weights when built."""
    from convlab.analysis.common import is_model_name, model_settings
    from convlab.config import load_config
    from convlab.errors import ConvlabError

    try:
        settings = (model_settings(target, overrides) if is_model_name(target)
                    else load_config(target, overrides).model.settings)
    except (ConvlabError, ValueError):
        return False  # resolve_model reports the problem itself
    return settings.get("weights", "none") not in ("none", None)


def _resolve_run(target: str, shape: tuple[int, int, int] | None, classes: int | None,
                 set_: list[str] | None) -> Any:
    """A run folder's trained model; --input applies when the model can take it (a fully
    convolutional run at another size), --classes and --set cannot change trained weights."""
    import dataclasses

    from convlab.analysis.common import AnalysisError, resolve_model
    from convlab.errors import ConvlabError
    from convlab.models import check_shapes

    if set_:
        raise AnalysisError(f"--set {set_[0]}: a run folder's trained model cannot be "
                            f"changed; analyse its experiment instead: "
                            f"{Path(target) / 'config.yaml'} --set ...")
    r = resolve_model(target)
    if classes is not None and classes != r.num_classes:
        raise AnalysisError(f"--classes {classes}: run {target} was trained for "
                            f"{r.num_classes} classes")
    if shape is None or shape == r.in_shape:
        return r
    if shape[0] != r.in_shape[0]:
        raise AnalysisError(f"--input {'x'.join(map(str, shape))}: run {target} takes "
                            f"{r.in_shape[0]}-channel images")
    try:
        check_shapes(r.model, shape)
    except ConvlabError as e:
        raise AnalysisError(f"--input {'x'.join(map(str, shape))}: run {target}'s model "
                            f"(trained at {'x'.join(map(str, r.in_shape))}) cannot take it: "
                            f"{str(e).split(': ', 1)[-1]}") from None
    return dataclasses.replace(r, in_shape=shape)


# ------------------------------------------------------------------ summary


def summary(
    target: Target,
    input_: InputOpt = None,
    classes: ClassesOpt = None,
    set_: SetOpt = None,
    format_: Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
    = Format.table,
) -> None:
    """One row per layer: output shape, weights, biases, parameters, receptive field and
    jump, multiply-accumulates; for each conv also the weights and biases a fully connected
    layer of the same input and output would need (fc_weights = x*y*z * x'*y'*z').

    Example: convlab summary pw1 --input 3x32x32
    """
    from convlab.analysis import summary as S

    r = _resolve(target, input_, classes, set_, architecture=True)
    s = S.summarize(r.model, r.in_shape, r.label)
    if format_ is Format.table:
        con = _console()
        con.print(S.render_table(s, con.width if sys.stdout.isatty() else None))
    else:
        render = {Format.md: S.render_markdown, Format.csv: S.render_csv,
                  Format.json: S.render_json}[format_]
        sys.stdout.write(render(s))


# ------------------------------------------------------------------ calc outsize

CHAIN_HELP = """Layers separated by ';', e.g. "conv k5 p2; pool k2 s2 ceil; conv k3 d2".
Each layer: a kind (conv, pool = maxpool, maxpool, avgpool, pad) then tokens in any order:
kN kernel (kHxW rectangular), sN stride (default 1; k for pooling), pN zero padding on
each side (pHxW), psame or pvalid, dN dilation (conv, maxpool), ceil (pooling's
ceil_mode)."""


@calc_app.command("outsize")
def calc_outsize(
    input_: Annotated[str, typer.Option("--input", "-i", metavar="N|HxW",
                                        help="Input size: 28 or 28x32.")],
    chain: Annotated[str | None, typer.Option("--chain", "-c", help=CHAIN_HELP)] = None,
    layer: Annotated[list[str] | None, typer.Option(
        "--layer", "-l", help="One layer in the chain syntax (repeatable, in order).")] = None,
    kernel: Annotated[str | None, typer.Option("--kernel", "-k", metavar="K|KHxKW")] = None,
    stride: Annotated[str | None, typer.Option("--stride", metavar="S|SHxSW",
                                               help="[default: 1; the kernel for pooling]")]
    = None,
    padding: Annotated[str | None, typer.Option(
        "--padding", "-p", metavar="P|PHxPW|same|valid", help="[default: 0]")] = None,
    dilation: Annotated[str | None, typer.Option("--dilation", "-d", metavar="D|DHxDW",
                                                 help="[default: 1]")] = None,
    type_: Annotated[LayerType, typer.Option("--type", "-t", help="One layer's kind.")]
    = LayerType.conv,
    ceil: Annotated[bool, typer.Option("--ceil", help="Pooling with ceil_mode=True.")]
    = False,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="N|HxW",
        help="Wanted output size: find the setting that is not given (or --solve).")] = None,
    solve: Annotated[Unknown | None, typer.Option(
        "--solve", help="Which setting to solve for, given --input and --output [default: "
        "the first of kernel, stride, padding, dilation not given].")] = None,
) -> None:
    """Output size of conv / pooling layers: n_out = floor((n + 2p - d(k-1) - 1)/s) + 1.

    \b
    One layer:  convlab calc outsize -i 28 --kernel 5 --padding 2
    'same':     convlab calc outsize -i 28 --kernel 4 --padding same
    A chain:    convlab calc outsize -i 28x32 -c "conv k5 p2; pool k3 s2 ceil"
    Repeated:   convlab calc outsize -i 28 --layer "conv k5" --layer "pool k2"
    Inverse:    convlab calc outsize -i 28 -o 14 --kernel 2   (solves the stride)
    Named:      convlab calc outsize -i 10 -o 14 --solve padding -k 3
    (The inverse lists every integer solution, or exits 2 if none.)
    """
    from convlab.analysis import outsize as O
    from convlab.analysis.common import AnalysisError, parse_hw

    hw = parse_hw(input_)
    if solve is not None or output is not None:
        if output is None:
            raise AnalysisError("--solve needs the wanted size: --output N (or HxW)")
        if chain or layer:
            raise AnalysisError("the inverse works on one layer; leave out --chain and --layer")
        if ceil:
            raise AnalysisError("the inverse is for floor mode; leave out --ceil")
        given = {"kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation}
        unknown = solve.value if solve is not None else _missing(given, type_.value)
        if given[unknown] is not None:
            raise AnalysisError(f"--solve {unknown} and --{unknown} {given[unknown]}: leave "
                                f"out the one to solve for")
        _solve(hw, parse_hw(output, "--output"), unknown, kernel, stride, padding or "0",
               dilation or "1", type_.value, assumed=solve is None)
        return
    if chain and layer:
        raise AnalysisError("give the layers either with --chain or with --layer, not both")
    if chain:
        layers = O.parse_chain(chain)
    elif layer:
        layers = [O.parse_layer(t, i) for i, t in enumerate(layer, 1)]
    elif kernel is not None:
        words = [type_.value, f"k{kernel}"]
        words += [f"s{stride}"] if stride is not None else []
        words += [f"p{padding}"] if padding not in (None, "0") else []
        words += [f"d{dilation}"] if dilation not in (None, "1") else []
        words += ["ceil"] if ceil else []
        layers = [O.parse_layer(" ".join(words))]
    else:
        raise AnalysisError("give a layer: --kernel K (with --stride/--padding/--dilation), "
                            "--chain \"conv k5 p2; pool k2\" or --layer ... (repeatable)")
    result = O.run_chain(hw, layers)
    _print_chain(result)


def _missing(given: dict[str, str | None], kind: str) -> str:
    """The setting to solve for when --solve is not said: the first one not given."""
    from convlab.analysis.common import AnalysisError

    for name in ("kernel", "stride", "padding", "dilation"):
        if given[name] is None:
            return name
    raise AnalysisError(f"--output with kernel, stride, padding and dilation all given: "
                        f"nothing to solve for; leave one out (or drop --output to compute "
                        f"the {kind}'s output)")


def _pt(p: tuple[int, int]) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]}x{p[1]}"


def _arith(step: Any) -> str:
    """The formula with numbers, once per distinct axis."""
    if step.layer.kind == "pad":
        return f"n + 2p = {_pt(step.out_hw)}"
    parts = []
    k, s, d = step.layer.kernel, step.layer.strides, step.layer.dilation
    rnd = "ceil" if step.layer.ceil else "floor"
    for a in (0, 1):
        pb, pa = step.pad[a]
        pad = f"2*{pb}" if pb == pa else f"{pb} + {pa}"
        value = f"{rnd}(({step.in_hw[a]} + {pad} - {d[a]}*({k[a]} - 1) - 1) / {s[a]}) + 1"
        span = d[a] * (k[a] - 1) + 1
        if step.layer.ceil and -(-(step.in_hw[a] + pb + pa - span) // s[a]) + 1 > step.out_hw[a]:
            value += " - 1 (a last window would start in the padding)"
        parts.append(f"{value} = {step.out_hw[a]}")
    return parts[0] if parts[0] == parts[1] else f"H: {parts[0]};  W: {parts[1]}"


def _print_chain(result: Any) -> None:
    """The chain as a table; on a terminal too narrow for the arithmetic column, each
    layer's arithmetic on a line of its own below (a formula is never wrapped)."""
    from rich.table import Table

    rows = []
    for st in result.steps:
        (pt, pb), (pl, pr) = st.pad
        pad = str(pt) if pt == pb == pl == pr else f"t{pt} b{pb} l{pl} r{pr}"
        rows.append([str(st.index), st.layer.describe(), _pt(st.in_hw), pad, _pt(st.out_hw),
                     _pt(st.field.size), _pt(st.field.jump), _arith(st)])
    header = ["#", "layer", "input", "padding", "output", "rf", "jump", "arithmetic"]
    con = _console()
    need = 1 + sum(max(len(h), *(len(r[i]) for r in rows)) + 3 for i, h in enumerate(header))
    below = need > con.width
    t = Table(*header[:-1] if below else header, title=f"input {_pt(result.input_hw)}")
    for r in rows:
        t.add_row(*r[:-1] if below else r)
    con.print(t)
    if below:
        for r in rows:
            con.print(f"{r[0]}: {r[-1]}", markup=False)
    con.print(f"output: {_pt(result.out_hw)}")
    for w in result.warnings:
        con.print(f"warning: {w}", markup=False)
    for n in result.notes:
        con.print(f"note: {n}", markup=False)


def _solve(hw: tuple[int, int], want: tuple[int, int], unknown: str, kernel: str | None,
           stride: str | None, padding: str, dilation: str, kind: str,
           assumed: bool = False) -> None:
    """Print every integer value of ``unknown`` (per axis when they differ)."""
    from convlab.analysis import outsize as O
    from convlab.analysis.common import AnalysisError, parse_hw

    def pair(v: str | None, what: str) -> tuple[int, int] | None:
        return None if v is None else parse_hw(v, what)

    if padding in ("same", "valid"):
        raise AnalysisError("--solve needs a numeric --padding (or solve for the padding)")
    k, s = pair(kernel, "--kernel"), pair(stride, "--stride")
    p0 = parse_hw(padding, "--padding") if padding != "0" else (0, 0)
    d = parse_hw(dilation, "--dilation")
    axes = [0] if hw[0] == hw[1] and want[0] == want[1] else [0, 1]
    con = _console()
    if assumed:
        con.print(f"solving for the {unknown}: the first setting not given (--solve names "
                  f"another)", markup=False)
    per_axis = []
    for a in axes:
        sols, bounds = O.solve(
            hw[a], want[a], unknown,  # type: ignore[arg-type]
            kernel=k[a] if k else None, stride=s[a] if s else None, padding=p0[a],
            dilation=d[a], pool=kind != "conv",
        )
        axis = "" if len(axes) == 1 else (" (rows)" if a == 0 else " (columns)")
        if not sols:
            raise AnalysisError(
                f"no integer {unknown}{axis} maps {hw[a]} to {want[a]} ({bounds}, "
                f"{_given(unknown, k, s, p0, d, a, kind)})"
            )
        con.print(f"{unknown}{axis}: {hw[a]} -> {want[a]} with "
                  f"{_given(unknown, k, s, p0, d, a, kind)}; searched {bounds}:")
        for sol in sols:
            span = sol.dilation * (sol.kernel - 1) + 1
            how = ("exact" if sol.exact else
                   f"floor drops {sol.discarded} pixel{'s' if sol.discarded > 1 else ''}")
            con.print(f"  {unknown} = {sol.value}:  floor(({hw[a]} + 2*{sol.padding} - {span}) "
                      f"/ {sol.stride}) + 1 = {want[a]}  ({how})")
        per_axis.append({sol.value for sol in sols})
    if len(per_axis) == 2:
        both = sorted(per_axis[0] & per_axis[1])
        con.print(f"both axes: {', '.join(map(str, both)) if both else 'none (use a rectangular '}"
                  f"{'' if both else unknown + ')'}")


def _given(unknown: str, k: Any, s: Any, p: Any, d: Any, a: int, kind: str) -> str:
    parts = [kind]
    if unknown != "kernel" and k:
        parts.append(f"kernel {k[a]}")
    if unknown != "stride":
        parts.append(f"stride {s[a]}" if s else "stride " + ("= kernel" if kind != "conv"
                                                               else "1"))
    if unknown != "padding":
        parts.append(f"padding {p[a]}")
    if unknown != "dilation":
        parts.append(f"dilation {d[a]}")
    return ", ".join(parts)


# ------------------------------------------------------------------ calc conv


@calc_app.command("conv")
def calc_conv(
    image: Annotated[str, typer.Option("--image", "-x", metavar="MATRIX|FILE",
                                       help='Inline "1 0 2; 3 2 0", or a file of rows.')],
    kernel: Annotated[str, typer.Option(
        "--kernel", "-k", metavar="MATRIX|FILE|NAME",
        help="Inline, a file, or one of: sobel_x, sobel_y, box3, gaussian3, laplacian.")],
    padding: Annotated[int, typer.Option("--padding", "-p", help="Zeros on each side.")] = 0,
    stride: Annotated[int, typer.Option("--stride", help="Step between windows.")] = 1,
    dilation: Annotated[int, typer.Option(
        "--dilation", "-d", help="Spacing of the kernel's taps (1: adjacent).")] = 1,
    flip: Annotated[bool, typer.Option(
        "--flip", help="Convolution proper (kernel rotated 180 degrees) instead of the "
        "cross-correlation that nn.Conv2d computes.")] = False,
) -> None:
    """Convolution by hand: the padded input, each output as its sum of products, the result.

    Example: convlab calc conv --image "1 2 3; 4 5 6; 7 8 9" --kernel laplacian --padding 1
    """
    from convlab.analysis.conv_by_hand import conv_by_hand, parse_matrix, render

    hc = conv_by_hand(parse_matrix(image, "--image"), parse_matrix(kernel, "--kernel"),
                      padding, stride, flip, dilation)
    sys.stdout.write(render(hc))


# ------------------------------------------------------------------ calc rf


@calc_app.command("rf")
def calc_rf(
    target: Target,
    input_: InputOpt = None,
    classes: ClassesOpt = None,
    set_: SetOpt = None,
    all_layers: Annotated[bool, typer.Option(
        "--all", help="Every layer with a spatial output, not only stages / blocks.")] = False,
) -> None:
    """Receptive fields two ways: the analytic recurrence and the gradient of one central
    output unit (positive weights, max-pool as avg-pool), as boxes clipped to the image.

    Example: convlab calc rf dilated-cnn --input 1x64x64
    """
    from rich.table import Table

    from convlab.analysis.receptive_field import compare_fields, field_text, stage_layers

    r = _resolve(target, input_, classes, set_, architecture=True)
    t = Table("layer", "rf", "jump", "unit", "analytic rows / cols", "gradient rows / cols",
              "agree", title=f"{r.label}, input {'x'.join(map(str, r.in_shape))}")
    checks = compare_fields(r.model, r.in_shape,
                            None if all_layers else stage_layers(r.model))
    for c in checks:
        rf, jump = field_text(c.field)
        t.add_row(c.layer, rf, jump, f"{c.unit[0]},{c.unit[1]}", _box(c.analytic),
                  _box(c.empirical), _agree(c))
    _console().print(t)
    if not all(c.agree for c in checks):
        raise typer.Exit(1)


def _agree(c: Any) -> str:
    if c.exact:
        return "yes"
    if c.agree:  # clipped at the border: the measured support lies within the box
        return "within (padding)"
    return "[red]NO[/red]"


def _box(b: Any) -> str:
    (r0, r1), (c0, c1) = b
    return f"{r0}..{r1} / {c0}..{c1}"


# ------------------------------------------------------------------ probe


@probe_app.command("ops")
def probe_ops(
    names: Annotated[list[str] | None, typer.Argument(
        metavar="[OPERATOR]...",
        help="Named operators [default: all]: conv, bias, relu, leaky_relu, tanh, sigmoid, "
        "silu, gelu, identity, maxpool, avgpool, subsample, fc, batchnorm, gap, flatten.")]
    = None,
    model: Annotated[str | None, typer.Option(
        "--model", "-m", metavar="MODEL_OR_EXPERIMENT",
        help="Probe a prefix of this model instead of named operators.")] = None,
    layers: Annotated[str | None, typer.Option(
        "--layers", "-n", metavar="N|NAME",
        help="With --model: the first N layers, or up to this layer name.")] = None,
    input_: InputOpt = None,
    set_: SetOpt = None,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="With --model: a safetensors state dict to load first.")] = None,
    boundary: Annotated[Boundary, typer.Option(
        "--boundary", "-b", help="circular: wrap-around shifts; zero: zeros enter, compared "
        "on the units that see no border.")] = Boundary.circular,
    shift: Annotated[list[int] | None, typer.Option(
        "--shift", help="Shifts to test, in pixels (repeatable) [default: 1 and the "
        "stride product].")] = None,
    tol: Annotated[float, typer.Option("--tol", help="Relative-error tolerance.")] = 1e-9,
) -> None:
    """Linearity, affinity, shift-equivariance, shift-invariance and per-channel action,
    each measured (float64) with its error and tolerance.

    \b
    Named operators: convlab probe ops conv bias relu maxpool gap
    A model prefix:  convlab probe ops --model pw1 --layers 3
    """
    from convlab.analysis import probe as P
    from convlab.analysis.common import AnalysisError, load_weights, parse_shape

    if model is None:
        if layers or weights:
            raise AnalysisError("--layers and --weights need --model")
        shape = parse_shape(input_) if input_ else (3, 16, 16)
        reports = P.probe_named(list(names or []), shape, boundary.value, shift, tol)
    else:
        if names:
            raise AnalysisError("give either operator names or --model, not both")
        r = _resolve(model, input_, None, set_)
        if weights is not None:
            load_weights(r.model, weights)
        reports = [P.probe_prefix(r.model, r.in_shape, layers or 1, model, boundary.value,
                                  shift, tol)]
    con = _console()
    con.print(P.render_reports(reports, con.width if sys.stdout.isatty() else None))


@probe_app.command("equivariance")
def probe_equivariance(
    target: Target,
    layers: Annotated[str | None, typer.Option(
        "--layers", "-n", metavar="N|NAME", help="The first N layers, or up to this layer "
        "[default: all].")] = None,
    shift: Annotated[int | None, typer.Option("--shift", help="Shift by this many pixels.")]
    = None,
    rotate: Annotated[float | None, typer.Option(
        "--rotate", help="Rotate by this many degrees (multiples of 90 are exact).")] = None,
    boundary: Annotated[Boundary, typer.Option("--boundary", "-b", help="For shifts.")]
    = Boundary.circular,
    image: Annotated[str, typer.Option(
        "--image", metavar="synthetic|random|FILE",
        help="The input: a synthetic test picture, random noise, or an image file.")]
    = "synthetic",
    input_: InputOpt = None,
    set_: SetOpt = None,
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="A safetensors state dict (e.g. a run's model.safetensors) to "
        "load into the model first.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Folder for the PNG figures and "
                                      "errors.csv.")] = Path("equivariance"),
    seed: Annotated[int, typer.Option("--seed", help="For --image random.")] = 0,
) -> None:
    """The equivariance experiment: transform the image, run the first layers, undo the
    transform on the feature maps, report the relative error per layer, save figures.

    Example: convlab probe equivariance pw1 --layers 3 --shift 2 --out figs/
    """
    import torch

    from convlab.analysis import equivariance as E
    from convlab.analysis.common import AnalysisError, load_weights

    if (shift is None) == (rotate is None):
        raise AnalysisError("give exactly one transform: --shift PIXELS or --rotate DEGREES")
    r = _resolve(target, input_, None, set_)
    if weights is not None:
        load_weights(r.model, weights)
    if image == "synthetic":
        x = E.synthetic_image(r.in_shape)
    elif image == "random":
        x = torch.rand(r.in_shape, generator=torch.Generator().manual_seed(seed))
    else:
        x = E.load_image(image, r.in_shape)
    tr = (E.Transform("shift", shift, boundary.value) if shift is not None
          else E.Transform("rotate", float(rotate or 0)))
    result = E.equivariance_experiment(r.model, x[None], tr, layers)
    con = _console()
    con.print(E.render_table(result))
    paths = E.save_figures(result, out)
    con.print(f"wrote {len(paths)} files to {out}", markup=False)


@probe_app.command("linearize")
def probe_linearize(
    target: Target,
    make_linear: Annotated[bool, typer.Option(
        "--make-linear", help="Replace every activation by the identity and max pooling "
        "by average pooling first, keeping the (trained) weights.")] = False,
    input_: InputOpt = None,
    classes: ClassesOpt = None,
    set_: SetOpt = None,
    save: Annotated[Path | None, typer.Option(
        "--save", help="Write A and b to this .safetensors file.")] = None,
    tol: Annotated[float, typer.Option("--tol")] = 1e-8,
) -> None:
    """Collapse an affine network (identity activations, average pooling) into one map
    f(x) = A x + b, with A the Jacobian and b = f(0); check it on random inputs.

    Example: convlab probe linearize lenet5 --make-linear --save lenet5-affine.safetensors
    """
    import torch

    from convlab.analysis import affine as L

    with torch.random.fork_rng():  # a model name: the same random weights on every call
        torch.manual_seed(0)
        r = _resolve(target, input_, classes, set_)
    model = L.make_linear_module(r.model) if make_linear else r.model  # weights kept
    m = L.linearize(model, r.in_shape, tol=tol)
    con = _console()
    con.print(f"{r.label}{' (made linear)' if make_linear else ''}: "
              f"f(x) = A x + b with A {tuple(m.A.shape)}, b {tuple(m.b.shape)}", markup=False)
    con.print(f"affinity error   {m.affinity_error:.2e}  (f(1.7x - 0.7y) vs 1.7f(x) - 0.7f(y))")
    con.print(f"reproduction     {m.reproduction_error:.2e}  (A x + b vs f(x), random x)")
    con.print(f"verdict: {'affine, collapsed exactly' if m.ok else 'NOT reproduced'} "
              f"(tolerance {tol:.0e})")
    if save is not None:
        con.print(f"wrote {L.save_affine(m, save)}", markup=False)
    if not m.ok:
        raise typer.Exit(1)


# ------------------------------------------------------------------ budget


def budget(
    target: Annotated[str, typer.Argument(
        metavar="TARGET", help="A parameter count (269322, 269_322, 269,322) or a model / "
        "experiment whose count to match.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", metavar="MODEL_OR_EXPERIMENT", help="The base model to vary.")],
    vary: Annotated[str, typer.Option(
        "--vary", "-v", help="The free dimension: hidden_width, width, depth, "
        "stages.*.channels, stages.*.kernel, or a dotted setting (stages.0.kernel).")],
    input_: InputOpt = None,
    classes: ClassesOpt = None,
    set_: SetOpt = None,
    range_: Annotated[str | None, typer.Option(
        "--range", metavar="LO:HI", help="Candidate values, inclusive [default: by key].")]
    = None,
    keep: Annotated[int, typer.Option("--keep", help="Neighbours shown on each side.")] = 3,
) -> None:
    """Find the value of one free dimension whose model comes closest to a parameter budget.

    \b
    MLP width:   convlab budget 269322 --model mlp --vary hidden_width
    MLP depth:   convlab budget mlp-256x2 --model mlp --set hidden=[64] --vary depth
    CNN filters: convlab budget mlp-256x2 --model pw1 --vary stages.*.channels
    """
    from convlab.analysis.budget import match_params, render_candidates
    from convlab.analysis.common import AnalysisError, parse_shape

    shape = parse_shape(input_) if input_ else None
    base = _resolve(model, input_, classes, set_, architecture=True)
    count = _target_count(target, shape, classes)
    candidates = None
    if range_ is not None:
        lo, sep, hi = range_.partition(":")
        if not (sep and lo.strip().isdigit() and hi.strip().isdigit() and int(lo) <= int(hi)):
            raise AnalysisError(f"--range {range_!r}: expected LO:HI with integers LO <= HI")
        candidates = range(int(lo), int(hi) + 1)
    cands = match_params({"name": base.model_name, **base.settings}, vary, count,
                         base.in_shape, base.num_classes, candidates, keep)
    con = _console()
    con.print(f"{base.label}, varying {vary}, input {'x'.join(map(str, base.in_shape))}, "
              f"{base.num_classes} classes", markup=False)
    con.print(render_candidates(cands, vary))


def _target_count(text: str, shape: tuple[int, int, int] | None, classes: int | None) -> int:
    from convlab.analysis.common import resolve_model

    digits = text.replace("_", "").replace(",", "")
    if digits.isdigit():
        return int(digits)
    try:  # 2.7e5
        value = float(digits)
    except ValueError:
        pass
    else:
        if value.is_integer() and value > 0:
            return int(value)
    from convlab.analysis.common import is_model_name

    no_weights = ([("weights=none" if is_model_name(text) else "model.weights=none")]
                  if _pretrained(text, []) else [])  # a count needs no pretrained weights
    ref = resolve_model(text, shape, classes, no_weights)
    return sum(p.numel() for p in ref.model.parameters())


# ------------------------------------------------------------------ registration


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the main app (once, however often it is called)."""
    if getattr(app, "_convlab_analysis", False):
        return
    app._convlab_analysis = True  # type: ignore[attr-defined]
    app.command("summary")(summary)
    app.add_typer(calc_app, name="calc")
    app.add_typer(probe_app, name="probe")
    app.command("budget")(budget)
