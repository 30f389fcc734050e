"""The one-sentence readings, on hand-made curves: each rule where it holds and where not."""

from __future__ import annotations

import pytest

from convlab.report.findings import (
    ablation_finding,
    comparison_finding,
    detect_overfitting,
    final_metrics_finding,
    grad_norm_finding,
    human_count,
    layers_finding,
    learning_curve_finding,
    overfitting_finding,
    runs_settings_finding,
    settings_finding,
    sweep_finding,
)

FALLING_TRAIN = [2.0, 1.2, 0.8, 0.5, 0.3, 0.2, 0.1]
U_SHAPED_TEST = [2.1, 1.4, 1.0, 0.9, 1.0, 1.2, 1.5]  # lowest at epoch 4


def curves(train: list[float], test: list[float], split: str = "test") -> dict:
    ep = [float(e) for e in range(1, len(train) + 1)]
    return {"train": {"epoch": ep, "loss": train}, split: {"epoch": ep, "loss": test}}


# ------------------------------------------------------------------ overfitting


def test_overfitting_detected_after_the_minimum() -> None:
    of = detect_overfitting(FALLING_TRAIN, U_SHAPED_TEST)
    assert of is not None
    assert (of.epoch, of.min_loss, of.last_epoch, of.last_loss) == (4, 0.9, 7, 1.5)
    assert (of.train_at_min, of.train_last) == (0.5, 0.1)
    # epochs given explicitly (e.g. evaluated every other epoch)
    assert detect_overfitting(FALLING_TRAIN, U_SHAPED_TEST, [2, 4, 6, 8, 10, 12, 14]).epoch == 8


@pytest.mark.parametrize("test_loss", [
    [2.0, 1.5, 1.1, 0.9, 0.8, 0.75, 0.7],  # keeps falling
    [2.0, 1.5, 1.1, 0.9, 0.905, 0.902, 0.91],  # a wobble of 1%: noise, not a rise
    [2.0, 1.0, 1.4, 1.6, 1.2, 1.0, 1.005],  # rose, then came back down
    [0.01, 0.0001, 0.0003, 0.0005, 0.0006, 0.0007, 0.0008],  # rises by less than ABS_TOL
])
def test_no_overfitting_where_there_is_none(test_loss: list[float]) -> None:
    assert detect_overfitting(FALLING_TRAIN, test_loss) is None


def test_rising_test_loss_with_rising_train_loss_is_not_overfitting() -> None:
    train = [2.0, 1.0, 0.8, 0.9, 1.3, 1.8, 2.5]
    assert detect_overfitting(train, U_SHAPED_TEST) is None
    f = learning_curve_finding(curves(train, U_SHAPED_TEST))
    assert f.data.get("unstable") and f.text.endswith(
        "unstable (the learning rate may be too high), not overfitting.")


def test_short_curves() -> None:
    assert detect_overfitting([1.0], [1.0]) is None
    assert detect_overfitting([1.0, 0.5], [0.5, 0.9]).epoch == 1  # type: ignore[union-attr]
    f = learning_curve_finding(curves([1.0], [0.5]))
    assert f.text == ("After 1 epoch, test loss is 0.5; 1 epoch is too few to judge "
                      "overfitting (3 or more show whether the held-out loss turns up).")
    assert f.data["too_few_epochs"] and not f.data["overfit"]
    # two epochs that look like overfitting still get no verdict
    two = learning_curve_finding(curves([1.0, 0.5], [0.5, 0.9]))
    assert "2 epochs are too few to judge overfitting" in two.text and "overfits" not in two.text


def test_epoch_0_is_read_against_chance_and_left_out_of_the_verdict() -> None:
    c = {"train": {"epoch": [0.0, 1.0], "loss": [2.31, 0.9], "top1": [0.1, 0.7]},
         "test": {"epoch": [0.0, 1.0], "loss": [2.30, 0.5], "top1": [0.09, 0.85]}}
    f = learning_curve_finding(c, num_classes=10)
    assert f.text == ("Before training, test loss is 2.3 and top-1 error 91.0% (guessing "
                      "among 10 classes: error 90.0%, loss ln 10 = 2.30); after 1 epoch, test "
                      "loss is 0.5 and top-1 error 15.0%; 1 epoch is too few to judge "
                      "overfitting (3 or more show whether the held-out loss turns up).")
    # epoch 0 (loss far above) is not the minimum the overfitting rule compares against
    long = {s: {"epoch": [0.0, *map(float, range(1, 8))], "loss": [5.0, *ls]}
            for s, ls in (("train", FALLING_TRAIN), ("test", U_SHAPED_TEST))}
    assert learning_curve_finding(long).data["overfit_after"] == 4


