"""Batched transforms: every op per image, reproducible, exact where it should be."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from torchvision.transforms import InterpolationMode

from convlab.config import AugmentConfig, ColorJitterConfig
from convlab.data.transforms import (
    Augmenter,
    AugmentParams,
    Normalizer,
    affine,
    fit_normalizer,
    inverse_permutation,
    memory_format,
    permute_pixels,
    pixel_permutation,
    resize,
    shift_flip,
    unpermute_pixels,
)

CL = torch.channels_last
FAST = settings(max_examples=15, deadline=None)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(b: int = 8, c: int = 3, h: int = 12, w: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=gen(seed))


def uint8_images(n: int = 64, c: int = 3, h: int = 6, w: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), dtype=torch.uint8, generator=gen(seed))


ALL_ON = AugmentConfig(
    crop_padding=2, flip=True, translate=1, rotate=15.0, noise=0.05,
    color_jitter=ColorJitterConfig(brightness=0.3, contrast=0.3, saturation=0.3),
)


# ------------------------------------------------------------------- geometry


def test_everything_off_returns_the_batch_untouched() -> None:
    x = batch()
    aug = Augmenter(AugmentConfig())
    assert not aug.enabled
    assert aug(x, gen()) is x


def test_zero_shift_without_flip_is_identity() -> None:
    x = batch()
    assert torch.equal(shift_flip(x, None, None), x)
    assert torch.equal(shift_flip(x, torch.zeros(8, 2, dtype=torch.long), None, 3), x)


@FAST
@given(
    p=st.integers(1, 4), h=st.integers(3, 10), w=st.integers(3, 10),
    c=st.sampled_from([1, 3]), seed=st.integers(0, 2**31 - 1),
)
def test_crop_is_a_slice_of_the_padded_image(p: int, h: int, w: int, c: int, seed: int) -> None:
    x = batch(6, c, h, w, seed)
    aug = Augmenter(AugmentConfig(crop_padding=p))
    params = aug.sample(6, gen(seed))
    out = aug.apply(x, params, gen(seed))
    assert params.shift is not None and params.shift.abs().max() <= p
    padded = F.pad(x, (p, p, p, p))
    for i, (dy, dx) in enumerate(params.shift.tolist()):
        expect = padded[i, :, p + dy : p + dy + h, p + dx : p + dx + w]
        assert torch.equal(out[i], expect)


def test_translate_shifts_content_with_zero_fill() -> None:
    x = batch(4, 1, 8, 8) + 0.1  # no zeros, so the fill is visible
    shift = torch.tensor([[2, -1], [0, 0], [-3, 3], [1, 2]])
    out = shift_flip(x, shift, None, max_shift=3)
    for i, (dy, dx) in enumerate(shift.tolist()):
        src = x[i, 0, max(dy, 0) : 8 + min(dy, 0), max(dx, 0) : 8 + min(dx, 0)]
        dst = out[i, 0, max(-dy, 0) : 8 + min(-dy, 0), max(-dx, 0) : 8 + min(-dx, 0)]
        assert torch.equal(dst, src)
        assert (out[i] == 0).sum() == 64 - src.numel()


def test_reflect_fill_crops_from_a_mirrored_copy() -> None:
    x = batch(6, 3, 8, 8) + 0.1
    aug = Augmenter(AugmentConfig(crop_padding=2, flip=True, fill="reflect"))
    params = aug.sample(6, gen(3))
    out = aug.apply(x, params, gen(3))
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")
    assert params.shift is not None and params.flip is not None
    for i, (dy, dx) in enumerate(params.shift.tolist()):
        expect = padded[i, :, 2 + dy : 10 + dy, 2 + dx : 10 + dx]
        if params.flip[i]:  # a mirrored crop: the mirror, cropped at the mirrored offset
            expect = F.pad(x[i : i + 1].flip(-1), (2, 2, 2, 2), mode="reflect")[
                0, :, 2 + dy : 10 + dy, 2 - dx : 10 - dx]
        assert torch.equal(out[i], expect)
    assert (out > 0).all()  # nothing black comes in


def test_reflect_fill_in_a_rotation_brings_in_no_black() -> None:
    x = batch(4, 1, 16, 16) + 0.1
    out = Augmenter(AugmentConfig(rotate=30, fill="reflect"))(x, gen(1))
    zeros = Augmenter(AugmentConfig(rotate=30))(x, gen(1))
    assert (out > 0.05).all() and (zeros < 1e-6).any()


def test_each_image_gets_its_own_draw() -> None:
    x = batch(1).expand(64, -1, -1, -1).contiguous()
    out = Augmenter(AugmentConfig(crop_padding=4, flip=True))(x, gen())
    distinct = torch.unique(out.flatten(1), dim=0).shape[0]
    assert distinct > 20  # 81 offsets x 2 flips: one shared draw would give 1


def test_same_seed_same_output_different_seed_different() -> None:
    x = batch()
    aug = Augmenter(ALL_ON)
    assert torch.equal(aug(x, gen(1)), aug(x, gen(1)))
    assert not torch.equal(aug(x, gen(1)), aug(x, gen(2)))


def test_flip_mirrors_exactly_the_drawn_images() -> None:
    x = batch(32)
    aug = Augmenter(AugmentConfig(flip=True))
    params = aug.sample(32, gen(3))
    out = aug.apply(x, params, gen(3))
    f = params.flip
    assert f is not None and 0 < f.sum() < 32
    assert torch.equal(out[f], x[f].flip(-1))
    assert torch.equal(out[~f], x[~f])


def test_rotation_by_90_degrees_is_rot90() -> None:
    x = batch(4, 3, 10, 10)
    out = affine(x, torch.full((4,), 90.0))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5, rtol=0)
    out = affine(x, torch.full((4,), -90.0))
    torch.testing.assert_close(out, torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5, rtol=0)


@pytest.mark.parametrize("angle", [-37.0, 12.5, 150.0])
def test_rotation_matches_torchvision_on_non_square_images(angle: float) -> None:
    x = batch(1, 3, 9, 14)
    expect = TF.rotate(x, angle, interpolation=InterpolationMode.BILINEAR)
    torch.testing.assert_close(affine(x, torch.tensor([angle])), expect, atol=1e-5, rtol=0)


def test_rotation_folds_flip_and_shift_like_the_gather() -> None:
    x = batch(6, 3, 8, 11)
    shift = torch.tensor([[1, -2], [0, 0], [-3, 1], [2, 2], [0, -1], [3, 3]])
    flip = torch.tensor([True, False, True, True, False, False])
    out = affine(x, torch.zeros(6), shift, flip)
    torch.testing.assert_close(out, shift_flip(x, shift, flip, 3), atol=1e-5, rtol=0)


def test_rotation_angles_stay_in_range_and_differ_per_image() -> None:
    params = Augmenter(AugmentConfig(rotate=20.0)).sample(256, gen())
    assert params.angle is not None
    assert params.angle.abs().max() <= 20.0 and params.angle.std() > 5.0


# ------------------------------------------------------------ colour and noise


def test_colour_jitter_stays_in_range_and_respects_factor_bounds() -> None:
    cfg = AugmentConfig(
        color_jitter=ColorJitterConfig(brightness=0.4, contrast=0.5, saturation=0.6)
    )
    aug = Augmenter(cfg)
    x = batch(64)
    params = aug.sample(64, gen(5))
    out = aug.apply(x, params, gen(5))
    assert out.min() >= 0 and out.max() <= 1
    for factor, r in ((params.brightness, 0.4), (params.contrast, 0.5), (params.saturation, 0.6)):
        assert factor is not None
        assert (factor >= 1 - r).all() and (factor <= 1 + r).all() and factor.std() > r / 4


def test_brightness_scales_each_image_by_its_factor() -> None:
    aug = Augmenter(AugmentConfig(color_jitter=ColorJitterConfig(brightness=0.5)))
    x = batch(16) * 0.6  # at most 0.6 * 1.5 < 1: nothing is clamped
    params = aug.sample(16, gen(2))
    out = aug.apply(x, params, gen(2))
    assert params.brightness is not None
    torch.testing.assert_close(out, x * params.brightness.view(-1, 1, 1, 1))


def test_saturation_zero_gives_grey_and_grey_images_ignore_it() -> None:
    aug = Augmenter(AugmentConfig(color_jitter=ColorJitterConfig(saturation=1.0)))
    x = batch(4)
    params = AugmentParams(saturation=torch.zeros(4))
    out = aug.apply(x, params, gen())
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    grey = batch(4, 1)
    assert torch.equal(aug.apply(grey, params, gen()), grey)


def test_noise_has_the_configured_std() -> None:
    x = torch.full((64, 1, 32, 32), 0.5)
    out = Augmenter(AugmentConfig(noise=0.1))(x, gen())
    diff = out - x
    assert abs(diff.std().item() - 0.1) < 0.003 and abs(diff.mean().item()) < 0.003


# ------------------------------------------------------------- formats, dtypes


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize(
    "cfg", [ALL_ON, AugmentConfig(crop_padding=4, flip=True)], ids=["all", "crop-flip"]
)
def test_augmenter_keeps_shape_dtype_and_memory_format(
    cfg: AugmentConfig, fmt: torch.memory_format, dtype: torch.dtype
) -> None:
    x = batch(8, 3, 10, 12).to(dtype).contiguous(memory_format=fmt)
    out = Augmenter(cfg)(x, gen())
    assert out.shape == x.shape and out.dtype == dtype
    assert out.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize("mode", ["none", "channel", "mean_image", "zca"])
def test_normalizer_keeps_shape_dtype_and_memory_format(
    mode: str, fmt: torch.memory_format, dtype: torch.dtype
) -> None:
    norm = fit_normalizer(uint8_images(), mode)
    x = batch(5, 3, 6, 6).to(dtype).contiguous(memory_format=fmt)
    out = norm(x)
    assert out.shape == x.shape and out.dtype == dtype
    assert memory_format(out) == memory_format(x)


@pytest.mark.parametrize("fmt", [torch.contiguous_format, CL])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size", [4, 20])
def test_resize_shape_dtype_and_format(
    size: int, dtype: torch.dtype, fmt: torch.memory_format
) -> None:
    x = batch(2, 3, 8, 8).to(dtype).contiguous(memory_format=fmt)
    out = resize(x, size)
    assert out.shape == (2, 3, size, size) and out.dtype == dtype
    assert out.is_contiguous(memory_format=fmt)


def test_resize_keeps_constants_and_antialiases_when_shrinking() -> None:
    flat = torch.full((1, 3, 8, 8), 0.25)
    torch.testing.assert_close(resize(flat, 28), torch.full((1, 3, 28, 28), 0.25))
    assert resize(flat, 8) is flat
    noise = batch(4, 1, 64, 64)
    point_sampled = F.interpolate(noise, size=(8, 8), mode="bilinear", antialias=False)
    assert resize(noise, 8).std() < 0.5 * point_sampled.std()  # averages ~64 pixels


# -------------------------------------------------------------- normalization


def test_channel_normalization_standardizes_the_train_set() -> None:
    imgs = uint8_images(200, 3, 8, 8)
    imgs[:, 1] //= 4  # channels with different statistics
    out = fit_normalizer(imgs, "channel")(imgs.float() / 255)
    torch.testing.assert_close(out.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        out.double().std((0, 2, 3), correction=0), torch.ones(3, dtype=torch.float64),
        atol=1e-4, rtol=0,
    )


def test_channel_stats_match_a_float64_reference_and_survive_constant_channels() -> None:
    imgs = uint8_images(100, 2, 5, 5)
    imgs[:, 1] = 7
    norm = fit_normalizer(imgs, "channel")
    ref = imgs.double() / 255
    assert norm.mean is not None and norm.std is not None
    torch.testing.assert_close(norm.mean.double(), ref.mean((0, 2, 3)), atol=1e-7, rtol=0)
    assert abs(norm.std[0].item() - ref[:, 0].std(correction=0).item()) < 1e-6
    assert norm.std[1] == 1.0  # constant: centred, not divided by zero
    assert torch.isfinite(norm(imgs.float() / 255)).all()


def test_mean_image_subtraction_gives_a_zero_mean_image() -> None:
    imgs = uint8_images(3000, 1, 7, 7)  # more than one chunk
    out = fit_normalizer(imgs, "mean_image")(imgs.float() / 255)
    assert out.mean(0).abs().max() < 1e-5
    assert out.std() > 0.2  # only the mean was removed


def correlated_images(n: int = 4000) -> torch.Tensor:
    """(n, 1, 3, 3) uint8 images whose pixels are strongly correlated."""
    g = gen(7)
    z = torch.randn(n, 9, generator=g)
    mix = torch.eye(9) + 0.5 * torch.ones(9, 9)  # pixel correlation ~0.76
    x = (z @ mix) * 8 + 128
    return x.round().clamp(0, 255).to(torch.uint8).view(n, 1, 3, 3)


def test_zca_whitens_to_identity_covariance_with_a_symmetric_matrix() -> None:
    imgs = correlated_images()
    raw = (imgs.double() / 255).flatten(1)
    assert torch.corrcoef(raw.T).fill_diagonal_(0).abs().max() > 0.5
    norm = fit_normalizer(imgs, "zca", zca_epsilon=1e-7)
    assert norm.whiten is not None
    torch.testing.assert_close(norm.whiten, norm.whiten.T)
    out = norm(imgs.float() / 255).double().flatten(1)  # (N, D)
    assert out.mean(0).abs().max() < 1e-3
    cov = out.T @ out / out.shape[0]
    torch.testing.assert_close(cov, torch.eye(9, dtype=torch.float64), atol=1e-3, rtol=0)


@pytest.mark.parametrize("mode", ["none", "channel", "mean_image", "zca"])
def test_normalizer_round_trips_through_safetensors(mode: str, tmp_path) -> None:
    norm = fit_normalizer(uint8_images(), mode)
    path = tmp_path / "norm.safetensors"
    save_file(norm.tensors(), str(path))
    back = Normalizer.from_tensors(mode, load_file(str(path)))
    x = batch(4, 3, 6, 6)
    assert torch.equal(back(x), norm(x))
    assert torch.equal(norm.to("cpu")(x), norm(x))


def test_bad_modes_and_tensors_are_refused() -> None:
    with pytest.raises(ValueError, match="whiten"):
        fit_normalizer(uint8_images(), "whiten")
    with pytest.raises(ValueError, match="uint8"):
        fit_normalizer(uint8_images().float(), "channel")
    with pytest.raises(ValueError, match="std"):
        Normalizer.from_tensors("channel", {"mean": torch.zeros(3)})


# ----------------------------------------------------------------- permutation


@FAST
@given(seed=st.integers(0, 2**31 - 1), h=st.integers(1, 12), w=st.integers(1, 12))
def test_permutation_is_a_seeded_bijection(seed: int, h: int, w: int) -> None:
    perm = pixel_permutation(seed, h, w)
    assert perm.dtype == torch.int64
    assert torch.equal(perm.sort().values, torch.arange(h * w))
    assert torch.equal(perm, pixel_permutation(seed, h, w))
    assert torch.equal(perm[inverse_permutation(perm)], torch.arange(h * w))


def test_different_seeds_give_different_permutations() -> None:
    assert not torch.equal(pixel_permutation(0, 28, 28), pixel_permutation(1, 28, 28))


@FAST
@given(seed=st.integers(0, 1000), c=st.sampled_from([1, 3]))
def test_permutation_is_the_same_for_every_image_and_channel(seed: int, c: int) -> None:
    imgs = uint8_images(5, c, 4, 7, seed)
    perm = pixel_permutation(seed, 4, 7)
    out = permute_pixels(imgs, perm)
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    assert torch.equal(out.flatten(2), imgs.flatten(2)[:, :, perm])
    assert torch.equal(unpermute_pixels(out, perm), imgs)


def test_permutation_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="4x4"):
        permute_pixels(uint8_images(2, 1, 4, 4), pixel_permutation(0, 5, 5))


# ------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_and_refuses_a_cpu_generator() -> None:
    x = batch().cuda().contiguous(memory_format=CL)
    g = torch.Generator(device="cuda").manual_seed(0)
    out = Augmenter(ALL_ON)(x, g)
    assert out.device == x.device and out.is_contiguous(memory_format=CL)
    norm = fit_normalizer(uint8_images(h=12, w=12).cuda(), "zca").to("cuda")  # x's shape
    assert norm(x).device == x.device
    with pytest.raises(ValueError, match="generator"):
        Augmenter(ALL_ON)(x, gen())
