"""Where seeds repeat settings, the report ranks settings by their means over the seeds
and says "within seed noise" where two differ by no more than their seeds' spread,
instead of naming a better one (fabricated runs: nothing trains)."""

from __future__ import annotations

from pathlib import Path

from convlab.report.compare import compare_runs, setting_names
from convlab.report.data import RunData
from convlab.report.findings import ablation_finding, comparison_finding, sweep_finding


def run(order: str, seed: int, acc: float, lr: float = 0.1, train: float = 0.7) -> RunData:
    config = {"name": "exp", "description": order, "seed": seed,
              "data": {"dataset": "mnist"},
              "model": {"name": "cnn", "stages": [{"channels": 8}],
                        "head": {"hidden": [], "flatten_order": order}},
              "optim": {"name": "sgd", "lr": lr}}
    final = {"train.loss": 0.5, "train.top1": train, "test.loss": 1.1, "test.top1": acc}
    return RunData(f"flatten-order/{order}-{seed}-{lr}", config, final=final,
                   best=dict(final), best_epoch=1, params=10, summary={"epochs_done": 1})


SETTINGS = ["natural"] * 3 + ["permuted"] * 3
LABELS = [f"{s}, seed={i % 3}" for i, s in enumerate(SETTINGS)]


def test_two_settings_within_seed_noise_are_not_ranked() -> None:
    values = [0.60, 0.62, 0.61, 0.61, 0.60, 0.63]  # means 61.00 and 61.33, spreads 2 and 3
    f = comparison_finding(LABELS, values, "final test top-1", settings=SETTINGS)
    assert f.text == ("The mean final test top-1 over 3 seeds of natural (61.0%) and "
                      "permuted (61.3%) is within seed noise (difference 0.33 points, seed "
                      "spread 3.00 points).")
    assert f.data["best"] is None and f.data["within_seed_noise"]
    assert "Best" not in f.text and "worst" not in f.text


def test_settings_beyond_seed_noise_are_ranked_by_their_means() -> None:
    values = [0.60, 0.62, 0.61, 0.50, 0.51, 0.52]
    f = comparison_finding(LABELS, values, "final test top-1", settings=SETTINGS)
    assert f.text == ("Best mean final test top-1 over 3 seeds: natural (61.0%); worst: "
                      "permuted (51.0%), 10.0 points lower, more than the seed spread "
                      "(2.00 points).")
    assert (f.data["best"], f.data["worst"], f.data["within_seed_noise"]) == \
        ("natural", "permuted", False)
    # a third setting close to the best is not ranked below it
    three = comparison_finding([*LABELS, "x", "y"], [*values, 0.605, 0.615],
                               settings=[*SETTINGS, "shuffled", "shuffled"])
    assert ("shuffled (61.0%) is within seed noise of it (difference 0.00 points, seed "
            "spread 2.00 points)") in three.text
    assert three.data["best"] == "natural"


def test_without_repeated_seeds_the_wording_is_unchanged() -> None:
    plain = comparison_finding(["a", "b"], [0.5, 0.7])
    assert comparison_finding(["a", "b"], [0.5, 0.7], settings=["a", "b"]) == plain
    assert comparison_finding(["a", "b"], [0.5, 0.7], settings=None).text == \
        "Best final test top-1: b (70.0%); worst: a (50.0%), 20.0 points lower."
    ladder = ablation_finding(["a", "b", "c"], [0.9, 0.95, 0.93])
    assert ablation_finding(["a", "b", "c"], [0.9, 0.95, 0.93], settings=["a", "b", "c"]) \
        == ladder


def test_one_setting_over_seeds_ranks_nothing() -> None:
    f = comparison_finding(["s0", "s1", "s2"], [0.5, 0.52, 0.51], settings=["base"] * 3)
    assert f.text == ("The 3 runs repeat one setting over seeds: mean final test top-1 "
                      "51.0%, seed spread 2.00 points.")
    assert f.data["best"] is None


def test_a_ladder_over_seeds_calls_small_steps_noise() -> None:
    settings = ["base"] * 2 + ["+ std"] * 2 + ["+ bn"] * 2
    values = [0.50, 0.52, 0.60, 0.62, 0.61, 0.64]  # means 51, 61, 62.5; spreads 2, 2, 3
    f = ablation_finding(settings, values, "final test top-1", settings=settings)
    assert f.text == ("Mean final test top-1 over 2 seeds goes from 51.0% (base) to 62.5% "
                      "(+ bn); the largest gain, +10.0 points, comes with + std; + bn changes "
                      "it within seed noise (difference +1.50 points, seed spread 3.00 "
                      "points).")
    assert f.data["largest_gain"] == "+ std" and f.data["within_seed_noise"] == ["+ bn"]
    # a best rung within noise of the last one is not named the best
    g = ablation_finding(settings, [0.50, 0.52, 0.63, 0.61, 0.61, 0.62],
                         settings=settings)
    assert "the best is" not in g.text and "+ bn changes it within seed noise " \
        "(difference -0.50 points" in g.text


def test_a_sweep_over_seeds_names_values_within_noise_of_the_lowest_loss() -> None:
    x = [1, 1, 2, 2, 3, 3]
    f = sweep_finding(x, [0.5, 0.5, 0.4, 0.4, 0.3, 0.3], [0.9, 1.0, 0.62, 0.7, 0.6, 0.66],
                      "optim.lr")
    assert ("lowest at optim.lr=3 (0.63); optim.lr=2 (0.66) is within seed noise of it "
            "(difference 0.03, seed spread 0.08)") in f.text
    assert "may do better" not in f.text  # the last step down is noise
    assert f.data["within_seed_noise"] == [2.0]
    assert "within seed noise" not in sweep_finding([1, 2], [0.5, 0.4], [0.9, 0.6]).text


def test_setting_names_drop_the_seed() -> None:
    runs = [run(o, s, 0.6) for o in ("natural", "permuted") for s in range(3)]
    assert setting_names(compare_runs(runs)) == SETTINGS
    assert setting_names(compare_runs(runs[:1] + runs[3:4])) is None  # no repeat
    lrs = [run("natural", s, 0.6, lr) for lr in (0.1, 0.01) for s in range(2)]
    assert setting_names(compare_runs(lrs)) == ["lr=0.1"] * 2 + ["lr=0.01"] * 2


def test_the_report_of_a_group_over_seeds_says_within_seed_noise(tmp_path: Path) -> None:
    from convlab.report.report import write_report

    accs = [0.60, 0.62, 0.61, 0.61, 0.60, 0.63]
    runs = [run(o, s, accs[3 * i + s]) for i, o in enumerate(("natural", "permuted"))
            for s in range(3)]
    md = write_report(runs, tmp_path / "report").markdown.read_text()
    assert ("> The mean final test top-1 over 3 seeds of natural (61.0%) and permuted "
            "(61.3%) is within seed noise (difference 0.33 points, seed spread 3.00 "
            "points); on average,") in md
    assert "Best final test top-1" not in md
    assert "permuted changes it within seed noise (difference +0.33 points, seed spread " \
        "3.00 points)." in md  # the runs in order: one step, noise
