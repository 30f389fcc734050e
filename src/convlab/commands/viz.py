"""``convlab viz`` (figures of a trained run) and ``convlab convert`` (fully convolutional).

Thin by design: parse, call :mod:`convlab.analysis.viz` / :mod:`convlab.analysis.fully_conv`,
print the paths written. Bad input raises an ``AnalysisError`` (a ``ConvlabError``), which
``convlab.cli.main`` turns into one line on stderr and exit code 2.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from convlab.analysis.viz import RunContext

RunArg = Annotated[Path, typer.Argument(metavar="RUN", help="A run folder.")]
FIGURES = ("filters", "activations", "overlay", "gradcam", "confusion", "errors", "grad-norms")
DEFAULT_FIGURES = ("filters", "confusion", "errors")
CONV_FIGURES = ("filters", "activations", "overlay", "gradcam")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def _note(text: str) -> None:
    sys.stderr.write(f"note: {text}\n")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def figures_dir(run_path: Path) -> Path:
    """Where the figures of a run go (the layout lives in ``convlab.runs``)."""
    from convlab.runs import Run

    return Run(run_path).figures_dir


# ------------------------------------------------------------------ viz


def viz(
    run: RunArg,
    filters: Annotated[bool, typer.Option("--filters", help="First-layer filters as an "
                                          "image grid.")] = False,
    activations: Annotated[bool, typer.Option("--activations", help="Activation maps of "
                                              "--layer for the chosen image.")] = False,
    overlay: Annotated[bool, typer.Option("--overlay", help="Last conv layer's maps over "
                                          "the image.")] = False,
    gradcam: Annotated[bool, typer.Option("--gradcam", help="Grad-CAM of --class for the "
                                          "chosen image.")] = False,
    confusion: Annotated[bool, typer.Option("--confusion", help="Confusion matrix on the "
                                            "test set.")] = False,
    errors: Annotated[bool, typer.Option("--errors", help="The most confidently "
                                         "misclassified test images.")] = False,
    grad_norms: Annotated[bool, typer.Option("--grad-norms", help="Gradient norms per "
                                             "step (needs train.track_grad_norms).")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Every figure that applies to the "
                                       "run.")] = False,
    layer: Annotated[str | None, typer.Option(
        "--layer", metavar="NAME", help="Layer for --activations (implies it) [default: "
        "the first conv layer's activation].")] = None,
    index: Annotated[int, typer.Option("--index", metavar="N", help="Test image number "
                                       "for the per-image figures.")] = 0,
    image: Annotated[Path | None, typer.Option(
        "--image", metavar="FILE", help="An image file instead of a test image (converted "
        "to the dataset's channels and size).")] = None,
    class_: Annotated[str | None, typer.Option(
        "--class", metavar="NAME|N", help="Class for --gradcam (implies it) [default: the "
        "predicted one].")] = None,
    cam_layer: Annotated[str | None, typer.Option(
        "--cam-layer", metavar="NAME", help="Layer for --gradcam and --overlay [default: "
        "the last conv layer's output].")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Images in the --errors grid.")]
    = 16,
    channels: Annotated[int, typer.Option("--channels", min=1, help="Most channels in an "
                                          "activation grid.")] = 32,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder [default: "
                                             "RUN/figures].")] = None,
) -> None:
    """Figures of a trained run as PNG files in RUN/figures; prints their paths.

    Default: --filters --confusion --errors.

    \b
    convlab viz RUN                       filters, confusion matrix, errors
    convlab viz RUN --layer stage2.body.act1 --index 3
    convlab viz RUN --gradcam --class 7 --image digit.png
    convlab viz RUN --all
    """
    from torch import nn

    from convlab.analysis import viz as V

    flags = {"filters": filters, "activations": activations or layer is not None,
             "overlay": overlay, "gradcam": gradcam or class_ is not None or cam_layer
             is not None, "confusion": confusion, "errors": errors, "grad-norms": grad_norms}
    explicit = [f for f in FIGURES if flags[f]]
    wanted = list(FIGURES) if all_ else explicit or list(DEFAULT_FIGURES)
    ctx = V.open_run(run)
    has_conv = any(isinstance(m, nn.Conv2d) for m in ctx.model.modules())
    if layer is not None:
        V.check_layer(ctx.model, layer)
    if cam_layer is not None:
        V.check_layer(ctx.model, cam_layer, "--cam-layer")
    steps = _grad_norm_steps(ctx) if "grad-norms" in wanted else {}
    for fig in list(wanted):
        reason = None
        if fig in CONV_FIGURES and not has_conv:
            reason = "the model has no convolutional layer"
        elif fig == "grad-norms" and not steps:
            reason = (f"{ctx.run.path} has no gradient norms (steps.csv); set "
                      f"train.track_grad_norms: N (every N steps) and train again")
        if reason is None:
            continue
        if fig in explicit:
            raise V.AnalysisError(f"--{fig}: {reason}")
        _note(f"skipped {fig}: {reason}")
        wanted.remove(fig)
    dest = out or figures_dir(ctx.run.path)
    paths: list[Path] = []
    per_image = {"activations", "overlay", "gradcam"} & set(wanted)
    img = _chosen_image(ctx, index, image) if per_image else None
    if "filters" in wanted:
        name, conv = V.first_conv(ctx.model)
        paths.append(V.plot_filters(conv.weight, dest / "filters.png",
                                    f"{ctx.run.name}: {name}"))
    if img is not None:
        u8, label, src = img
        x = ctx.transform(u8[None])[0]  # (C, H', W') as the model sees it
        if "activations" in wanted:
            name = layer or V.feature_layer(ctx.model, "first")
            maps = V.activations(ctx.model, x, name)
            paths.append(V.plot_activations(
                maps, u8, dest / f"activations-{_safe(name)}-{src}.png",
                f"{name} on {src}{_label(ctx, label)}", channels))
        if "overlay" in wanted:
            name = cam_layer or V.feature_layer(ctx.model, "last")
            maps = V.activations(ctx.model, x, name)
            paths.append(V.plot_overlay(maps, u8, dest / f"overlay-{_safe(name)}-{src}.png",
                                        f"{name} on {src}{_label(ctx, label)}"))
        if "gradcam" in wanted:
            target = _class_index(ctx, class_)
            cam = V.grad_cam(ctx.model, x, target, cam_layer)
            pred = int(cam.probs.argmax())
            title = (f"Grad-CAM for {ctx.classes[cam.target]} (p {cam.probs[cam.target]:.2f}) "
                     f"on {src}{_label(ctx, label)}; predicted {ctx.classes[pred]}")
            paths.append(V.plot_gradcam(
                cam, u8, dest / f"gradcam-{_safe(ctx.classes[cam.target])}-{src}.png", title))
    if {"confusion", "errors"} & set(wanted):
        paths += _test_set_figures(ctx, wanted, dest, top)
    if "grad-norms" in wanted:
        from convlab.report import plots

        norms = {k: v for k, v in steps.items() if k not in ("step", "epoch")}
        paths += plots.gradient_norms(steps["step"], norms, dest / "grad_norms.png",
                                      title=f"{ctx.run.name}: gradient norms")
    for p in paths:
        _say(str(p))


def _label(ctx: RunContext, label: int | None) -> str:
    return "" if label is None else f" (true {ctx.classes[label]})"


def _grad_norm_steps(ctx: RunContext) -> dict[str, list[float]]:
    """steps.csv as columns ({} when absent or unreadable), through the report's reader."""
    from convlab.report.data import run_data

    steps = run_data(ctx.run).steps
    return steps if "step" in steps and len(steps) > 2 else {}