def test_learning_curve_sentences() -> None:
    f = learning_curve_finding(curves(FALLING_TRAIN, U_SHAPED_TEST))
    assert f.kind == "warning" and f.data["overfit_after"] == 4
    assert f.text == ("Test loss is lowest at epoch 4 (0.9) and rises to 1.5 by epoch 7 while "
                      "train loss keeps falling (0.5 to 0.1): the model overfits after epoch 4.")
    f = learning_curve_finding(curves(FALLING_TRAIN, [2.0, 1.5, 1.1, 0.9, 0.8, 0.75, 0.7]))
    assert not f.data["overfit"] and f.data["still_falling"]
    assert "no sign of overfitting" in f.text and "more epochs may help" in f.text
    f = learning_curve_finding(curves(FALLING_TRAIN, [2.0, 1.5, 1.1, 0.9, 0.8, 0.75, 0.7495]))
    assert "levelled off" in f.text and not f.data["still_falling"]
    f = learning_curve_finding(curves(FALLING_TRAIN, U_SHAPED_TEST, split="val"))
    assert f.text.startswith("Validation loss is lowest at epoch 4")
    assert learning_curve_finding({"train": {"loss": [1.0]}}).kind == "warning"


# ------------------------------------------------------------------ one run


def test_final_metrics_gap() -> None:
    big = final_metrics_finding({"train.top1": 0.99, "test.top1": 0.90})
    assert big.kind == "warning"
    assert "train accuracy is 9.0 points above test accuracy, a large gap" in big.text
    assert big.data["gap_points"] == pytest.approx(9.0)
    same = final_metrics_finding({"train.top1": 0.975, "test.top1": 0.97})
    assert "train and test accuracy are within 1 point" in same.text and "99" not in same.text
    above = final_metrics_finding({"train.top1": 0.90, "test.top1": 0.95})
    assert "train accuracy is 5.0 points below test accuracy, since" in above.text
    assert final_metrics_finding({"val.top1": 0.5}).text == "Final validation accuracy is 50.0%."
    assert final_metrics_finding({}).kind == "warning"


def test_layers_and_settings_sentences() -> None:
    f = layers_finding([("conv", "Conv2d", 40), ("relu", "ReLU", 0), ("fc", "Linear", 960)],
                       1000)
    assert f.text == ("1,000 parameters in 2 layers with weights; the largest, fc (Linear), "
                      "holds 960 of them (96%).")
    s = settings_finding({"model": {"name": "pw1"}, "data": {"dataset": "cifar10", "augment": {
        "flip": True, "noise": 0.0, "color_jitter": {"brightness": 0.2}}},
        "optim": {"name": "sgd", "lr": 0.05}, "schedule": {"name": "cosine"},
        "train": {"epochs": 10, "batch_size": 64}}, 12345)
    assert s.text == ("The pw1 model (12,345 parameters) was trained on cifar10 for 10 epochs "
                      "with sgd at learning rate 0.05 and batch size 64, cosine schedule, "
                      "augmentation: flip.")
    assert runs_settings_finding(2, []).text == "The 2 runs have identical settings (repeats)."
    one = settings_finding({"model": {"name": "cnn"}, "data": {"dataset": "mnist"},
                            "train": {"epochs": 1}}, None, {"train": 54_000, "val": 6_000,
                                                            "test": 10_000})
    assert "on mnist (54,000 train / 6,000 val / 10,000 test images) for 1 epoch with" \
        in one.text
    sized = runs_settings_finding(2, ["optim.lr"], [{"train": 800, "test": 200}] * 2)
    assert sized.text.endswith("Each run has 800 train / 200 test images.")
    assert "Each run" not in runs_settings_finding(
        2, ["data.subset"], [{"train": 800}, {"train": 400}]).text
    assert "differ in 1 setting: optim.lr" in runs_settings_finding(3, ["optim.lr"]).text


