"""Shared helpers of the benchmark scripts: contention guard, timing, machine facts.

The benchmark machines are shared (other people run test suites on the same 2 cores),
so every measurement (1) first waits until the CPUs look idle, (2) records how much CPU
the REST of the machine used while it ran (``others``: busy CPU time of every process
outside this one and its children, as a fraction of all cores over the measurement's
wall time; ~0.0-0.03 on a quiet machine), and (3) is redone when ``others`` exceeded
``MAX_OTHERS``, up to a few tries; the median of the kept repeats is reported together
with the largest ``others`` among them, so a table says how clean its numbers are.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DATA_ENV = "CONVLAB_DATA"
DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
MAX_OTHERS = 0.08  # redo a measurement when other processes used more CPU than this
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NCPU = os.cpu_count() or 1


def data_root() -> str:
    """``$CONVLAB_DATA``, else ``../shared/data`` next to the repository."""
    root = os.environ.get(DATA_ENV) or os.path.abspath(DEFAULT_DATA)
    os.environ[DATA_ENV] = root  # so convlab (and subprocesses) find the same files
    return root


# ----------------------------------------------------------------- CPU accounting


def _system_busy() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) of the whole machine since boot."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    idle = vals[3] + vals[4]  # idle + iowait
    total = sum(vals[:8])  # guest time is already inside user
    return (total - idle) / TICK, total / TICK


def _tree_cpu(root: int | None = None) -> float:
    """CPU seconds of process ``root`` (default: this one) and its live descendants
    (DataLoader workers, a benchmarked subprocess), plus children already waited for."""
    root = os.getpid() if root is None else root
    stats: dict[int, tuple[int, float]] = {}  # pid -> (ppid, cpu seconds)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        rest = raw[raw.rindex(")") + 2 :].split()
        # fields after the name: state ppid ... utime(14th) stime(15th) cutime cstime
        ppid = int(rest[1])
        cpu = sum(int(v) for v in rest[11:15]) / TICK  # utime stime cutime cstime
        stats[int(name)] = (ppid, cpu)
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for pid, (ppid, _) in stats.items():
            if ppid == p and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(stats[p][1] for p in tree if p in stats)


class CpuWatch:
    """Measures, over an interval, this process tree's CPU and everybody else's."""

    def __init__(self, root: int | None = None) -> None:
        self.root = root
        self.busy0, self.total0 = _system_busy()
        self.own0 = _tree_cpu(root)
        self.t0 = time.perf_counter()

    def stop(self, root: int | None = None) -> tuple[float, float, float]:
        """(wall seconds, own share of all cores, others' share of all cores)."""
        wall = time.perf_counter() - self.t0
        busy, total = _system_busy()
        own = _tree_cpu(root if root is not None else self.root) - self.own0
        span = max(total - self.total0, 1e-9)
        others = max(0.0, (busy - self.busy0) - own) / span
        return wall, own / span, others


def busy_fraction(interval: float = 0.5) -> float:
    """Fraction of all CPUs busy over ``interval`` seconds."""
    b0, t0 = _system_busy()
    time.sleep(interval)
    b1, t1 = _system_busy()
    return (b1 - b0) / max(t1 - t0, 1e-9)


def wait_quiet(max_busy: float = 0.10, timeout: float = 300.0) -> float:
    """Block until the machine's CPUs are mostly idle (or ``timeout``); return the last
    busy fraction seen."""
    if not os.path.exists("/proc/stat"):  # pragma: no cover - not Linux
        return 0.0
    deadline = time.monotonic() + timeout
    busy = busy_fraction()
    while busy > max_busy and time.monotonic() < deadline:
        busy = busy_fraction()
    return busy


# ------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Kept repeats of one case: wall seconds and the others' CPU share during each."""

    seconds: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)
    own: list[float] = field(default_factory=list)
    discarded: int = 0  # repeats redone because others competed
    note: str = ""

    def add(self, wall: float, own: float, others: float) -> None:
        self.seconds.append(wall)
        self.own.append(own)
        self.others.append(others)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: the noise between kept repeats."""
        return (max(self.seconds) - min(self.seconds)) / self.median if self.seconds else 0.0

    @property
    def max_others(self) -> float:
        return max(self.others) if self.others else 0.0


def repeat(fn: Callable[[], object], repeats: int, max_tries: int | None = None,
           max_others: float = MAX_OTHERS) -> Timing:
    """``repeats`` clean timed runs of ``fn``: each waits for an idle machine first and
    is redone when other processes took more than ``max_others`` of the CPUs (at most
    ``max_tries`` runs in all; then the least disturbed ones are kept)."""
    max_tries = max_tries or 4 * repeats
    out, dirty = Timing(), Timing()
    tries = 0
    while len(out.seconds) < repeats and tries < max_tries:
        tries += 1
        wait_quiet()
        w = CpuWatch()
        fn()
        wall, own, others = w.stop()
        (out if others <= max_others else dirty).add(wall, own, others)
    out.discarded = len(dirty.seconds)
    if len(out.seconds) < repeats:  # never got a quiet window: keep the least disturbed
        order = sorted(range(len(dirty.seconds)), key=lambda i: dirty.others[i])
        for i in order[: repeats - len(out.seconds)]:
            out.add(dirty.seconds[i], dirty.own[i], dirty.others[i])
    return out


def machine() -> dict[str, str]:
    """CPU model, core count, torch version and threads: the table header's facts."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": f"{model}, {NCPU} cores, {platform.machine()}",
        "torch": torch.__version__,
        "threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
    }


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (also readable as plain text)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "| " + " | ".join("-" * w for w in widths) + " |"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, sep, *body])