def _chosen_image(ctx: RunContext, index: int, image: Path | None
                  ) -> tuple[torch.Tensor, int | None, str]:
    """(uint8 (C, H, W), its label or None, a short name for titles and files)."""
    if image is not None:
        return ctx.file_image(image), None, _safe(image.stem)
    u8, label = ctx.test_image(index)
    return u8, label, f"test{index}"


def _class_index(ctx: RunContext, text: str | None) -> int | None:
    """--class as a class name or number; None: the predicted class."""
    from convlab.analysis.common import AnalysisError

    if text is None:
        return None
    if text in ctx.classes:
        return ctx.classes.index(text)
    if text.isdigit() and int(text) < ctx.num_classes:
        return int(text)
    shown = ", ".join(ctx.classes[:20]) + (", ..." if ctx.num_classes > 20 else "")
    raise AnalysisError(f"--class {text!r}: expected a class name ({shown}) or a number "
                        f"0..{ctx.num_classes - 1}")


def _test_set_figures(ctx: RunContext, wanted: list[str], dest: Path, top: int) -> list[Path]:
    """Confusion matrix and most confident errors: one pass over the test split."""
    from convlab.analysis import viz as V

    if ctx.data_changed:
        _note(f"the data differs from what {ctx.run.name} saw (fingerprint); the test-set "
              f"figures describe the data as it is now")
    probs = V.predict_test(ctx)  # (N, K)
    labels = ctx.test.labels
    conf, preds = probs.max(1)
    paths = []
    if "confusion" in wanted:
        cm = V.confusion_matrix(labels, preds, ctx.num_classes)
        paths.append(V.plot_confusion(cm, ctx.classes, dest / "confusion.png",
                                      f"{ctx.run.name}: test set"))
    if "errors" in wanted:
        idx = V.confident_errors(probs, labels, top)
        wrong = int((preds != labels).sum())
        paths.append(V.plot_errors(
            ctx.test.images[idx], labels[idx].tolist(), preds[idx].tolist(),
            conf[idx].tolist(), ctx.classes, dest / "errors.png",
            f"{ctx.run.name}\n{len(idx)} most confident of {wrong} errors\nin "
            f"{len(labels)} test images"))
    return paths


