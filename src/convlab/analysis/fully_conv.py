"""Turn a trained CNN's fully connected head into convolutions, so it runs on any size.

An FC layer on a flattened (C, h, w) feature map *is* a convolution whose kernel covers
the whole map: ``Linear(C*h*w, n)`` becomes ``Conv2d(C, n, kernel=(h, w))`` with the same
weights reshaped to (n, C, h, w) (``nn.Flatten`` orders features as C, then rows, then
columns, which is the kernel's layout), and each later ``Linear(m, n)`` a 1x1 ``Conv2d``.
At the training size the converted model gives a (K, 1, 1) map equal to the logits; on
a larger image the first "FC" conv slides over the feature map and every position gets
class scores for the window it sees (Long, Shelhamer & Darrell, "Fully Convolutional
Networks", CVPR 2015; Sermanet et al., "OverFeat", 2014).

A global-average-pooling head (``head.type: gap``, a ResNet) is convolutional up to the
pooling already: dropping the pool and applying the head per location gives a map of
per-location scores whose spatial mean is the model's output when the head is linear
(no hidden layer): the class activation map of Zhou et al., CVPR 2016.
"""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from convlab.analysis.common import AnalysisError
from convlab.analysis.viz import POINTWISE

HeadKind = Literal["flatten", "gap"]
_GLOBAL_POOLS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_KEEP = (*POINTWISE, nn.Dropout1d)  # act per unit: valid on (B, C, H, W) as on (B, C)


@dataclass(frozen=True)
class FullyConv:
    """A model converted to a fully convolutional one, and what the conversion did."""

    model: nn.Module  # (B, C, H, W) -> (B, K, H', W')
    kind: HeadKind  # the original head: flatten (FC) or gap (global pooling)
    feature_shape: tuple[int, int, int]  # (C, h, w) entering the head at the training size
    linear_head: bool  # no nonlinearity after the pooling (gap): mean of map == logits
    layers: tuple[str, ...]  # e.g. ("fc1 -> conv 8x3x3", "act1", "fc_out -> conv 1x1")

    @property
    def exact_at_training_size(self) -> bool:
        """Whether the map at the training size must reproduce the logits: always for a
        flatten head (a 1x1 map), for gap only through the mean and with a linear head."""
        return self.kind == "flatten" or self.linear_head


