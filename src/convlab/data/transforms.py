"""Batched, on-device transforms: normalization, augmentation, resizing, pixel permutation.

The dataset lives on the training device as one uint8 tensor; the loader gathers a batch,
converts it to float in [0, 1], then calls an :class:`Augmenter` (training only) and a
:class:`Normalizer`. Every operation here is a handful of batched tensor ops — no
per-sample Python loop, no PIL — yet each image gets its own random draw, taken from a
``torch.Generator`` on the batch's device so runs are reproducible.

Why not ``torchvision.transforms.v2``: its random transforms draw ONE set of parameters
per call, so applied to a batch tensor every image gets the same crop, flip and angle.
That is a much weaker augmentation; here parameters are drawn per image and applied with
index arithmetic (crop, translate, flip) or one batched ``grid_sample`` (rotation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from convlab.data.settings import AugmentConfig

NORMALIZE_MODES = ("none", "channel", "mean_image", "zca")

# ITU-R 601-2 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA = (0.2989, 0.587, 0.114)

# Rows per chunk when reducing over the training set: 1024 uint8 images fit in cache, and
# an int32 sum over them is exact (1024 * 255 < 2**31).
_CHUNK = 1024


# ------------------------------------------------------------------ helpers


def memory_format(x: Tensor) -> torch.memory_format:
    """The memory format of a 4-D tensor: channels_last only when it is strictly that."""
    if x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(
        memory_format=torch.channels_last
    ):
        return torch.channels_last
    return torch.contiguous_format


def _check_generator(x: Tensor, generator: torch.Generator) -> None:
    """Refuse a generator on another device: drawing there would mean a copy per batch."""
    if generator.device.type != x.device.type:
        raise ValueError(
            f"augmentation generator is on {generator.device} but the batch is on "
            f"{x.device}; create it with torch.Generator(device=batch.device)"
        )


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> Tensor:
    """(n,) float32 uniform in [low, high] on the generator's device."""
    u = torch.rand(n, generator=generator, device=generator.device)
    return u.mul_(high - low).add_(low)


def _grey(x: Tensor) -> Tensor:
    """(B, 1, H, W) grey level: luma for RGB, the channel mean otherwise."""
    if x.shape[1] == 3:  # three scaled adds: 3x faster than a channel-dim reduction
        r, g, b = _LUMA
        return (x[:, 0:1] * r).add_(x[:, 1:2], alpha=g).add_(x[:, 2:3], alpha=b)
    return x.mean(1, keepdim=True)


# ------------------------------------------------------------ normalization


@dataclass(frozen=True, eq=False)
class Normalizer:
    """Standardization fitted on the training split and applied to every split.

    ``mean``/``std`` are (C,) for ``channel``; ``mean`` is (C, H, W) for ``mean_image``
    and ``zca``, which also has the (D, D) whitening matrix ``whiten``, D = C*H*W.
    All statistics are in units of [0, 1] pixel values.
    """

    mode: str = "none"
    mean: Tensor | None = None
    std: Tensor | None = None
    whiten: Tensor | None = None

    def __post_init__(self) -> None:
        if self.mode not in NORMALIZE_MODES:
            raise ValueError(f"normalize mode {self.mode!r}: expected one of {NORMALIZE_MODES}")

    def __call__(self, x: Tensor) -> Tensor:
        """Normalize a float batch (B, C, H, W) in [0, 1]; memory format is kept."""
        if self.mode == "none":
            return x
        if self.mode == "channel":
            assert self.mean is not None and self.std is not None
            scale = (1.0 / self.std).to(x.dtype).view(1, -1, 1, 1)  # (1, C, 1, 1)
            shift = (-self.mean / self.std).to(x.dtype).view(1, -1, 1, 1)
            return x.mul(scale).add_(shift)
        if self.mode == "mean_image":
            assert self.mean is not None
            return x.sub(self.mean.to(x.dtype))  # (B, C, H, W) - (C, H, W)
        return self._zca(x)

    def _zca(self, x: Tensor) -> Tensor:
        assert self.mean is not None and self.whiten is not None
        b = x.shape[0]
        flat = x.reshape(b, -1) - self.mean.to(x.dtype).reshape(1, -1)  # (B, D)
        out = flat @ self.whiten.to(x.dtype)  # W is symmetric, so x W == (W x^T)^T
        return out.view(x.shape).contiguous(memory_format=memory_format(x))

    def to(self, device: torch.device | str) -> Normalizer:
        """A copy with every statistic on ``device``."""
        moved = {k: v.to(device) for k, v in self.tensors().items()}
        return Normalizer(self.mode, **moved)

    def tensors(self) -> dict[str, Tensor]:
        """The statistics by name, contiguous, ready for ``safetensors.torch.save_file``."""
        named = {"mean": self.mean, "std": self.std, "whiten": self.whiten}
        return {k: v.contiguous() for k, v in named.items() if v is not None}

    @classmethod
    def from_tensors(cls, mode: str, tensors: dict[str, Tensor]) -> Normalizer:
        """Rebuild from :meth:`tensors` (e.g. read back from a safetensors file)."""
        need = {"none": set(), "channel": {"mean", "std"}, "mean_image": {"mean"},
                "zca": {"mean", "whiten"}}
        if mode not in need:
            raise ValueError(f"normalize mode {mode!r}: expected one of {NORMALIZE_MODES}")
        if set(tensors) != need[mode]:
            raise ValueError(
                f"normalize mode {mode!r} needs tensors {sorted(need[mode])}, "
                f"got {sorted(tensors)}"
            )
        return cls(mode, **tensors)


