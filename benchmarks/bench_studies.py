"""Wall time of each bundled study at one scale, and what each group's runs show.

The issues' promise: ``smoke`` finishes each study in under a minute, ``quick`` in at
most 15 minutes and ``long`` in at most 45 on a 2-core CPU, and each still shows the
study's expected effects (``long``: the directions the classic experiments report).
This script checks both as a user would meet them: each study runs as the command

    convlab study run NAME --scale SCALE --runs-dir <fresh folder>

in a subprocess (fresh folder: nothing is skipped as already done), one study at a time
after the machine is idle, timing the whole command. It then prints, per group, each
run's name (its named grid value or differing setting), status, epochs, final train and
held-out top-1 and held-out loss, and the report's one-sentence reading of the group's
comparison, so the effects can be read off next to the time. The decoded-image cache
(``CONVLAB_CACHE``) is kept between studies, as on a user's machine; its first fill is
part of the first CIFAR study's time. With ``--runs-dir`` pointing at a folder that holds
finished trials, those are skipped (studies resume), so a study can be measured group by
group in several sittings; the trial times are in each group's ``trials.csv``.

    CONVLAB_DATA=../shared/data .venv/bin/python benchmarks/bench_studies.py --scale quick
    .venv/bin/python benchmarks/bench_studies.py --scale smoke --studies capacity ablation

``transfer`` is left out by default: its pretrained weights are a download this machine
cannot make (pass it with ``--studies`` where torch's hub cache holds them).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CpuWatch, data_root, machine, table, wait_quiet

BUDGET = {"smoke": 60.0, "quick": 15 * 60.0, "long": 45 * 60.0}  # seconds per study (issue targets)
DEFAULT = ["permuted-mnist", "capacity", "ablation", "cifar-design", "fashion-mnist"]


def run_study(name: str, scale: str, runs_dir: Path) -> tuple[float, float, int]:
    """Run the CLI; return (wall seconds, others' CPU share, exit code)."""
    wait_quiet()
    watch = CpuWatch()
    cmd = [sys.executable, "-m", "convlab.cli", "study", "run", name, "--scale", scale,
           "--runs-dir", str(runs_dir)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall, _, others = watch.stop()
    if done.returncode != 0:
        print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
    return wall, others, done.returncode


def group_table(name: str, scale: str, runs_dir: Path) -> str:
    """Each group's runs, named as the report names them, and the comparison sentence."""
    from convlab.report.compare import compare_runs
    from convlab.report.data import load_runs
    from convlab.studies import load_study, study_folder

    study = load_study(name)
    folder = study_folder(study, scale, runs_dir)
    report = (folder / "report" / "report.md").read_text()
    out = []
    for g in study.groups:
        runs = load_runs([folder / g.name])
        names = compare_runs(runs).descriptions()
        split = "test" if any("test.top1" in r.final for r in runs) else "val"
        rows = [[n, r.status, str(r.summary.get("epochs_done", "")),
                 _pct(r.final.get("train.top1")), _pct(r.final.get(f"{split}.top1")),
                 _num(r.final.get(f"{split}.loss"))] for n, r in zip(names, runs, strict=True)]
        head = ["run", "status", "epochs", "train top-1", f"{split} top-1", f"{split} loss"]
        sentence = re.search(rf"^#+ {re.escape(g.name)}: Comparison\n\n> (.+)$", report, re.M)
        out.append(f"**{g.name}**: {sentence.group(1) if sentence else ''}\n\n"
                   + table(head, rows))
    return "\n\n".join(out)


def _pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", choices=list(BUDGET), default="quick")
    ap.add_argument("--studies", nargs="+", default=DEFAULT)
    ap.add_argument("--runs-dir", type=Path, default=None,
                    help="where the studies write (default: a fresh temporary folder)")
    a = ap.parse_args()
    data_root()
    runs_dir = a.runs_dir or Path(tempfile.mkdtemp(prefix="convlab-bench-studies-"))
    m = machine()
    print(f"# {a.scale} studies, {m['date']}: {m['cpu']}; torch {m['torch']}; "
          f"runs in {runs_dir}\n", flush=True)
    rows, details = [], []
    for name in a.studies:
        t0 = time.strftime("%H:%M")
        wall, others, rc = run_study(name, a.scale, runs_dir)
        ok = rc == 0 and wall <= BUDGET[a.scale]
        rows.append([name, f"{wall:.0f} s", f"{wall / BUDGET[a.scale]:.2f}", f"{others:.2f}",
                     "yes" if ok else "NO" + ("" if rc == 0 else f" (exit {rc})")])
        print(f"{t0} {name}: {wall:.0f} s (exit {rc}, others {others:.2f})", flush=True)
        if rc == 0:
            details.append(f"### {name}\n\n{group_table(name, a.scale, runs_dir)}")
    budget = f"{BUDGET[a.scale]:.0f} s"
    print("\n" + table(["study", "wall", f"of {budget}", "others", "within budget"], rows))
    print("\n" + "\n\n".join(details))


if __name__ == "__main__":
    main()
