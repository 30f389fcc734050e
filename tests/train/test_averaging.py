"""train.ema (weight averaging) and train.tta (test-time augmentation)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from torch import nn

import convlab
from convlab.train.averaging import TTAModel, WeightAverage, shift


def test_the_average_follows_the_ema_formula_from_its_start_epoch() -> None:
    w = nn.Linear(1, 1, bias=False)
    avg = WeightAverage(w, decay=0.5, every=2, start_epoch=1)
    values = []
    for step, v in enumerate([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], start=1):
        w.weight.data.fill_(v)
        avg.step(w, step, epoch=1 if step <= 2 else 2)  # epoch 1 is before the start
        values.append(float(avg.module.weight.detach()) if avg.active else None)
    # updates at steps 4 and 6 only: the first copies (4), then 0.5*4 + 0.5*6 = 5
    assert values == [None, None, None, 4.0, 4.0, 5.0]


def test_views_are_averaged_in_logit_space() -> None:
    calls = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(x.clone())
            return x.flatten(1)[:, :2]  # two "logits": the first two pixels

    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    out = TTAModel(Probe(), ["flip"])(x)
    assert len(calls) == 2 and torch.equal(calls[1], x.flip(-1))
    assert torch.equal(out, (x.flatten(1)[:, :2] + x.flip(-1).flatten(1)[:, :2]) / 2)
    calls.clear()
    out = TTAModel(Probe(), ["flip", "translate"])(x)
    assert len(calls) == 6  # (image, mirror) x (as is, up-left, down-right)
    # the four shifted views weigh as much as the two unshifted ones together
    logits = [c.flatten(1)[:, :2] for c in calls]
    expect = 0.5 * (logits[0] + logits[1]) / 2 + 0.5 * sum(logits[2:]) / 4
    assert torch.allclose(out, expect)


def test_shift_moves_the_image_and_fills_with_zeros() -> None:
    x = torch.arange(9.0).view(1, 1, 3, 3)
    assert shift(x, -1, 1)[0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 3, 4]]  # down-right
    assert shift(x, 1, 1)[0, 0].tolist() == [[4, 5, 0], [7, 8, 0], [0, 0, 0]]  # up-left


def test_shift_with_reflect_fill_mirrors_the_image_at_its_edge() -> None:
    x = torch.arange(9.0).view(1, 1, 3, 3)
    assert shift(x, -1, 1, "reflect")[0, 0].tolist() == [[4, 3, 4], [1, 0, 1], [4, 3, 4]]
    assert shift(x, 1, 1, "reflect")[0, 0].tolist() == [[4, 5, 4], [7, 8, 7], [4, 5, 4]]


def net() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 4))


def test_a_run_saves_the_average_not_the_last_weights(tmp_path) -> None:
    from conftest import tiny_config

    model = net()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    run = convlab.run(tiny_config(train={"epochs": 2, "ema": {"decay": 0.999}}), model=model,
                      runs_dir=tmp_path, overrides=["optim.lr=0.05"])
    saved = load_file(str(run.weights_path))
    trained = model.state_dict()
    k = "4.weight"
    # a slow average stays near where training started, the last weights moved on
    assert (saved[k] - start[k]).norm() < 0.5 * (trained[k] - start[k]).norm()


def test_resuming_a_run_with_an_average_ends_where_an_uninterrupted_one_does(tmp_path) -> None:
    from conftest import tiny_config
    from convlab.train.runner import resume_run

    cfg = tiny_config(train={"epochs": 2, "deterministic": True,
                             "ema": {"decay": 0.9, "every": 2}},
                      data={"augment": {"flip": True}})
    whole = convlab.run(cfg, runs_dir=tmp_path / "a")
    first = convlab.run(cfg, runs_dir=tmp_path / "b",
                        epoch_hook=lambda e, m: "stop" if e == 1 else None)
    resumed = resume_run(first.path, quiet=True)
    a, b = load_file(str(whole.weights_path)), load_file(str(resumed.weights_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tta_changes_only_the_splits_it_is_asked_for(tmp_path) -> None:
    from conftest import tiny_config

    cfg = tiny_config(train={"epochs": 1, "deterministic": True},
                      data={"val_fraction": 0.25})
    plain = convlab.run(cfg, runs_dir=tmp_path / "a")
    tta = convlab.run({**cfg, "train": {**cfg["train"], "tta": {"test": ["flip"]}}},
                      runs_dir=tmp_path / "b")
    assert plain.summary["final"]["val.loss"] == tta.summary["final"]["val.loss"]
    assert plain.summary["final"]["test.loss"] != tta.summary["final"]["test.loss"]


def test_tta_fill_reaches_the_translated_views(tmp_path) -> None:
    from conftest import tiny_config

    cfg = tiny_config(train={"epochs": 1, "deterministic": True})
    losses = {fill: convlab.run({**cfg, "train": {**cfg["train"], "tta": {
        "test": ["translate"], "fill": fill}}}, runs_dir=tmp_path / fill
    ).summary["final"]["test.loss"] for fill in ("zeros", "reflect")}
    assert losses["zeros"] != losses["reflect"]


def test_alternate_flip_mirrors_each_image_on_every_other_epoch() -> None:
    from convlab.config import AugmentConfig
    from convlab.data import ImageSet
    from convlab.data.pipeline import InMemoryLoader
    from convlab.data.transforms import Augmenter

    images = torch.arange(8 * 2 * 3, dtype=torch.uint8).view(8, 1, 2, 3)
    data = ImageSet(images, torch.arange(8))
    loader = InMemoryLoader(data, 4, normalizer=lambda x: x,
                            augmenter=Augmenter(AugmentConfig(flip="alternate")),
                            aug_generator=torch.Generator())

    def mirrored() -> list[bool]:
        x = torch.cat([b for b, _ in loader])
        plain = images.float() / 255
        return [not torch.equal(x[i], plain[i]) for i in range(8)]

    first = mirrored()
    loader.epoch = 1
    second = mirrored()
    loader.epoch = 2
    assert second == [not f for f in first] and mirrored() == first
    assert 0 < sum(first) < 8  # a random half, not all or none


def test_lookahead_puts_the_average_back_into_the_weights() -> None:
    w = nn.Linear(1, 1, bias=False)
    avg = WeightAverage(w, decay=0.5, every=1, start_epoch=0, lookahead=True)
    w.weight.data.fill_(2.0)
    avg.step(w, 1, 1)  # the first update copies: 2
    w.weight.data.fill_(4.0)
    avg.step(w, 2, 1)  # 0.5 * 2 + 0.5 * 4 = 3, and the weights go back to it
    assert float(avg.module.weight.detach()) == 3.0 == float(w.weight.detach())


def test_the_triangle_schedule_rises_then_falls_linearly() -> None:
    from convlab.config import load_config
    from convlab.train.optim import lr_factor

    cfg = load_config({"schedule": {"name": "triangle"}}).schedule
    assert [round(lr_factor(cfg, e, 10, 1.0), 6) for e in (0, 1, 2, 6, 10)] == [
        0.2, 0.6, 1.0, 0.5, 0.0]


def test_a_ramped_decay_grows_with_the_run_s_progress() -> None:
    from convlab.train.averaging import ramped_decay

    assert ramped_decay(0.8, 5, 10, 0.0) == 0.8
    assert ramped_decay(0.8, 5, 10, 3.0) == 0.8 * 0.125
    assert ramped_decay(0.8, 10, 10, 3.0) == 0.8
    w = nn.Linear(1, 1, bias=False)
    avg = WeightAverage(w, decay=0.5, every=1, start_epoch=0, ramp=1.0, total_steps=2)
    w.weight.data.fill_(2.0)
    avg.step(w, 1, 1)  # the first update copies: 2
    w.weight.data.fill_(4.0)
    avg.step(w, 2, 1)  # decay 0.5 * (2/2) = 0.5: 3
    assert float(avg.module.weight.detach()) == 3.0
    w2 = nn.Linear(1, 1, bias=False)
    early = WeightAverage(w2, decay=0.5, every=1, start_epoch=0, ramp=1.0, total_steps=4)
    w2.weight.data.fill_(2.0)
    early.step(w2, 1, 1)
    w2.weight.data.fill_(4.0)
    early.step(w2, 2, 1)  # decay 0.5 * (2/4) = 0.25: 0.25 * 2 + 0.75 * 4 = 3.5
    assert float(early.module.weight.detach()) == 3.5


def test_a_ramped_lookahead_with_batch_norm_trains(tmp_path) -> None:
    from conftest import tiny_config

    cfg = tiny_config(train={"epochs": 2, "ema": {"decay": 0.9, "every": 2, "ramp": 3,
                                                  "lookahead": True}})
    cfg["model"]["stages"][0]["batch_norm"] = True
    r = convlab.run(cfg, runs_dir=tmp_path)
    assert r.summary["status"] == "completed" and r.summary["final"]["test.top1"] > 0.25