def fit_normalizer(train_images: Tensor, mode: str, zca_epsilon: float = 1e-2) -> Normalizer:
    """Fit normalization statistics on the TRAINING images only (uint8, (N, C, H, W)).

    Fitting on the training split alone keeps test data out of the pipeline; the same
    statistics are then applied to validation and test batches.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize mode {mode!r}: expected one of {NORMALIZE_MODES}")
    if train_images.dtype != torch.uint8 or train_images.dim() != 4:
        raise ValueError(
            f"expected uint8 images (N, C, H, W), got {train_images.dtype} "
            f"{tuple(train_images.shape)}"
        )
    if mode == "none":
        return Normalizer("none")
    if mode == "channel":
        mean, std = channel_stats(train_images)
        return Normalizer("channel", mean=mean, std=std)
    mean_image = pixel_mean(train_images)  # (C, H, W) float64
    if mode == "mean_image":
        return Normalizer("mean_image", mean=mean_image.float())
    whiten = zca_matrix(train_images, mean_image, zca_epsilon)
    return Normalizer("zca", mean=mean_image.float(), whiten=whiten.float())


def channel_stats(images: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) std in [0, 1] units, float32 (C,), exact.

    A uint8 channel is summarized by its 256-bin histogram (``bincount``: integer
    counts, so nothing is lost), from which the moments follow in float64. This is
    ~30 ms for MNIST's 47M pixels on 2 cores, where a float64 pass takes ~200 ms.
    """
    c = images.shape[1]
    values = torch.arange(256, dtype=torch.float64, device=images.device) / 255.0
    hists = torch.stack(
        [torch.bincount(images[:, i].reshape(-1), minlength=256) for i in range(c)]
    ).double()  # (C, 256)
    n = hists.sum(1)  # (C,)
    mean = hists @ values / n
    var = (hists * (values - mean[:, None]) ** 2).sum(1) / n
    std = var.sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))  # a constant channel: no scaling
    return mean.float(), std.float()


def pixel_mean(images: Tensor) -> Tensor:
    """The mean image (C, H, W) in [0, 1] units, float64, exact (int32 chunk sums)."""
    n = images.shape[0]
    total = torch.zeros(images.shape[1:], dtype=torch.float64, device=images.device)
    for chunk in images.split(_CHUNK):
        total += chunk.sum(0, dtype=torch.int32)
    return total / (255.0 * n)


