"""What a trained model learned, as arrays and as figures: filters, activation maps,
Grad-CAM, the confusion matrix and the most confident mistakes.

Three layers, from the disk up:

* :class:`RunContext` / :func:`open_run` turn a run folder into its trained model, its
  class names and the *training* input pipeline (the saved normalizer, the loader's
  ``transform``), so an image is preprocessed here exactly as the model saw it.
* Pure functions compute tensors: :func:`filter_images`, :func:`activations`,
  :func:`grad_cam`, :func:`predict`, :func:`confusion_matrix`, :func:`confident_errors`,
  plus the layer lookups (:func:`check_layer`, :func:`feature_layer`).
* ``plot_*`` functions draw them with matplotlib's Agg canvas (no pyplot, no global
  state) and write PNG files atomically.

Works on any ``nn.Module`` classifier: the ``cnn`` builder (``stage2.body.act1``), the
torchvision ResNets (``conv1``, ``layer4``) and hand-made models in tests.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from convlab.analysis.common import AnalysisError
from convlab.analysis.probe import LayerPrefix, layer_units

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from convlab.config import ExperimentConfig
    from convlab.data import ImageSet
    from convlab.data.pipeline import PreparedData
    from convlab.runs import Run

# Modules that act on each position (and channel) separately: they keep a feature map a
# feature map, so "the last conv layer's maps" may be taken after them (after the ReLU).
POINTWISE = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.SiLU, nn.GELU, nn.Sigmoid, nn.ELU,
             nn.Identity, nn.BatchNorm2d, nn.Dropout, nn.Dropout2d)


# ------------------------------------------------------------------ a run folder


@dataclass
class RunContext:
    """A trained run, ready for analysis: model (eval mode, CPU) and input pipeline.

    The data is loaded on first use (``data``): filters and gradient norms need none.
    """

    run: Run
    model: nn.Module
    config: ExperimentConfig
    in_shape: tuple[int, int, int]  # (C, H, W) as the model sees it (after data.resize)
    classes: list[str]
    normalizer: Any  # convlab.data.transforms.Normalizer, as saved by the run
    _data: PreparedData | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def data(self) -> PreparedData:
        """The run's splits, read and subset as in training (on the CPU)."""
        if self._data is None:
            from convlab.data.pipeline import prepare_data
            from convlab.models import normalizes_own_input

            self._data = prepare_data(self.config.data, torch.device("cpu"),
                                      normalizes_own_input(self.config.model))
        return self._data

    @property
    def data_changed(self) -> bool:
        """True when the data read now is not the data the run trained and tested on
        (its fingerprint in env.json differs): a moved or edited dataset."""
        from convlab.errors import RunError

        try:
            saved = (self.run.env.get("data") or {}).get("fingerprint")
        except RunError:
            return False
        return bool(saved) and saved != self.data.fingerprint

    @property
    def test(self) -> ImageSet:
        return self.data.test

    def transform(self, images: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """uint8 (B, C, H, W) -> the model's float input, through the training loader's
        own ``transform`` (no augmentation). ``resize=False`` keeps the size, for a model
        applied to larger images (fully convolutional)."""
        from convlab.data import ImageSet
        from convlab.data.pipeline import InMemoryLoader

        empty = ImageSet(images[:0], torch.zeros(0, dtype=torch.long))
        loader = InMemoryLoader(empty, max(1, len(images)), normalizer=self.normalizer,
                                resize=self.config.data.resize if resize else None)
        return loader.transform(images)

    def test_image(self, index: int) -> tuple[torch.Tensor, int]:
        """Test image ``index`` as uint8 (C, H, W) and its label."""
        n = len(self.test)
        if not 0 <= index < n:
            raise AnalysisError(f"--index {index}: the test set has {n} images; "
                                f"expected 0..{n - 1}")
        return self.test.images[index], int(self.test.labels[index])

    def file_image(self, path: str | Path) -> torch.Tensor:
        """An image file as the dataset stores it: uint8 (C, H, W) with the dataset's
        channels and size, its pixels permuted when the run trained on permuted ones."""
        from convlab.analysis.equivariance import load_image

        shape = tuple(self.test.images.shape[1:])  # before data.resize, like the dataset
        img = (load_image(path, shape) * 255).round().to(torch.uint8)  # type: ignore[arg-type]
        perm = self.config.data.permute
        if perm is not None:
            from convlab.data.transforms import permute_pixels, pixel_permutation

            img = permute_pixels(img[None], pixel_permutation(perm.seed, *shape[1:]))[0]
        return img


def open_run(path: str | Path) -> RunContext:
    """Open a run folder for analysis: its trained model, class names and normalizer.

    Raises a one-line ``ConvlabError`` for a folder that is not a finished run.
    """
    from convlab.errors import RunError
    from convlab.runs import Run

    run = Run.open(path)
    if not run.weights_path.is_file():
        raise RunError(f"{run.path}: no trained weights (model.safetensors); the run is "
                       f"{run.status}")
    model = run.load_model()
    cfg = run.config
    in_shape = tuple(int(v) for v in run.summary["input_shape"])
    k = int(run.summary["num_classes"])
    try:
        env = run.env
    except RunError:
        env = {}
    names = list((env.get("data") or {}).get("classes") or [])
    classes = [str(c) for c in names] if len(names) == k else [str(i) for i in range(k)]
    ctx = RunContext(run, model, cfg, in_shape, classes, None)  # type: ignore[arg-type]
    ctx.normalizer = _saved_normalizer(run, env) or ctx.data.normalizer
    return ctx


def _saved_normalizer(run: Run, env: dict[str, Any]) -> Any | None:
    """The normalizer the run trained with (normalizer.safetensors + its mode in env.json);
    None when either is missing (an older run): the caller refits it on the data."""
    from convlab.data.transforms import Normalizer
    from convlab.errors import RunError
    from convlab.train.checkpoint import load_tensors

    mode = (env.get("data") or {}).get("normalize")
    if not mode or not run.normalizer_path.is_file():
        return None
    try:
        return Normalizer.from_tensors(str(mode), load_tensors(run.normalizer_path))
    except (RunError, ValueError):
        return None


# ------------------------------------------------------------------ layers


def layer_names(model: nn.Module) -> list[str]:
    """Every named submodule, in registration order (what ``--layer`` accepts)."""
    return [n for n, _ in model.named_modules() if n]


def check_layer(model: nn.Module, name: str, what: str = "--layer") -> str:
    """``name`` if the model has that layer; else a one-line error with the closest
    names (or the model's layers in forward order when nothing is close)."""
    names = layer_names(model)
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.6)
    if close:
        raise AnalysisError(f"{what} {name!r}: no such layer; closest: {', '.join(close)}")
    raise AnalysisError(f"{what} {name!r}: no such layer; layers: "
                        f"{', '.join(layer_units(model))}")


