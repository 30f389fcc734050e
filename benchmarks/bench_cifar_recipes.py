"""CIFAR-10 time to accuracy of the bundled recipes, as a user runs them, on this machine.

For each recipe (``cifar10-quick`` over several seeds, ``cifar10-fast``, ``cifar10-pw1``
as the course baseline) it runs ``convlab run NAME --set seed=N`` as a subprocess on an
idle machine (see ``_common.py``), timing the whole command, and reads from the run
folder: the final test top-1 (with the recipe's test-time augmentation), the training
images/s, and each epoch's test top-1 against the wall time so far (the curve of the
figure; the intermediate points are without test-time augmentation, which the recipes
apply to the final evaluation only).

The peer is the bare compute bound of the same network: forward, backward and the same
SGD step over batches made beforehand (normalized, channels_last, in memory), at the
recipe's batch size, precision and thread count; the ratio bound / convlab says how much
of the loop is overhead (goal: within 1.10x).

Targets (issue 15, JPEG CIFAR-10 of ../shared/data, whole command):
``cifar10-fast`` >= 93.0% in <= 25 min; ``cifar10-quick`` >= 90.0% in <= 8 min.

    python benchmarks/bench_cifar_recipes.py                      # all, seeds 0 1 2
    python benchmarks/bench_cifar_recipes.py --recipes cifar10-quick --seeds 0
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import MAX_OTHERS, data_root, machine, table, wait_quiet  # noqa: E402
from bench_time_to_accuracy import run_once  # noqa: E402

TARGETS = {"cifar10-quick": (90.0, 8 * 60), "cifar10-fast": (93.0, 25 * 60)}
FIGURE = Path(__file__).resolve().parent / "cifar10_time_to_accuracy.png"


def compute_bound(recipe: str, threads: int, steps: int = 6) -> float:
    """Images/s of forward/backward/step alone for the recipe's network and optimizer."""
    import torch
    import torch.nn.functional as F

    from convlab.config import load_config
    from convlab.models import build_model
    from convlab.optim.groups import param_groups
    from convlab.train.optim import build_optimizer
    from convlab.train.runner import autocast_factory, foreach_groups

    cfg = load_config(recipe)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model(cfg.model, (3, 32, 32), 10).to(memory_format=torch.channels_last)
    groups = (param_groups(model, cfg.optim.groups, cfg.optim.lr, cfg.optim.weight_decay)
              if cfg.optim.groups else [p for p in model.parameters() if p.requires_grad])
    opt = build_optimizer(foreach_groups(groups), cfg.optim)
    bs = cfg.train.batch_size
    x = torch.randn(bs, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (bs,))

    autocast = autocast_factory(cfg, torch.device("cpu"))  # the recipe's precision

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model(x)
        F.cross_entropy(logits.float(), y, label_smoothing=cfg.train.label_smoothing).backward()
        opt.step()

    for _ in range(2):
        step()
    wait_quiet()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return bs * steps / (time.perf_counter() - t0)


def curve(run_dir: Path, setup_s: float) -> list[tuple[float, float]]:
    """(wall minutes, test top-1 %) at the end of each epoch."""
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "test" and r["epoch"] != "0"]
    return [((setup_s + float(r["time_s"])) / 60, 100 * float(r["top1"])) for r in rows]


REFERENCE = "airbench94, plain PyTorch"


def reference_curve(path: Path) -> list[tuple[float, float]]:
    """(wall minutes, test top-1 %) of a ``reference_airbench94_cpu.py --out`` file: each
    epoch's, then the final one with its test-time augmentation. Files written before
    the script logged wall time per epoch give data loading plus training time (the
    per-epoch evaluations, a few seconds each, left out)."""
    r = json.loads(path.read_text())
    pts = [(e.get("wall_s", r["data_s"] + e["train_s"]) / 60, 100 * e["test_top1"])
           for e in r["epochs_log"]]
    return [*pts, (r["wall_s"] / 60, 100 * r["tta_test_top1"])]