def zca_matrix(images: Tensor, mean_image: Tensor, epsilon: float) -> Tensor:
    """ZCA whitening matrix W = U diag(1 / sqrt(S + eps)) U^T, float64 (D, D).

    ZCA (Krizhevsky 2009, "Learning Multiple Layers of Features from Tiny Images",
    appendix; Coates & Ng 2012, "Learning Feature Representations with K-means") is the
    whitening that stays closest to the input, so whitened images still look like
    images (edges emphasized). C = U diag(S) U^T is the covariance of the mean-centred
    flattened training images, accumulated in float64 over chunks so memory stays at
    one chunk plus the (D, D) matrix; eps damps the near-zero eigenvalues (noise).
    """
    n = images.shape[0]
    flat_mean = mean_image.reshape(1, -1)  # (1, D)
    d = flat_mean.shape[1]
    cov = torch.zeros(d, d, dtype=torch.float64, device=images.device)
    for chunk in images.split(_CHUNK):
        xc = chunk.reshape(chunk.shape[0], d).double().div_(255.0).sub_(flat_mean)  # (b, D)
        cov.addmm_(xc.T, xc)
    cov /= n
    s, u = torch.linalg.eigh(cov)  # ascending eigenvalues, orthonormal columns
    s = s.clamp_min(0.0)  # round-off can make tiny eigenvalues slightly negative
    return (u * (s + epsilon).rsqrt()) @ u.T


# ------------------------------------------------------------ augmentation


@dataclass(frozen=True, eq=False)
class AugmentParams:
    """The per-image random draws of one batch; ``None`` where the op is off.

    ``shift`` (B, 2) int64 is (dy, dx): output pixel (i, j) reads input (i + dy, j + dx).
    ``angle`` (B,) degrees, counter-clockwise. Jitter factors (B,) multiply around 1.
    """

    shift: Tensor | None = None
    max_shift: int = 0  # a bound on |shift|, known without a host sync
    flip: Tensor | None = None  # (B,) bool: mirror horizontally
    angle: Tensor | None = None
    brightness: Tensor | None = None
    contrast: Tensor | None = None
    saturation: Tensor | None = None


class Augmenter:
    """Training-time augmentation, one independent random draw per image.

    Geometry is fused: crop-from-padded and translation are both integer shifts with
    zero fill, so they (and the flip) become one gather from a batch padded once; with
    rotation on, flip, shift and rotation are folded into one affine matrix per image
    and one ``grid_sample``. Crop and translate together shift by the sum of their two
    draws. Then colour jitter, then noise. An op that is off draws nothing and costs
    nothing; with every op off the batch is returned as is.
    """

    def __init__(self, cfg: AugmentConfig) -> None:
        self.cfg = cfg

    @property
    def enabled(self) -> bool:
        return self.cfg.enabled

    def __call__(
        self, x: Tensor, generator: torch.Generator, flip: Tensor | None = None
    ) -> Tensor:
        """Augment a float batch (B, C, H, W) in [0, 1]; dtype and memory format kept.
        ``flip``: the (B,) mirror decisions of ``flip: alternate`` (the loader knows each
        image's index and the epoch)."""
        if not self.enabled:
            return x
        _check_generator(x, generator)
        return self.apply(x, self.sample(x.shape[0], generator, flip), generator)

    def sample(
        self, batch: int, generator: torch.Generator, flip_given: Tensor | None = None
    ) -> AugmentParams:
        """Draw every per-image parameter of one batch, in a fixed order (an alternating
        flip draws nothing: its decisions are given)."""
        cfg, dev = self.cfg, generator.device
        shift, max_shift = None, cfg.crop_padding + cfg.translate
        for r in (cfg.crop_padding, cfg.translate):
            if r:
                d = torch.randint(-r, r + 1, (batch, 2), generator=generator, device=dev)
                shift = d if shift is None else shift + d
        if cfg.flip == "alternate":
            flip = flip_given
        else:
            flip = torch.rand(batch, generator=generator, device=dev) < 0.5 if cfg.flip else None
        rot = cfg.rotate
        angle = _uniform(batch, -rot, rot, generator) if rot else None
        cj = cfg.color_jitter
        factors = [
            _uniform(batch, 1 - s, 1 + s, generator) if s else None
            for s in (cj.brightness, cj.contrast, cj.saturation)
        ]
        return AugmentParams(shift, max_shift, flip, angle, *factors)

    def apply(self, x: Tensor, params: AugmentParams, generator: torch.Generator) -> Tensor:
        """Apply drawn parameters (and draw the noise) to a batch (B, C, H, W)."""
        fmt = memory_format(x)
        if params.angle is not None:
            x = affine(x, params.angle, params.shift, params.flip, self.cfg.fill)
        elif params.shift is not None or params.flip is not None:
            x = shift_flip(x, params.shift, params.flip, params.max_shift, self.cfg.fill)
        x = color_jitter(x, params.brightness, params.contrast, params.saturation)
        if self.cfg.noise:
            x = add_noise(x, self.cfg.noise, generator)
        return x.contiguous(memory_format=fmt)