def _has_conv(m: nn.Module) -> bool:
    return any(isinstance(s, nn.Conv2d) for s in m.modules())


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first ``Conv2d`` (``stage1.body.conv1``, a ResNet's ``conv1``): the layer that
    looks at pixels, whose filters can be drawn as images."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise AnalysisError("the model has no convolutional layer (an MLP?): no filters, "
                        "feature maps or Grad-CAM to show")


def feature_layer(model: nn.Module, which: str = "last") -> str:
    """The output of the ``first`` or ``last`` convolutional unit, taken after the
    point-wise layers that follow it (BN, activation, dropout), before any pooling.

    That is where Grad-CAM reads its maps (Selvaraju et al. 2017 use the last conv
    layer's rectified maps: the most semantic ones that still have a layout). A ResNet
    gives ``layer4``; the ``cnn`` builder e.g. ``stage2.body.act1``.
    """
    from convlab.models.cnn import Stage

    units = layer_units(model)
    convs = [i for i, u in enumerate(units) if _has_conv(model.get_submodule(u))]
    if not convs:
        first_conv(model)  # raises the no-conv error
    i = convs[-1] if which == "last" else convs[0]
    while i + 1 < len(units):
        nxt = model.get_submodule(units[i + 1])
        if not isinstance(nxt, POINTWISE) or isinstance(nxt, nn.Identity):  # "maxpool"
            break  # an Identity (a ResNet's small stem has no max pool) would mislabel it
        i += 1
    name = units[i]
    unit = model.get_submodule(name)
    if isinstance(unit, Stage) and unit.out_act is not None:  # residual: before its pooling
        return f"{name}.out_act"
    parent, _, _ = name.rpartition(".")
    if parent and "." not in parent:  # layer4.1, the last block of layer4 -> layer4
        container = model.get_submodule(parent)
        if isinstance(container, nn.Sequential) and list(container.children())[-1] is unit:
            return parent
    return name