def test_human_count() -> None:
    assert [human_count(n) for n in (628, 45_300, 1_234_567, 2e9)] == [
        "628", "45.3k", "1.23M", "2G"]


# ------------------------------------------------------------------ several runs


def test_capacity_sweep_sentence() -> None:
    params = [10_000, 100_000, 1_200_000, 4_800_000, 20_000_000]
    train = [1.10, 0.60, 0.30, 0.10, 0.02]
    test = [1.20, 0.70, 0.45, 0.55, 0.80]
    over = [None, None, None, 5, 3]
    f = sweep_finding(params, train, test, "parameters", over)
    assert f.data["best_x"] == 1_200_000
    assert f.data["overfit_larger"] and f.data["underfit_smaller"]
    assert f.text.startswith("Test loss is lowest at 1.2M parameters (0.45)")
    assert "larger models fit the training set better" in f.text and "they overfit" in f.text
    assert "smaller models underfit (train loss 1.1 at 10k parameters)" in f.text
    assert "runs with 4.8M parameters or more overfit during training, after epochs 3-5" in f.text
    # a sweep that is still improving at its largest value
    g = sweep_finding([1, 2, 3], [0.9, 0.5, 0.3], [1.0, 0.8, 0.6], "optim.lr")
    assert "lowest at optim.lr=3 (0.6)" in g.text
    assert "larger optim.lr values may do better" in g.text
    assert not g.data["overfit_larger"]


def test_sweep_sentence_averages_repeats_and_names_scattered_overfitting() -> None:
    f = sweep_finding([1, 1, 2, 2], [0.5, 0.7, 0.4, 0.4], [0.9, 1.1, 0.5, 0.7], "x",
                      [None, 2, None, None])
    assert "lowest at x=2 (0.6)" in f.text  # mean of the two repeats at x=2
    assert "1 of 4 runs overfit during training, after epoch 2" in f.text


def test_comparison_sentence() -> None:
    f = comparison_finding(["a", "b", "c"], [0.91, 0.97, None], "final test top-1",
                           ["completed", "completed", "diverged"], [0.99, 0.99, None])
    assert f.text == ("Best final test top-1: b (97.0%); worst: a (91.0%), 6.0 points lower; "
                      "on average, train accuracy is 5.0 points above test accuracy; 1 did not "
                      "complete: c (diverged).")
    assert f.kind == "warning" and f.data["best"] == "b" and f.data["worst"] == "a"
    tie = comparison_finding(["a", "b"], [1.0, 1.0])
    assert tie.text == "All 2 runs reach the same final test top-1, 100.0%."
    below = comparison_finding(["a", "b"], [0.5, 0.7], "final validation top-1",
                               train_values=[0.4, 0.6])
    assert below.text.endswith("on average, train accuracy is 10.0 points below validation "
                               "accuracy.")
    level = comparison_finding(["a", "b"], [0.5, 0.7], train_values=[0.505, 0.7])
    assert level.text.endswith("on average, train and test accuracy are within 1 point of "
                               "each other.")


def test_ablation_ladder_sentence() -> None:
    labels = ["baseline", "+ standardize", "+ augment", "+ dropout", "+ batch norm"]
    f = ablation_finding(labels, [0.90, 0.92, 0.955, 0.95, 0.97])
    assert f.text == ("Final test top-1 goes from 90.0% (baseline) to 97.0% (+ batch norm); "
                      "the largest gain, +3.5 points, comes with + augment; + dropout lowers "
                      "it by 0.5 points.")
    assert f.data == {"largest_gain": "+ augment", "largest_drop": "+ dropout",
                      "best": "+ batch norm", "narrows_gap": None}
    g = ablation_finding(["a", "b", "c"], [0.9, 0.95, 0.93])
    assert "the best is b (95.0%)" in g.text
    # a regularizer that costs test accuracy in a short training but closes the gap
    h = ablation_finding(["base", "+ std", "+ aug", "+ bn"], [0.41, 0.52, 0.46, 0.53],
                         "final test top-1", [0.38, 0.64, 0.45, 0.53])
    assert h.text.endswith("+ aug narrows the gap of train accuracy above test accuracy "
                           "most, from 12.0 points to none (train accuracy 1.0 points below "
                           "test accuracy).") and h.data["narrows_gap"] == "+ aug"
    # train below test and falling further (-6.2 to -13.5) is a gap that grew: no word
    grew = ablation_finding(["base", "normalize=channel"], [0.40, 0.55], "final test top-1",
                            [0.338, 0.415])
    assert "narrows" not in grew.text and grew.data["narrows_gap"] is None
    shrunk = ablation_finding(["a", "b"], [0.80, 0.82], "final test top-1", [0.95, 0.86])
    assert shrunk.text.endswith("from 15.0 points to 4.0 points.")
    assert "gap" not in ablation_finding(["a", "b"], [0.5, 0.6], "final test top-1",
                                         [0.52, 0.6]).text  # 2 points: not worth a word
    assert ablation_finding(["a"], [0.9]).kind == "warning"