def alternate_flips(n: int, device: torch.device | str = "cpu") -> Tensor:
    """(n,) bool: the images mirrored in odd epochs under ``flip: alternate`` (a fixed
    random half, the same in every process); even epochs mirror the others."""
    gen = torch.Generator().manual_seed(0x0F11B)
    return (torch.rand(n, generator=gen) < 0.5).to(device)


def pad(x: Tensor, p: int, fill: str = "zeros") -> Tensor:
    """The batch padded by ``p`` pixels on every side with zeros or (``fill="reflect"``)
    the image mirrored at its edge: the one meaning of ``fill`` for integer shifts."""
    return F.pad(x, (p, p, p, p), mode="reflect" if fill == "reflect" else "constant")


def shift_flip(
    x: Tensor, shift: Tensor | None, flip: Tensor | None, max_shift: int = 0,
    fill: str = "zeros",
) -> Tensor:
    """Per-image integer shift with zero (or mirrored) fill and horizontal mirror, as ONE
    gather.

    ``out[b, c, i, j] = x[b, c, i + dy, j' + dx]`` with ``j' = W-1-j`` where ``flip[b]``,
    zero outside the image (``fill="reflect"``: the image mirrored at its edge). The
    batch is padded once by ``max_shift`` (>= every |shift|, passed in so no host sync is
    needed), then each image's rows and columns are looked up with index arithmetic.
    This is a random crop from a padded copy.
    """
    b, c, h, w = x.shape
    p = max_shift
    padded = pad(x, p, fill) if p else x  # (B, C, H+2p, W+2p)
    rows = torch.arange(h, device=x.device).expand(b, h) + p  # (B, H)
    cols = torch.arange(w, device=x.device).expand(b, w)  # (B, W)
    if flip is not None:
        cols = torch.where(flip[:, None], w - 1 - cols, cols)
    cols = cols + p
    if shift is not None:
        rows = rows + shift[:, :1]
        cols = cols + shift[:, 1:]
    index = rows[:, :, None] * (w + 2 * p) + cols[:, None, :]  # (B, H, W) flat positions
    index = index.view(b, 1, h * w).expand(b, c, h * w)
    out = padded.reshape(b, c, -1).gather(2, index).view(b, c, h, w)
    return out.contiguous(memory_format=memory_format(x))


def affine(
    x: Tensor, angle: Tensor, shift: Tensor | None = None, flip: Tensor | None = None,
    fill: str = "zeros",
) -> Tensor:
    """Per-image rotation by ``angle`` degrees (counter-clockwise, as torchvision), with
    the optional flip and integer shift folded into the same matrix; zero fill (or
    ``fill="reflect"``: the image mirrored at its edges).

    One ``affine_grid`` + bilinear ``grid_sample`` for the batch. The sampling grid is
    built in float32 even for bf16 batches: bf16 grid coordinates would be off by a
    tenth of a pixel.
    """
    b, _, h, w = x.shape
    theta = affine_theta(angle.float(), h, w, shift, flip)  # (B, 2, 3)
    src = x if x.dtype in (torch.float32, torch.float64) else x.float()
    grid = F.affine_grid(theta.to(src.dtype), [b, 1, h, w], align_corners=False)
    padding = "reflection" if fill == "reflect" else "zeros"
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode=padding, align_corners=False)
    return out.to(x.dtype).contiguous(memory_format=memory_format(x))


def affine_theta(
    angle: Tensor, h: int, w: int, shift: Tensor | None = None, flip: Tensor | None = None
) -> Tensor:
    """(B, 2, 3) matrices mapping normalized output coords (u, v) to input coords.

    In pixel offsets from the centre (x right, y down) the input point read for output
    point p is R p + s, R = [[cos, -sin], [sin, cos]]: content turns counter-clockwise
    on screen. In normalized coords (u = 2x/W, v = 2y/H) the off-diagonal terms pick up
    the aspect ratio; a flip negates u before the rotation, as in :func:`shift_flip`.
    """
    rad = angle * (math.pi / 180.0)
    cos, sin = rad.cos(), rad.sin()  # (B,)
    f = torch.ones_like(cos) if flip is None else 1.0 - 2.0 * flip.to(cos.dtype)
    t = torch.zeros(angle.shape[0], 2, dtype=cos.dtype, device=angle.device)
    if shift is not None:
        t = shift.to(cos.dtype) * torch.tensor([2.0 / h, 2.0 / w], device=angle.device)
    row0 = torch.stack([cos * f, -sin * (h / w), t[:, 1]], dim=1)  # (B, 3)
    row1 = torch.stack([sin * f * (w / h), cos, t[:, 0]], dim=1)
    return torch.stack([row0, row1], dim=1)