# ------------------------------------------------------------------ convert


def convert(
    run: RunArg,
    fully_convolutional: Annotated[bool, typer.Option(
        "--fully-convolutional", help="Turn the FC head into convolutions and apply the "
        "model to a larger image.")] = False,
    input_: Annotated[str | None, typer.Option(
        "--input", "-i", metavar="HxW", help="Size of the larger image [default: twice the "
        "training size].")] = None,
    image: Annotated[Path | None, typer.Option(
        "--image", metavar="FILE", help="An image file, resized to --input [default: "
        "random pixels].")] = None,
    seed: Annotated[int, typer.Option("--seed", help="For the random image.")] = 0,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder [default: "
                                             "RUN/fully_conv].")] = None,
) -> None:
    """Make a trained CNN fully convolutional: its FC layers become convolutions with the
    same weights, so it takes any image size and returns a map of class scores.

    Checks that the outputs are unchanged at the training size, applies the model to a
    larger image, prints the map's shape (classes x H' x W') and saves it (PNG and
    safetensors) with the converted weights.

    \b
    convlab convert RUN --fully-convolutional
    convlab convert RUN --fully-convolutional --input 56x56 --image scene.png
    """
    import torch

    from convlab.analysis import fully_conv as FC
    from convlab.analysis import viz as V
    from convlab.analysis.common import AnalysisError, parse_hw

    if not fully_convolutional:
        raise AnalysisError("nothing to convert: give --fully-convolutional")
    ctx = V.open_run(run)
    c, h, w = ctx.in_shape
    fc = FC.make_fully_convolutional(ctx.model, ctx.in_shape)
    size = parse_hw(input_) if input_ else (2 * h, 2 * w)
    if size != (h, w):
        _check_resizable(ctx)
    _say(f"{ctx.run.name}: {fc.kind} head -> {', '.join(fc.layers)}; features "
         f"{'x'.join(map(str, fc.feature_shape))} at {h}x{w}")
    diff = FC.max_difference(ctx.model, fc, ctx.in_shape)
    if diff is None:
        _say(f"at {h}x{w}: per-location scores; the head is nonlinear after the global "
             f"pooling, so their mean is not the model's output")
    else:
        how = "mean of the map" if fc.kind == "gap" else "output"
        _say(f"at {h}x{w}: max |difference| of the {how} from the original = {diff[0]:.2e} "
             f"({diff[1]:.1e} of the largest logit)")
    if image is not None:
        from convlab.analysis.equivariance import load_image

        pixels = (load_image(image, (c, *size)) * 255).round().to(torch.uint8)
        src = _safe(image.stem)
    else:
        g = torch.Generator().manual_seed(seed)
        pixels = torch.randint(0, 256, (c, *size), generator=g, dtype=torch.uint8)
        src = f"random{seed}"
    x = ctx.transform(pixels[None], resize=False)[0]  # (C, H, W), normalized as in training
    scores = FC.score_map(fc, x)  # (K, H', W')
    k, hh, ww = scores.shape
    _say(f"at {size[0]}x{size[1]} ({src}): output {k} x {hh} x {ww} (classes x H' x W')")
    dest = out or ctx.run.fully_conv_dir
    stem = f"scores-{size[0]}x{size[1]}-{src}"
    for p in (
        FC.plot_scores(scores, pixels, ctx.classes, dest / f"{stem}.png",
                       f"{ctx.run.name}: class scores per location"),
        FC.save_scores(scores, dest / f"{stem}.safetensors", ctx.classes, pixels),
        FC.save_model(fc, dest / "model.safetensors"),
    ):
        _say(str(p))


def _check_resizable(ctx: RunContext) -> None:
    """Per-pixel preprocessing fixes the image size: refuse a different one."""
    from convlab.analysis.common import AnalysisError

    mode = getattr(ctx.normalizer, "mode", "none")
    if mode in ("mean_image", "zca"):
        raise AnalysisError(f"the run normalizes with data.normalize: {mode}, statistics per "
                            f"pixel of a {ctx.in_shape[1]}x{ctx.in_shape[2]} image; a larger "
                            f"image cannot be preprocessed the same way")
    if ctx.config.data.permute is not None:
        raise AnalysisError("the run trained on permuted pixels; a larger image has no "
                            "matching permutation")


# ------------------------------------------------------------------ registration


def register(app: typer.Typer) -> None:
    """Add ``viz`` and ``convert`` to the main app (once, however often it is called)."""
    if getattr(app, "_convlab_viz", False):
        return
    app._convlab_viz = True  # type: ignore[attr-defined]
    app.command("viz")(viz)
    app.command("convert")(convert)