def activations(model: nn.Module, x: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of ``layer`` for one input ``x`` (C, H, W) or (1, C, H, W): (C', h, w)
    for a feature map, (D,) for a vector. The forward pass stops at the layer."""
    check_layer(model, layer)
    xb = x[None] if x.dim() == 3 else x
    with torch.no_grad():
        out = LayerPrefix(model, layer)(xb)
    return out[0].detach().float()


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (h, w) or (C, h, w) maps to ``size`` (the image's H, W)."""
    x = maps[None, None] if maps.dim() == 2 else maps[None]
    out = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False)
    return out[0, 0] if maps.dim() == 2 else out[0]


def unit_range(x: torch.Tensor) -> torch.Tensor:
    """Min-max scaled to [0, 1] (constant input -> zeros): for display only."""
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else torch.zeros_like(x)


# ------------------------------------------------------------------ filters


def filter_images(weight: torch.Tensor) -> torch.Tensor:
    """Conv weights (O, I, kh, kw) -> O images for display, each scaled to [0, 1] on its
    own: (O, kh, kw, 3) when the layer reads RGB (I = 3), else (O, kh, kw) (the mean over
    input channels for I != 1). Per-filter scaling shows each filter's pattern; the
    relative magnitudes are lost, as in every filter plot since Krizhevsky et al. 2012."""
    w = weight.detach().float().cpu()
    if w.dim() != 4:
        raise AnalysisError(f"expected conv weights (O, I, kh, kw), got {tuple(w.shape)}")
    imgs = w.permute(0, 2, 3, 1) if w.shape[1] == 3 else w.mean(1)  # (O,kh,kw,3) | (O,kh,kw)
    return torch.stack([unit_range(f) for f in imgs])


# ------------------------------------------------------------------ Grad-CAM


@dataclass(frozen=True)
class GradCam:
    """Grad-CAM of one image for one class."""

    heat: torch.Tensor  # (H, W) >= 0, the input's size, scaled so max = 1 (0 if none)
    cam: torch.Tensor  # (h, w) >= 0, unscaled, at the feature-map resolution
    weights: torch.Tensor  # (C,) alpha_k, the spatially averaged gradients
    target: int  # the class explained
    score: float  # its logit y^c
    probs: torch.Tensor  # (K,) softmax of the logits
    layer: str


def grad_cam(
    model: nn.Module, x: torch.Tensor, target: int | None = None, layer: str | None = None,
) -> GradCam:
    """Grad-CAM (Selvaraju et al., ICCV 2017) of input ``x`` (C, H, W) for class ``target``
    (default: the predicted one), at ``layer`` (default: :func:`feature_layer`).

    With A^k the layer's feature maps and y^c the class logit (before the softmax)::

        alpha_k = 1/(h w) sum_ij dy^c / dA^k_ij        (global-average-pooled gradients)
        L^c     = ReLU(sum_k alpha_k A^k)              (h, w), then bilinear to (H, W)
    """
    layer = check_layer(model, layer, "--cam-layer") if layer else feature_layer(model)
    xb = (x[None] if x.dim() == 3 else x).detach().float().clone().requires_grad_(True)
    store: dict[str, torch.Tensor] = {}

    def hook(_m: nn.Module, _i: Any, out: Any) -> Any:
        if "A" in store or not isinstance(out, torch.Tensor):
            return None
        store["A"] = out
        return out.clone()  # later in-place ops (ReLU(inplace), +=) must not modify A

    handle = model.get_submodule(layer).register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(xb)  # (1, K); xb requires grad, so frozen layers still connect
            if "A" not in store:
                raise AnalysisError(f"layer {layer} did not run in the forward pass")
            feats = store["A"]
            if feats.dim() != 4:
                raise AnalysisError(f"Grad-CAM needs feature maps (C, h, w); layer {layer} "
                                    f"outputs shape {tuple(feats.shape[1:])}")
            k = int(logits.shape[1])
            c = int(logits[0].argmax()) if target is None else int(target)
            if not 0 <= c < k:
                raise AnalysisError(f"class {c}: expected 0..{k - 1}")
            (grads,) = torch.autograd.grad(logits[0, c], feats)  # (1, C, h, w)
    finally:
        handle.remove()
    alpha = grads[0].mean(dim=(1, 2))  # (C,)
    cam = F.relu((alpha[:, None, None] * feats[0]).sum(0)).detach()  # (h, w)
    heat = upsample(cam, tuple(xb.shape[-2:]))  # type: ignore[arg-type]  # (H, W)
    heat = heat.clamp_min(0)  # bilinear of non-negatives is non-negative; rounding aside
    peak = heat.max()
    heat = heat / peak if peak > 0 else heat
    logits = logits.detach()
    return GradCam(heat, cam, alpha.detach(), c, float(logits[0, c]), logits[0].softmax(0),
                   layer)


# ------------------------------------------------------------------ predictions


def predict(model: nn.Module, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """Softmax probabilities (N, K) for model inputs given batch by batch, no grad."""
    out = []
    with torch.no_grad():
        for xb in batches:
            out.append(model(xb).float().softmax(1))
    return torch.cat(out)


def predict_test(ctx: RunContext) -> torch.Tensor:
    """(N, K) probabilities on the run's test split, batched like its evaluation."""
    from convlab.data.pipeline import InMemoryLoader

    loader = InMemoryLoader(ctx.test, ctx.config.train.eval_batch_size,
                            normalizer=ctx.normalizer, resize=ctx.config.data.resize)
    return predict(ctx.model, (x for x, _ in loader))


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    labels, preds = labels.long().cpu(), preds.long().cpu()
    if labels.shape != preds.shape:
        raise AnalysisError(f"{labels.numel()} labels but {preds.numel()} predictions")
    flat = labels * num_classes + preds  # one bin per (true, predicted) pair
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def confident_errors(probs: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of up to ``k`` misclassified examples, most confident (highest probability
    of the wrong predicted class) first: where the model is sure and wrong."""
    conf, pred = probs.max(1)  # (N,), (N,)
    wrong = (pred != labels.to(pred.device)).nonzero().flatten()
    order = conf[wrong].argsort(descending=True, stable=True)
    return wrong[order][:k]


# ------------------------------------------------------------------ figures


def _figure(rows: int, cols: int, cell: float = 1.6) -> tuple[Figure, list[list[Axes]]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(3.2, cell * cols), max(2.0, cell * rows + 0.6)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, [list(r) for r in axes]


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG through a temporary file + rename (never half a file)."""
    from convlab.runs import atomic_write

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return p


def _t(text: str) -> str:
    """A user string as literal text: matplotlib reads ``$...$`` as TeX."""
    return str(text).replace("$", r"\$")


def _suptitle(fig: Any, text: str, fontsize: float = 9) -> None:
    """A figure title wrapped to the figure's width (a long run name is not cut off)."""
    import textwrap

    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * fontsize)))
    fig.suptitle(_t(textwrap.fill(str(text), chars)), fontsize=fontsize)