def color_jitter(
    x: Tensor,
    brightness: Tensor | None = None,
    contrast: Tensor | None = None,
    saturation: Tensor | None = None,
) -> Tensor:
    """Per-image brightness, contrast and saturation factors (B,), torchvision's math.

    brightness scales the image; contrast blends with the image's mean grey level;
    saturation blends with its grey version (3-channel images only). Each result is
    clamped to [0, 1], as torchvision does; the order is fixed rather than shuffled.
    """
    if brightness is not None:
        x = x.mul(brightness.to(x.dtype).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)
    if contrast is not None:
        mean = _grey(x).mean((2, 3), keepdim=True)  # (B, 1, 1, 1)
        x = x.lerp(mean, 1 - contrast.to(x.dtype).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)
    if saturation is not None and x.shape[1] == 3:
        grey = _grey(x)  # (B, 1, H, W)
        x = x.lerp(grey, 1 - saturation.to(x.dtype).view(-1, 1, 1, 1)).clamp_(0.0, 1.0)
    return x


def add_noise(x: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """Add N(0, std^2) noise per pixel. Not clamped, so the noise stays zero-mean.

    The noise is drawn into a buffer that is contiguous in x's own layout: ``normal_``
    on a strided channels_last tensor is ~8x slower than on a dense one.
    """
    b, c, h, w = x.shape
    channels_last = memory_format(x) == torch.channels_last
    shape = (b, h, w, c) if channels_last else (b, c, h, w)
    noise = torch.empty(shape, dtype=x.dtype, device=x.device)
    noise.normal_(0.0, std, generator=generator)  # on the dense buffer
    if channels_last:
        noise = noise.permute(0, 3, 1, 2)  # (B, C, H, W) view, channels_last strides
    return noise.add_(x)


# ----------------------------------------------------------------- resizing


def resize(x: Tensor, size: int) -> Tensor:
    """Bilinear resize of a float batch (B, C, H, W) to (size, size), e.g. 32 -> 224 for
    transfer learning; antialiased when shrinking so fine detail does not alias.
    """
    h, w = x.shape[-2:]
    if h == size and w == size:
        return x
    shrink = size < h or size < w
    # The antialiased CPU kernel has no bf16/fp16 version: compute those in float32.
    src = x.float() if shrink and x.dtype not in (torch.float32, torch.float64) else x
    out = F.interpolate(
        src, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink
    )
    return out.to(x.dtype).contiguous(memory_format=memory_format(x))


# -------------------------------------------------------- pixel permutation


def pixel_permutation(seed: int, height: int, width: int) -> Tensor:
    """A fixed permutation (H*W,) int64 of pixel positions, from a seeded CPU generator
    so it is the same on every device and machine.
    """
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(height * width, generator=g)


def permute_pixels(images: Tensor, perm: Tensor) -> Tensor:
    """Apply one permutation to the pixel positions of every image and channel
    (permuted MNIST): ``out.flatten(2)[..., k] == images.flatten(2)[..., perm[k]]``.

    Destroys spatial structure while keeping the pixel values, so a network that
    assumes locality (a CNN) loses its advantage over one that does not (an MLP).
    """
    n, c, h, w = images.shape
    if perm.shape != (h * w,):
        raise ValueError(f"permutation of {tuple(perm.shape)} for {h}x{w} images")
    flat = images.reshape(n, c, h * w)
    index = perm.to(images.device).view(1, 1, h * w).expand(n, c, h * w)
    return flat.gather(2, index).view(n, c, h, w)  # gather: ~8x faster than index_select


def inverse_permutation(perm: Tensor) -> Tensor:
    """The permutation that undoes ``perm``: ``inv[perm[k]] = k``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device)
    return inv


def unpermute_pixels(images: Tensor, perm: Tensor) -> Tensor:
    """Undo :func:`permute_pixels` (e.g. to show a permuted image the right way up)."""
    return permute_pixels(images, inverse_permutation(perm))