def test_overfitting_over_runs_and_gradient_norms() -> None:
    of = detect_overfitting(FALLING_TRAIN, U_SHAPED_TEST)
    f = overfitting_finding(["small", "big"], [None, of])
    assert f.text == "1 of 2 runs overfit: big (after epoch 4)." and f.data["overfit"] == ["big"]
    assert "None of the 2 runs overfits" in overfitting_finding(["a", "b"], [None, None]).text
    short = overfitting_finding(["a", "b"], [None, None], epochs=[1, 1])
    assert short.text == ("The runs have at most 1 trained epoch: 1 epoch is too few to judge "
                          "overfitting (3 or more show whether the held-out loss turns up).")
    mixed = overfitting_finding(["a", "b", "c"], [None, of, None], epochs=[2, 7, 7])
    assert mixed.text.startswith("1 of 2 runs overfit: b (after epoch 4) (1 run with fewer")
    steps = [0, 10, 20, 30, 40]
    g = grad_norm_finding(steps, {"total": [1.0, 0.8, 30.0, 0.5, 0.4],
                                  "conv1": [0.1, 0.1, 1.0, 0.1, 0.1],
                                  "fc": [0.9, 0.7, 29.0, 0.4, 0.3]})
    assert g.kind == "warning" and g.data["spike"]
    assert "spikes to 30 at step 20, 33x the steps before it" in g.text
    # large first gradients that fall are no spike
    early = grad_norm_finding(steps, {"total": [20.0, 25.0, 1.0, 0.8, 0.5]})
    assert not early.data["spike"] and "spike" not in early.text
    assert "fc gets the largest gradients (median 0.7), conv1 the smallest (0.1, 7x less)" \
        in g.text
    dead = grad_norm_finding(steps[:2], {"total": [0.2, 0.1], "fc1": [0.0, 0.0],
                                         "fc_out": [0.2, 0.1]})
    assert dead.text.endswith("fc_out gets the largest gradients (median 0.15), fc1 the "
                              "smallest (0: no gradient reaches it).")
    calm = grad_norm_finding(steps, {"total": [1.0, 0.9, 0.8, 0.7, 0.6]})
    assert not calm.data["spike"] and calm.text == (
        "Total gradient norm goes from 1 at step 0 to 0.6 at step 40.")
    assert grad_norm_finding([0], {"total": [1.11]}).text == \
        "Total gradient norm is 1.11 at step 0."
    assert grad_norm_finding([0, 50], {"total": [1.11, 1.112]}).text == \
        "Total gradient norm stays at 1.11 from step 0 to step 50."


def test_epoch_0_over_several_runs() -> None:
    from convlab.report.findings import runs_start_phrase

    def c(loss: float, acc: float) -> dict:
        return {"test": {"epoch": [0.0, 1.0], "loss": [loss, 0.5], "top1": [acc, 0.9]}}

    assert runs_start_phrase([c(2.31, 0.1), c(2.29, 0.12)], 10) == (
        "before training, held-out loss is 2.29 to 2.31 and top-1 error 88.0% to 90.0% in "
        "2 runs (guessing among 10 classes: error 90.0%, loss ln 10 = 2.30)")
    assert runs_start_phrase([c(2.3, 0.1), c(2.3, 0.1)]) == (
        "before training, held-out loss is 2.3 and top-1 error 90.0% in 2 runs")
    assert runs_start_phrase([curves([1.0, 0.5], [0.9, 0.8])]) == ""  # no epoch 0