def image_array(img: torch.Tensor) -> Any:
    """uint8 or float (C, H, W) -> numpy (H, W) for grey or (H, W, 3) for RGB in [0, 1]."""
    x = img.detach().float().cpu()
    if img.dtype == torch.uint8:
        x = x / 255
    if x.dim() == 3:
        x = x[0] if x.shape[0] != 3 else x.permute(1, 2, 0)
    return x.clamp(0, 1).numpy()


def _show(ax: Axes, img: torch.Tensor, title: str = "") -> None:
    arr = image_array(img)
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1,
              interpolation="nearest")
    _off(ax, title)


def _off(ax: Axes, title: str = "") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(_t(title), fontsize=7)


def _grid(n: int, max_cols: int = 8) -> tuple[int, int]:
    cols = min(n, max_cols, max(1, math.ceil(math.sqrt(n))))
    return math.ceil(n / cols), cols


def _hide_rest(axes: list[list[Axes]], used: int) -> None:
    for i, ax in enumerate(a for row in axes for a in row):
        if i >= used:
            ax.set_axis_off()


def plot_filters(weight: torch.Tensor, out: str | Path, title: str = "") -> Path:
    """One panel per filter of a conv layer (see :func:`filter_images`)."""
    imgs = filter_images(weight)
    rows, cols = _grid(len(imgs), 16)
    fig, axes = _figure(rows, cols, 0.8)
    for i, ax in enumerate(a for row in axes for a in row):
        if i < len(imgs):
            ax.imshow(imgs[i].numpy(), cmap="gray" if imgs.dim() == 3 else None,
                      vmin=0, vmax=1, interpolation="nearest")
            _off(ax)
    _hide_rest(axes, len(imgs))
    o, i_, kh, kw = weight.shape
    _suptitle(fig, title or f"{o} filters {i_}x{kh}x{kw}")
    return save_png(fig, out)


