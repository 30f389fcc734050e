"""Receptive fields, computed two ways that must agree.

*Analytic*: the recurrence of Araujo, Norris & Sim, "Computing Receptive Fields of
Convolutional Neural Networks", Distill 2019, per spatial axis, for a layer of kernel
``k``, stride ``s``, padding ``p`` (before) and dilation ``d``::

    r_out     = r_in + (k - 1) * d * j_in          # receptive-field size
    j_out     = j_in * s                           # jump: distance of adjacent units
    start_out = start_in + ((k - 1) * d / 2 - p) * j_in   # centre of unit 0's field

Output unit ``i`` then sees the input pixels ``start + i*j +- (r - 1)/2``. Padding alone
(``ZeroPad2d``) only moves ``start``; element-wise layers (activations, BN, dropout)
change nothing; where branches meet (a residual add, a concatenation) the field is the
union of the branches' fields ("the max over the branches"); a global pool or a fully
connected layer sees its whole input.

Rather than pattern-match module classes, :class:`FieldTracker` is a
``TorchFunctionMode`` that sees every torch call of a forward pass (``conv2d``,
``max_pool2d``, ``pad``, ``add``, ``linear``, ...) and carries a field along with each
tensor. It therefore works for any ``nn.Module``, including torchvision's ResNets whose
residual add is written in ``forward`` rather than as a module. An operation it does
not know that changes the spatial size makes the field unknown (``None``) rather than
wrong.

*Empirical*: back-propagate from one output unit to the input of a copy of the model
whose weights are positive constants (biases zero, BN an identity, max-pooling swapped
for average pooling of the same geometry, so no gradient path is cut off by a ReLU or
an argmax). Every input pixel in the field then has a strictly positive gradient and
every pixel outside it a zero one; the bounding box of the nonzero gradient is the
field, clipped to the image.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from convlab.analysis.common import AnalysisError

Pair = tuple[int, int]


@dataclass(frozen=True)
class Field:
    """The receptive field of the units of one tensor, per axis (H, W).

    ``size`` and ``jump`` are the textbook quantities; ``start`` is the centre of unit
    0's field in input pixel coordinates (may be a half-integer, and negative when the
    field reaches into padding); ``grid`` is the spatial size (H, W) of the map the
    units index (kept through ``flatten`` so a following linear layer knows it).
    """

    size: Pair
    jump: Pair
    start: tuple[float, float]
    grid: Pair

    def box(self, i: int, j: int) -> tuple[Pair, Pair]:
        """Inclusive input rows and columns seen by unit (i, j), not clipped to the image."""
        rows = _interval(self.start[0] + i * self.jump[0], self.size[0])
        cols = _interval(self.start[1] + j * self.jump[1], self.size[1])
        return rows, cols

    def clipped_box(self, i: int, j: int, image: Pair) -> tuple[Pair, Pair]:
        """:meth:`box` clipped to an ``image`` of (H, W) pixels: what a gradient can show."""
        (r0, r1), (c0, c1) = self.box(i, j)
        return (max(r0, 0), min(r1, image[0] - 1)), (max(c0, 0), min(c1, image[1] - 1))


def _interval(centre: float, size: int) -> Pair:
    half = (size - 1) / 2
    return round(centre - half), round(centre + half)


def input_field(hw: Pair) -> Field:
    """Each input pixel sees itself: r = 1, j = 1, centred on its own index."""
    return Field((1, 1), (1, 1), (0.0, 0.0), hw)


def _pair(v: Any) -> Pair:
    if isinstance(v, int):
        return v, v
    v = tuple(v)
    return (int(v[0]), int(v[0])) if len(v) == 1 else (int(v[0]), int(v[1]))


def window_field(f: Field, k: Pair, s: Pair, p_before: Pair, d: Pair, out_hw: Pair) -> Field:
    """Araujo et al. (2019), eq. for one sliding-window layer, applied per axis."""
    size = tuple(f.size[a] + (k[a] - 1) * d[a] * f.jump[a] for a in (0, 1))
    jump = tuple(f.jump[a] * s[a] for a in (0, 1))
    start = tuple(f.start[a] + ((k[a] - 1) * d[a] / 2 - p_before[a]) * f.jump[a] for a in (0, 1))
    return Field(size, jump, start, out_hw)  # type: ignore[arg-type]


def global_field(f: Field) -> Field:
    """A layer that sees the whole map: a window of k = grid, so r + (n - 1) * j."""
    return window_field(f, f.grid, (1, 1), (0, 0), (1, 1), (1, 1))


def union(fields: Iterable[Field]) -> Field:
    """Where branches meet, unit 0 sees the union of what each branch's unit 0 sees."""
    fs = list(fields)
    if len(fs) == 1:
        return fs[0]
    size, start = [], []
    for a in (0, 1):
        lo = min(f.start[a] - (f.size[a] - 1) / 2 for f in fs)
        hi = max(f.start[a] + (f.size[a] - 1) / 2 for f in fs)
        size.append(round(hi - lo) + 1)
        start.append((lo + hi) / 2)
    jump = (max(f.jump[0] for f in fs), max(f.jump[1] for f in fs))
    grid = max((f.grid for f in fs), key=lambda g: g[0] * g[1])
    return Field((size[0], size[1]), jump, (start[0], start[1]), grid)