class _ResNetInput(nn.Module):
    """The input handling of convlab's ResNet forward: grey -> 3 channels, ImageNet
    standardization for pretrained weights."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.input_norm = bool(getattr(resnet, "input_norm", False))
        if self.input_norm:
            self.register_buffer("rgb_mean", resnet.rgb_mean.clone(), False)
            self.register_buffer("rgb_std", resnet.rgb_std.clone(), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1|3, H, W) -> (B, 3, H, W)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.input_norm:
            x = (x - self.rgb_mean) / self.rgb_std
        return x


def _split(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, nn.Module]],
                                      HeadKind]:
    """(feature layers, head layers after flatten/pooling, kind) of a supported model."""
    if not any(isinstance(m, nn.Conv2d) for m in model.modules()):
        raise AnalysisError(f"{type(model).__name__} has no convolutional layer (an MLP?); "
                            f"only a CNN can be made fully convolutional")
    if all(hasattr(model, n) for n in ("conv1", "layer4", "avgpool", "fc")):  # torchvision
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        feats = [("input", _ResNetInput(model))] + [(n, getattr(model, n)) for n in names]
        fc = model.fc  # type: ignore[union-attr]
        head = list(fc.named_children()) if isinstance(fc, nn.Sequential) else [("fc", fc)]
        return feats, head, "gap"
    if not isinstance(model, nn.Sequential):
        raise AnalysisError(f"{type(model).__name__}: expected a sequential CNN (the cnn "
                            f"builder) or a ResNet")
    flat: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():  # open the head: stages..., gap, flatten, fc
        if isinstance(child, nn.Sequential) and any(isinstance(m, nn.Flatten) for m in child):
            flat += list(child.named_children())  # fc1, act1, ..., fc_out keep their names
        else:
            flat.append((name, child))
    cut = next((i for i, (_, m) in enumerate(flat) if isinstance(m, nn.Flatten)), None)
    if cut is None:
        raise AnalysisError("the model has no flatten layer before its classifier: it is "
                            "already fully convolutional or not a classifier")
    feats, head = flat[:cut], flat[cut + 1 :]
    kind: HeadKind = "flatten"
    if feats and isinstance(feats[-1][1], _GLOBAL_POOLS):
        feats, kind = feats[:-1], "gap"
    return feats, head, kind


def make_fully_convolutional(model: nn.Module, in_shape: tuple[int, int, int]) -> FullyConv:
    """Convert ``model`` (trained for images of ``in_shape``) into a fully convolutional
    copy; ``model`` itself is left untouched.

    Flatten head: first ``Linear`` -> ``Conv2d`` with kernel = the feature map's (h, w),
    later ones -> 1x1. GAP head: the pooling is dropped and every ``Linear`` -> 1x1.
    Activations and dropout are kept (they act per unit). Raises ``AnalysisError`` for
    an MLP or a head with other layers.
    """
    feats, head, kind = _split(model)
    features = nn.Sequential(OrderedDict((n, copy.deepcopy(m)) for n, m in feats)).eval()
    with torch.no_grad():
        f = features(torch.zeros(1, *in_shape, dtype=_dtype(model)))  # (1, C, h, w)
    if f.dim() != 4:
        raise AnalysisError(f"the features end in shape {tuple(f.shape[1:])}, not a (C, h, w) "
                            f"map")
    c, h, w = (int(v) for v in f.shape[1:])
    classifier: OrderedDict[str, nn.Module] = OrderedDict()
    notes, first, linear = [], True, True
    for name, m in head:
        if isinstance(m, nn.Linear):
            kh, kw = (h, w) if first and kind == "flatten" else (1, 1)
            classifier[name] = linear_to_conv(m, kh, kw)
            notes.append(f"{name} -> conv {m.out_features}x{kh}x{kw}")
            first = False
        elif isinstance(m, _KEEP):
            classifier[name] = copy.deepcopy(m)
            notes.append(name)
            if not isinstance(m, nn.Identity | nn.Dropout | nn.Dropout1d | nn.Dropout2d):
                linear = False
        else:
            raise AnalysisError(f"head layer {name} ({type(m).__name__}) cannot be turned "
                                f"into a convolution")
    if first:
        raise AnalysisError("the head has no Linear layer to convert")
    converted = nn.Sequential(OrderedDict(features=features,
                                          classifier=nn.Sequential(classifier))).eval()
    return FullyConv(converted, kind, (c, h, w), linear, tuple(notes))


def linear_to_conv(fc: nn.Linear, kh: int, kw: int) -> nn.Conv2d:
    """The convolution equal to ``fc`` on a (C, kh, kw) input, C = in_features / (kh kw)."""
    if fc.in_features % (kh * kw):
        raise AnalysisError(f"Linear({fc.in_features}, {fc.out_features}) does not fit a "
                            f"{kh}x{kw} feature map")
    c = fc.in_features // (kh * kw)
    conv = nn.Conv2d(c, fc.out_features, (kh, kw), bias=fc.bias is not None)
    conv = conv.to(device=fc.weight.device, dtype=fc.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(fc.weight.view(fc.out_features, c, kh, kw))  # C, then rows, cols
        if fc.bias is not None:
            conv.bias.copy_(fc.bias)  # type: ignore[union-attr]
    return conv


def _dtype(model: nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return p.dtype if p is not None else torch.float32


def max_difference(model: nn.Module, fc: FullyConv, in_shape: tuple[int, int, int],
                   x: torch.Tensor | None = None) -> tuple[float, float] | None:
    """(max |converted - original|, the same over max |original|) at the training size,
    on ``x`` or 4 random images. The relative figure matters for a model with huge
    logits, where float32 rounding alone makes absolute differences large.

    The converted map is (B, K, 1, 1) for a flatten head; for a gap head its spatial mean
    is compared. None when no equality is expected (a nonlinear head after the pooling).
    """
    if not fc.exact_at_training_size:
        return None
    if x is None:
        x = torch.randn(4, *in_shape, generator=torch.Generator().manual_seed(0))
    x = x.to(_dtype(model))
    with torch.no_grad():
        ref = model(x)  # (B, K)
        out = fc.model(x)  # (B, K, h', w')
    got = out.flatten(2).mean(2)  # (B, K); a single position for a flatten head
    diff = float((got - ref).abs().max())
    return diff, diff / max(float(ref.abs().max()), 1e-30)


def score_map(fc: FullyConv, x: torch.Tensor) -> torch.Tensor:
    """Class scores (K, H', W') of one model input ``x`` (C, H, W) of any size at least
    the training size (smaller ones leave no room for the first conv of the head)."""
    xb = x[None] if x.dim() == 3 else x
    try:
        with torch.no_grad():
            out = fc.model(xb.to(_dtype(fc.model)))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise AnalysisError(f"input {'x'.join(map(str, xb.shape[1:]))} is too small for the "
                            f"converted model ({first})") from None
    return out[0]


def output_size(fc: FullyConv, in_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """(K, H', W') of the score map for an input of ``in_shape``, without computing it."""
    return tuple(score_map(fc, torch.zeros(in_shape)).shape)  # type: ignore[return-value]


def save_scores(scores: torch.Tensor, path: str | Path, classes: list[str],
                image: torch.Tensor | None = None) -> Path:
    """The map (K, H', W') as safetensors (``scores``, and ``input`` (C, H, W) when given),
    class names in the metadata; written atomically."""
    from safetensors.torch import save_file

    from convlab.runs import atomic_write

    tensors = {"scores": scores.detach().float().cpu().contiguous()}
    if image is not None:
        tensors["input"] = image.detach().float().cpu().contiguous()
    meta = {"classes": json.dumps(classes), "layout": "scores: (classes, H', W')"}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, lambda tmp: save_file(tensors, str(tmp), metadata=meta))
    return p


def save_model(fc: FullyConv, path: str | Path) -> Path:
    """The converted model's state dict (safetensors), for reuse without a conversion."""
    from safetensors.torch import save_file

    from convlab.runs import atomic_write

    sd = {k: v.detach().cpu().contiguous().clone() for k, v in fc.model.state_dict().items()}
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(p, lambda tmp: save_file(sd, str(tmp)))
    return p