def plot_activations(maps: torch.Tensor, image: torch.Tensor, out: str | Path,
                     title: str = "", max_channels: int = 32) -> Path:
    """The input, then one panel per channel of (C, h, w) maps (the first
    ``max_channels``), each with its own colour scale; a vector (D,) is drawn as bars."""
    if maps.dim() == 1:
        fig, axes = _figure(1, 2, 2.4)
        _show(axes[0][0], image, "input")
        ax = axes[0][1]
        ax.bar(range(len(maps)), maps.numpy(), width=1.0, color="#4c72b0")
        ax.set(xlabel="unit", ylabel="activation")
        _suptitle(fig, title)
        return save_png(fig, out)
    n = min(len(maps), max_channels)
    rows, cols = _grid(n + 1, 8)
    fig, axes = _figure(rows, cols)
    flat = [a for row in axes for a in row]
    _show(flat[0], image, "input")
    for c in range(n):
        flat[c + 1].imshow(maps[c].numpy(), cmap="viridis", interpolation="nearest")
        _off(flat[c + 1], f"ch {c} (max {float(maps[c].max()):.2g})")
    _hide_rest(axes, n + 1)
    shown = f" (first {n} of {len(maps)} channels)" if n < len(maps) else ""
    _suptitle(fig, f"{title}{shown}")
    return save_png(fig, out)


def _overlay(ax: Axes, image: torch.Tensor, heat: torch.Tensor, title: str,
             alpha: float = 0.5) -> None:
    _show(ax, image)
    ax.imshow(heat.numpy(), cmap="jet", alpha=alpha, vmin=0, vmax=1, interpolation="bilinear")
    _off(ax, title)