def plot(curves: dict[str, list[list[tuple[float, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for (name, runs), color in zip(curves.items(), ("C0", "C1", "C2", "C3"), strict=False):
        for i, pts in enumerate(runs):
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, color=color, alpha=0.8,
                    label=name if i == 0 else None)
    for name, (acc, wall) in TARGETS.items():
        if name in curves:
            ax.plot([wall / 60], [acc], marker="*", ms=12, color="k", linestyle="none")
            ax.annotate(f"{name} target", (wall / 60, acc), textcoords="offset points",
                        xytext=(6, -12), fontsize=8)
    lowest = min(acc for runs in curves.values() for pts in runs for _, acc in pts)
    ax.set(xlabel="wall time of the whole command (minutes)", ylabel="test top-1 (%)",
           title="CIFAR-10 accuracy against wall time, 2-core CPU",
           ylim=(max(0, 10 * (lowest // 10) - 5), 100))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipes", default="cifar10-quick,cifar10-fast,cifar10-pw1")
    p.add_argument("--seeds", default="0,1,2", help="seeds of cifar10-quick (others: first)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--max-tries", type=int, default=2)
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--figure", type=Path, default=FIGURE, help="where the figure goes")
    p.add_argument("--curves", type=Path, help=(
        "a JSON file of curves: the recipes measured here replace theirs in it, and the "
        "figure shows every recipe it holds (to measure recipes in separate sittings)"))
    p.add_argument("--reference", type=Path, action="append", default=[], help=(
        "a reference_airbench94_cpu.py --out file to draw beside the recipes (repeatable)"))
    a = p.parse_args(argv)
    data_root()
    facts = machine()
    header = "  ".join(f"{k}: {v}" for k, v in facts.items())
    print(header, flush=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    rows, curves = [], {}
    with tempfile.TemporaryDirectory(prefix="convlab-cifar-") as tmp:
        for recipe in a.recipes.split(","):
            bound = compute_bound(recipe, a.threads) if recipe in TARGETS else None
            results = []
            for seed in seeds if recipe == "cifar10-quick" else seeds[:1]:
                for attempt in range(a.max_tries):
                    wait_quiet()
                    r = run_once(recipe, seed, Path(tmp), [f"train.threads={a.threads}"])
                    if r["others"] <= MAX_OTHERS or attempt == a.max_tries - 1:
                        break
                s = r["summary"]
                run_dir = Path(tmp) / recipe
                run_dir = sorted(run_dir.iterdir())[-1]
                curves.setdefault(recipe, []).append(curve(run_dir, s["setup_s"]))
                results.append(r)
                acc = 100 * s["final"]["test.top1"]
                ips = s["images_per_s"]
                rows.append([recipe, str(seed), f"{acc:.2f}", f"{r['wall'] / 60:.2f}",
                             f"{ips:,.0f}", f"{bound:,.0f}" if bound else "",
                             f"{bound / ips:.2f}x" if bound else "", f"{r['others']:.2f}"])
                print(f"  {recipe} seed {seed}: {acc:.2f}% in {r['wall'] / 60:.2f} min "
                      f"({ips:,.0f} img/s)", flush=True)
            accs = [100 * r["summary"]["final"]["test.top1"] for r in results]
            if len(accs) > 1:
                rows.append([recipe, "mean", f"{statistics.mean(accs):.2f} "
                             f"(sd {statistics.stdev(accs):.2f})", "", "", "", "", ""])
            if recipe in TARGETS:
                acc_t, wall_t = TARGETS[recipe]
                worst = max(r["wall"] for r in results)
                print(f"  {recipe}: mean {statistics.mean(accs):.2f}% (target >= {acc_t}): "
                      f"{'met' if statistics.mean(accs) >= acc_t else 'MISSED'}; slowest "
                      f"{worst / 60:.2f} min (target <= {wall_t / 60:.0f}): "
                      f"{'met' if worst <= wall_t else 'MISSED'}", flush=True)
    heads = ["recipe", "seed", "test top-1 %", "wall min", "train img/s", "bound img/s",
             "bound / convlab", "others"]
    text = "\n".join([header, "", table(heads, rows), f"\nfigure: {a.figure.name}"])
    if a.curves:
        kept = json.loads(a.curves.read_text()) if a.curves.exists() else {}
        curves = {**kept, **curves}
        a.curves.write_text(json.dumps(curves, indent=1) + "\n")
    if a.reference:
        curves[REFERENCE] = [reference_curve(f) for f in a.reference]
    plot(curves, a.figure)
    print("\n" + text)
    if a.markdown:
        Path(a.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