# ------------------------------------------------------------- analytic tracking

_ARGS: dict[str, tuple[str, ...]] = {
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "max_pool2d": ("input", "kernel_size", "stride", "padding", "dilation"),
    "avg_pool2d": ("input", "kernel_size", "stride", "padding"),
    "pad": ("input", "pad", "mode", "value"),
    "adaptive_pool": ("input", "output_size"),
    "reduce": ("input", "dim"),
}
_MAX_POOLS = {"max_pool2d", "_max_pool2d", "max_pool2d_with_indices", "boolean_dispatch"}
_ADAPTIVE = {"adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"}
_REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "std", "var", "norm", "logsumexp"}
_SHAPE_ONLY = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "contiguous", "clone",
               "to", "float", "double", "half", "detach"}


def _bind(kind: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    names = _ARGS[kind]
    out = dict(zip(names, args, strict=False))
    out.update({k: v for k, v in kwargs.items() if k in names or k == "dim"})
    return out


def _hw(t: torch.Tensor) -> Pair:
    return int(t.shape[-2]), int(t.shape[-1])


def _conv_rule(f: Field, a: dict[str, Any], out: torch.Tensor) -> Field:
    k = _pair(tuple(a["weight"].shape[-2:]))
    s, d = _pair(a.get("stride", 1)), _pair(a.get("dilation", 1))
    p = a.get("padding", 0)
    if isinstance(p, str):  # PyTorch's "same" puts the odd pixel after, like TensorFlow
        p = tuple((d[i] * (k[i] - 1)) // 2 for i in (0, 1)) if p == "same" else (0, 0)
    return window_field(f, k, s, _pair(p), d, _hw(out))


def _pool_rule(f: Field, a: dict[str, Any], out: torch.Tensor, is_max: bool) -> Field:
    k = _pair(a["kernel_size"])
    stride = a.get("stride")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _pair(stride)
    d = _pair(a.get("dilation", 1)) if is_max else (1, 1)
    return window_field(f, k, s, _pair(a.get("padding", 0)), d, _hw(out))


def _pad_rule(f: Field, a: dict[str, Any], out: torch.Tensor) -> Field:
    pad = list(a["pad"]) + [0, 0, 0, 0]  # (left, right, top, bottom) of the last two axes
    left, top = pad[0], pad[2]
    start = (f.start[0] - top * f.jump[0], f.start[1] - left * f.jump[1])
    return Field(f.size, f.jump, start, _hw(out))


def _adaptive_rule(f: Field, inp: torch.Tensor, out: torch.Tensor) -> Field | None:
    (n_h, n_w), (m_h, m_w) = _hw(inp), _hw(out)
    if (m_h, m_w) == (1, 1):
        return global_field(replace(f, grid=(n_h, n_w)))
    if n_h % m_h or n_w % m_w:
        return None  # uneven adaptive windows have no single kernel/stride: unknown
    k = (n_h // m_h, n_w // m_w)
    return window_field(f, k, k, (0, 0), (1, 1), (m_h, m_w))


def _getitem_rule(f: Field, inp: torch.Tensor, index: Any, out: torch.Tensor) -> Field | None:
    """Basic slicing ``x[..., a::s, b::t]``: a window of k = 1, stride s, moved by a."""
    idx = index if isinstance(index, tuple) else (index,)
    if any(not isinstance(i, slice) and i is not Ellipsis for i in idx):
        return None  # integer or advanced indexing: leave it to the generic rules
    if Ellipsis in idx:
        e = idx.index(Ellipsis)
        fill = inp.dim() - (len(idx) - 1)
        idx = idx[:e] + (slice(None),) * fill + idx[e + 1:]
    idx = idx + (slice(None),) * (inp.dim() - len(idx))
    if inp.dim() < 4:
        return f
    steps, starts = [], []
    for a, sl in enumerate(idx[-2:]):
        start, _, step = sl.indices(int(inp.shape[-2 + a]))
        steps.append(step)
        starts.append(-start)  # dropping the first `start` pixels is a negative padding
    return window_field(f, (1, 1), (steps[0], steps[1]), (starts[0], starts[1]), (1, 1), _hw(out))


def _reduces_space(inp: torch.Tensor, a: dict[str, Any]) -> bool:
    if inp.dim() < 3:
        return False
    dims = a.get("dim")
    if dims is None:
        return True
    dims = [dims] if isinstance(dims, int) else list(dims)
    nd = inp.dim()
    return any(dd % nd in (nd - 1, nd - 2) for dd in dims)


def first_tensor(result: Any) -> torch.Tensor | None:
    if isinstance(result, torch.Tensor):
        return result
    if isinstance(result, tuple | list) and result and isinstance(result[0], torch.Tensor):
        return result[0]
    return None


def _tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, list | tuple):
        return [t for o in obj for t in _tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _tensors(o)]
    return []


class FieldTracker(TorchFunctionMode):
    """Carries a :class:`Field` along with every tensor computed from a tracked input.

    Use as a context manager around one forward pass after :meth:`track` of the input;
    :meth:`field` then answers for any tensor of that pass (``None`` when unknown).
    Tensors are kept alive while the tracker lives so that ``id`` values stay unique.
    """

    def __init__(self) -> None:
        super().__init__()
        self._fields: dict[int, tuple[torch.Tensor, Field | None]] = {}

    def track(self, x: torch.Tensor) -> None:
        self._fields[id(x)] = (x, input_field(_hw(x)))

    def known(self, t: torch.Tensor) -> bool:
        return id(t) in self._fields and self._fields[id(t)][0] is t

    def field(self, t: torch.Tensor) -> Field | None:
        return self._fields[id(t)][1] if self.known(t) else None

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        out = first_tensor(result)
        inputs = [t for t in _tensors((args, kwargs)) if self.known(t)]
        if out is None or not inputs:
            return result
        fields = [self._fields[id(t)][1] for t in inputs]
        new: Field | None = None
        if all(f is not None for f in fields):
            new = self._rule(getattr(func, "__name__", ""), inputs[0], fields, args, kwargs, out)
        self._fields[id(out)] = (out, new)
        return result

    @staticmethod
    def _rule(
        name: str, inp: torch.Tensor, fields: list[Any], args: tuple[Any, ...],
        kwargs: dict[str, Any], out: torch.Tensor,
    ) -> Field | None:
        f = fields[0]
        if name in ("conv2d", "convolution") and inp is args[0]:
            return _conv_rule(f, _bind("conv2d", args, kwargs), out)
        if name in _MAX_POOLS:
            return _pool_rule(f, _bind("max_pool2d", args, kwargs), out, is_max=True)
        if name == "avg_pool2d":
            return _pool_rule(f, _bind("avg_pool2d", args, kwargs), out, is_max=False)
        if name in ("pad", "constant_pad_nd"):
            return _pad_rule(f, _bind("pad", args, kwargs), out)
        if name in _ADAPTIVE:
            return _adaptive_rule(f, inp, out)
        if name == "__getitem__" and inp is args[0]:
            sliced = _getitem_rule(f, inp, args[1], out)
            if sliced is not None:
                return sliced  # else: integer / advanced indexing, the generic rules below
        if name == "linear":  # every output sees every input of the (flattened) map
            return global_field(f) if inp.dim() == 2 else None
        if name in _REDUCTIONS and _reduces_space(inp, _bind("reduce", args, kwargs)):
            return global_field(replace(f, grid=_hw(inp)) if inp.dim() >= 3 else f)
        if name in _SHAPE_ONLY or out.dim() < 4 or inp.dim() < 4:
            return union(fields)  # flatten & co: each unit keeps its field
        if _hw(out) == _hw(inp):  # element-wise (activation, BN, add, cat on channels)
            return union(fields)
        return None  # an operation we cannot read changed the spatial size


def _named_outputs(
    model: nn.Module, in_shape: tuple[int, int, int], names: Iterable[str] | None = None
) -> tuple[dict[str, tuple[torch.Tensor, Field | None]], FieldTracker]:
    """One tracked forward pass; the output tensor and field of each named module."""
    modules = dict(model.named_modules())
    wanted = list(names) if names is not None else [n for n in modules if n]
    out: dict[str, tuple[torch.Tensor, Field | None]] = {}
    tracker = FieldTracker()
    hooks = []
    for n in wanted:
        def hook(_m: nn.Module, _i: Any, o: Any, n: str = n) -> None:
            t = first_tensor(o)
            if t is not None and n not in out:
                out[n] = (t, tracker.field(t))

        hooks.append(modules[n].register_forward_hook(hook))
    traced_forward(model, in_shape, tracker, hooks)
    return out, tracker


def traced_forward(
    model: nn.Module, in_shape: tuple[int, int, int], tracker: FieldTracker, hooks: list[Any]
) -> None:
    """One no-grad eval-mode forward pass of a zero image under ``tracker``; the model's
    mode is restored and the forward ``hooks`` removed afterwards, whatever happens."""
    was = model.training
    model.eval()
    x = torch.zeros(1, *in_shape, dtype=param_dtype(model))
    try:
        with torch.no_grad(), tracker:
            tracker.track(x)
            model(x)
    finally:
        model.train(was)
        for h in hooks:
            h.remove()


def param_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first parameter (float32 without parameters)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.get_default_dtype()


def output_field(model: nn.Module, in_shape: tuple[int, int, int]) -> Field | None:
    """Analytic field of the model's (first) output: the whole module as one layer."""
    tracker = FieldTracker()
    was = model.training
    model.eval()
    x = torch.zeros(1, *in_shape, dtype=param_dtype(model))
    try:
        with torch.no_grad(), tracker:
            tracker.track(x)
            y = first_tensor(model(x))
    finally:
        model.train(was)
    return tracker.field(y) if y is not None else None


def receptive_fields(model: nn.Module, in_shape: tuple[int, int, int]) -> dict[str, Field | None]:
    """Analytic field at the output of every named module (leaves and containers).

    Keys are dotted module paths in order of completion; ``None`` marks an output the
    tracker cannot describe.
    """
    outs, _ = _named_outputs(model, in_shape)
    return {n: f for n, (_, f) in outs.items()}


# ------------------------------------------------------------- empirical check


def gradient_copy(model: nn.Module) -> nn.Module:
    """A copy whose every path from input to output carries a positive gradient.

    Conv and linear weights become 1/fan_in, biases 0, batch norm an identity (mean 0,
    var 1, scale 1, shift 0). Run it in eval mode on a positive input, under
    :class:`AvgForMax`: every activation stays positive, so ReLU passes every path.
    """
    twin = copy.deepcopy(model).double().eval()
    for m in twin.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.fill_(1.0 / fan_in)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                if m.running_mean is not None:
                    m.running_mean.zero_()
                    m.running_var.fill_(1.0)
                if m.affine:
                    m.weight.fill_(1.0)
                    m.bias.zero_()
    return twin


class AvgForMax(TorchFunctionMode):
    """Runs every max pooling as average pooling of the same geometry.

    An argmax routes the gradient to one pixel of each window, which would hide the
    rest of the field; the average passes it to all of them. Works for ``nn.MaxPool2d``
    and for ``F.max_pool2d`` written in a ``forward`` alike. Dilated max pooling (no
    average counterpart) is left as it is.
    """

    def __torch_function__(
        self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        import torch.nn.functional as F

        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _MAX_POOLS:
            a = _bind("max_pool2d", args, kwargs)
            ceil = kwargs.get("ceil_mode", args[5] if len(args) > 5 else False)
            with_idx = kwargs.get("return_indices", args[6] if len(args) > 6 else False)
            if _pair(a.get("dilation", 1)) == (1, 1) and not with_idx:
                stride = a.get("stride")
                return F.avg_pool2d(a["input"], a["kernel_size"], stride or None,
                                    a.get("padding", 0), ceil_mode=bool(ceil),
                                    count_include_pad=True)
        if name in ("adaptive_max_pool2d",) and not kwargs.get("return_indices", False):
            return F.adaptive_avg_pool2d(args[0], args[1] if len(args) > 1
                                         else kwargs["output_size"])
        return func(*args, **kwargs)


class _Stop(Exception):
    """Raised by a hook to end the forward pass once the wanted layers have run."""


@dataclass(frozen=True)
class EmpiricalField:
    """Support of d(unit)/d(input): its bounding box and the gradient map itself."""

    layer: str
    unit: Pair  # (i, j) of the output unit, channel 0
    rows: Pair  # inclusive bounding box of the nonzero gradient
    cols: Pair
    grad: torch.Tensor  # (H, W) |gradient| summed over input channels

    @property
    def size(self) -> Pair:
        return self.rows[1] - self.rows[0] + 1, self.cols[1] - self.cols[0] + 1


def empirical_fields(
    model: nn.Module, in_shape: tuple[int, int, int], layers: Iterable[str],
    units: dict[str, Pair] | None = None,
) -> dict[str, EmpiricalField]:
    """The measured field of one unit of each layer's output (default: the central unit).

    For a spatial output (B, C, H, W) the unit is channel 0 at ``units[layer]`` (default
    ``(H // 2, W // 2)``); for a vector output it is element 0. One forward pass of the
    :func:`gradient_copy` serves every layer; each layer then costs one backward pass.
    """
    layers = list(layers)
    modules = dict(model.named_modules())
    for layer in layers:
        if layer not in modules or not layer:
            names = ", ".join(m for m in modules if m)
            raise AnalysisError(f"unknown layer {layer!r}; expected one of: {names}")
    twin = gradient_copy(model)
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for layer in layers:
        def hook(_m: nn.Module, _i: Any, o: Any, layer: str = layer) -> None:
            t = first_tensor(o)
            if t is not None and layer not in captured:
                captured[layer] = t
            if len(captured) == len(layers):
                raise _Stop

        handles.append(twin.get_submodule(layer).register_forward_hook(hook))
    x = torch.ones(1, *in_shape, dtype=torch.float64, requires_grad=True)
    try:
        with AvgForMax():
            twin(x)
    except _Stop:
        pass
    finally:
        for h in handles:
            h.remove()
    out = {}
    for layer in layers:
        if layer not in captured:
            raise AnalysisError(f"layer {layer!r} did not run in the forward pass")
        y = captured[layer]
        if y.dim() == 4:
            given = (units or {}).get(layer)
            i, j = given if given is not None else (y.shape[2] // 2, y.shape[3] // 2)
            target = y[0, 0, i, j]
        else:
            i, j = 0, 0
            target = y.reshape(-1)[0]
        if not target.requires_grad:
            raise AnalysisError(f"layer {layer}: the output does not depend on the input")
        (g,) = torch.autograd.grad(target, x, retain_graph=True)
        grad = g[0].abs().sum(0)  # (H, W)
        nz = torch.nonzero(grad > 0)
        if nz.numel() == 0:
            raise AnalysisError(f"layer {layer}: the output does not depend on the input")
        rows = (int(nz[:, 0].min()), int(nz[:, 0].max()))
        cols = (int(nz[:, 1].min()), int(nz[:, 1].max()))
        out[layer] = EmpiricalField(layer, (int(i), int(j)), rows, cols, grad.float())
    return out


def empirical_field(
    model: nn.Module, in_shape: tuple[int, int, int], layer: str, unit: Pair | None = None
) -> EmpiricalField:
    """:func:`empirical_fields` for one layer."""
    return empirical_fields(model, in_shape, [layer], {layer: unit} if unit else None)[layer]


@dataclass(frozen=True)
class FieldCheck:
    """Analytic vs empirical field of one unit of one layer, both clipped to the image.

    When the analytic field fits inside the image the two boxes must be equal. When it
    reaches past the border (``clipped``) the measured support can be smaller than the
    clipped box: a tap that lands on an intermediate layer's zero padding stands for
    pixels that never reach the unit. Then the measurement must lie within the box.
    """

    layer: str
    unit: Pair
    analytic: tuple[Pair, Pair]
    empirical: tuple[Pair, Pair]
    field: Field
    clipped: bool = False

    @property
    def exact(self) -> bool:
        return self.analytic == self.empirical

    @property
    def agree(self) -> bool:
        if not self.clipped:
            return self.exact
        (ar, ac), (er, ec) = self.analytic, self.empirical
        return ar[0] <= er[0] and er[1] <= ar[1] and ac[0] <= ec[0] and ec[1] <= ac[1]


def compare_fields(
    model: nn.Module, in_shape: tuple[int, int, int], layers: Iterable[str] | None = None
) -> list[FieldCheck]:
    """Both methods at every layer whose output is a spatial map (or a linear layer's).

    Default layers: the top-level children and every leaf with a spatial output, which
    for the ``cnn`` builder means each stage and each conv/pool/activation in it.
    """
    outs, _ = _named_outputs(model, in_shape)
    if layers is None:
        top = {n for n, _ in model.named_children()}
        layers = [
            n for n, (t, f) in outs.items()
            if f is not None and (t.dim() == 4 or n in top or _is_linear(model, n))
        ]
    layers = list(layers)
    for n in layers:
        if n not in outs:
            raise AnalysisError(f"layer {n!r} did not run in the forward pass")
    known = [n for n in layers if outs[n][1] is not None]
    measured = empirical_fields(model, in_shape, known)
    checks = []
    for n in known:
        f, emp = outs[n][1], measured[n]
        assert f is not None
        i, j = emp.unit
        clipped = f.clipped_box(i, j, in_shape[1:])
        checks.append(FieldCheck(n, emp.unit, clipped, (emp.rows, emp.cols), f,
                                 clipped != f.box(i, j)))
    return checks


def stage_layers(model: nn.Module) -> list[str]:
    """The outputs of each top-level child and, inside Sequential children, of each of
    theirs: the stages of a ``cnn``, the blocks of a ResNet, the layers of an MLP."""
    out = []
    for name, child in model.named_children():
        out.append(name)
        if isinstance(child, nn.Sequential):
            out += [f"{name}.{n}" for n, _ in child.named_children()]
    return out


def _is_linear(model: nn.Module, name: str) -> bool:
    return isinstance(model.get_submodule(name), nn.Linear)


def field_text(f: Field | None) -> tuple[str, str]:
    """("5x5" or "5", "2") for a table; ("?", "?") when unknown."""
    if f is None:
        return "?", "?"
    size = str(f.size[0]) if f.size[0] == f.size[1] else f"{f.size[0]}x{f.size[1]}"
    jump = str(f.jump[0]) if f.jump[0] == f.jump[1] else f"{f.jump[0]}x{f.jump[1]}"
    return size, jump