def plot_overlay(maps: torch.Tensor, image: torch.Tensor, out: str | Path, title: str = "",
                 top: int = 6) -> Path:
    """Feature maps (C, h, w) upsampled onto the image: their channel mean, then the
    ``top`` channels with the largest mean activation, each scaled to [0, 1]."""
    if maps.dim() != 3:
        raise AnalysisError(f"an overlay needs feature maps (C, h, w), got shape "
                            f"{tuple(maps.shape)}")
    size = tuple(image.shape[-2:])
    strongest = maps.mean((1, 2)).argsort(descending=True)[:top].tolist()
    panels = [("channel mean", maps.mean(0))] + [(f"ch {c}", maps[c]) for c in strongest]
    fig, axes = _figure(1, len(panels) + 1, 1.9)
    _show(axes[0][0], image, "input")
    for ax, (label, m) in zip(axes[0][1:], panels, strict=True):
        _overlay(ax, image, unit_range(upsample(m, size)), label)  # type: ignore[arg-type]
    _suptitle(fig, title)
    return save_png(fig, out)


def plot_gradcam(cam: GradCam, image: torch.Tensor, out: str | Path, title: str = "") -> Path:
    """The input, the Grad-CAM heat map, and the map over the image."""
    heat = cam.heat
    if tuple(heat.shape) != tuple(image.shape[-2:]):  # the model input was resized
        heat = unit_range(upsample(heat, tuple(image.shape[-2:])))  # type: ignore[arg-type]
    fig, axes = _figure(1, 3, 2.2)
    _show(axes[0][0], image, "input")
    axes[0][1].imshow(heat.numpy(), cmap="jet", vmin=0, vmax=1, interpolation="bilinear")
    _off(axes[0][1], f"Grad-CAM ({cam.layer})")
    _overlay(axes[0][2], image, heat, "overlay")
    _suptitle(fig, title)
    return save_png(fig, out)


def plot_confusion(cm: torch.Tensor, classes: Sequence[str], out: str | Path,
                   title: str = "") -> Path:
    """Counts (rows: true, columns: predicted), coloured by the fraction of each true
    class, so rare classes are as readable as common ones."""
    k = len(classes)
    rows = cm.sum(1, keepdim=True).clamp_min(1)
    frac = (cm.float() / rows).numpy()
    size = min(12.0, 2.5 + 0.45 * k)
    fig, axes = _figure(1, 1, size)
    ax = axes[0][0]
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    if k <= 30:
        ticks = list(range(k))
        labels = [_t(c) for c in classes]
        ax.set_xticks(ticks, labels, rotation=45 if max(map(len, labels)) > 3 else 0,
                      ha="right" if max(map(len, labels)) > 3 else "center", fontsize=7)
        ax.set_yticks(ticks, labels, fontsize=7)
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if frac[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true")
    total = int(cm.sum())
    acc = float(cm.diag().sum()) / total if total else 0.0
    head = f"{title}\n" if title else ""
    ax.set_title(_t(f"{head}accuracy {acc:.2%} of {total} images"), fontsize=9)
    return save_png(fig, out)


def plot_errors(images: torch.Tensor, labels: Sequence[int], preds: Sequence[int],
                confidence: Sequence[float], classes: Sequence[str], out: str | Path,
                title: str = "") -> Path:
    """A grid of misclassified images (B, C, H, W), each titled true / predicted (p)."""
    n = len(images)
    if n == 0:
        fig, axes = _figure(1, 1, 2.5)
        axes[0][0].set_axis_off()
        axes[0][0].text(0.5, 0.5, "no misclassified test images", ha="center", va="center")
        _suptitle(fig, title)
        return save_png(fig, out)
    rows, cols = _grid(n, 8)
    fig, axes = _figure(rows, cols, 1.5)
    for i, ax in enumerate(a for row in axes for a in row):
        if i < n:
            _show(ax, images[i], f"true {classes[labels[i]]}\npred {classes[preds[i]]} "
                                 f"({confidence[i]:.2f})")
    _hide_rest(axes, n)
    _suptitle(fig, title)
    return save_png(fig, out)