def plot_scores(scores: torch.Tensor, image: torch.Tensor, classes: list[str],
                out: str | Path, title: str = "", max_classes: int = 10) -> Path:
    """The input, the argmax class per location, and the softmax probability map of each
    class (the ``max_classes`` with the highest peak when there are more)."""
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    from convlab.analysis.viz import _figure, _hide_rest, _off, _show, _t, save_png

    k = scores.shape[0]
    probs = scores.float().softmax(0)  # (K, H', W')
    arg = probs.argmax(0)  # (H', W')
    shown = probs.flatten(1).max(1).values.argsort(descending=True)[:max_classes].sort().values
    n = 2 + len(shown)
    cols = min(n, 6)
    rows = -(-n // cols)
    fig, axes = _figure(rows, cols, 2.0)
    flat = [a for row in axes for a in row]
    _show(flat[0], image, f"input {'x'.join(map(str, image.shape[-2:]))}")
    base = colormaps["tab10" if k <= 10 else "tab20"]
    cmap = ListedColormap([base(i % base.N) for i in range(k)])
    flat[1].imshow(arg.numpy(), cmap=cmap, norm=BoundaryNorm(range(k + 1), k),
                   interpolation="nearest")
    _off(flat[1], f"argmax class ({scores.shape[1]}x{scores.shape[2]})")
    present = sorted(set(arg.flatten().tolist()))
    flat[1].legend(handles=[Patch(color=cmap(i), label=_t(classes[i])) for i in present],
                   fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    for ax, c in zip(flat[2:], shown.tolist(), strict=False):
        ax.imshow(probs[c].numpy(), cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        _off(ax, f"p({classes[c]})")
    _hide_rest(axes, n)
    fig.suptitle(_t(title), fontsize=9)
    return save_png(fig, out)
