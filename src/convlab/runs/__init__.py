"""Run folders: the only module that knows their layout.

::

    <runs_dir>/<experiment>/<run-id>/
        config.yaml            the resolved experiment config
        env.json               provenance: versions, device, threads, seed, git, data fingerprint
        metrics.csv            one row per epoch and split
        summary.json           status, final and best metrics, times; written last
        model.safetensors      the final (or restored best) weights
        normalizer.safetensors the input normalization fitted on the training split
        checkpoint/            the latest end-of-epoch state, for --resume
        steps.csv              train metrics every log_every steps; gradient norms when tracked

Every file is written to a temporary name in the same folder and renamed, so a reader
never sees half a file; ``summary.json`` is updated after the files it describes, so a
killed run reads as ``running`` (incomplete), never as silently finished.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from convlab.errors import RunError

STATUSES = ("running", "completed", "failed", "diverged", "interrupted", "pruned")
METRIC_FIELDS = ("epoch", "split", "loss", "top1", "top5", "lr", "time_s")


def resolve_runs_dir(runs_dir: str | Path | None = None) -> Path:
    """The runs root: the argument, else ``$CONVLAB_RUNS``, else ``./runs``."""
    return Path(runs_dir or os.environ.get("CONVLAB_RUNS") or "runs")


# ------------------------------------------------------------------- atomic writes


class WriteError(RunError, OSError):
    """A run file that could not be written: disk full, read-only, gone.

    A user-facing one-line error (the CLI prints it, exit code 2) that is still an
    ``OSError``, with ``errno`` and ``strerror`` set, for callers that catch those.
    """

    def __init__(self, path: Path, code: int | None, reason: str) -> None:
        OSError.__init__(self, code, reason, str(path))
        self.message = f"{path}: cannot write ({reason})"

    def __str__(self) -> str:
        return self.message


def atomic_write(path: Path, data: bytes | str | Callable[[Path], None]) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder + rename.

    ``data`` may be a callable that writes to the temporary path it is given (for
    libraries such as safetensors that want a file name). On any failure the temporary
    file is removed (when the file system still allows it) and the previous ``path`` is
    untouched. A failure of the storage itself (full, read-only, ...) is raised as a
    :class:`WriteError` naming ``path``, whichever library did the writing.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if callable(data):
            data(tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
        with open(tmp, "rb+") as f:  # flush to disk before the rename makes it visible
            os.fsync(f.fileno())
        _before_replace_hook(path)
        os.replace(tmp, path)
    except BaseException as e:
        # diagnose before removing the temporary file: removing it frees the space
        io_error = _storage_error(path, e) if isinstance(e, Exception) else None
        with contextlib.suppress(OSError):  # a read-only folder refuses this too
            tmp.unlink(missing_ok=True)
        if io_error is not None:
            raise io_error from e
        raise


_ERRNO_IN_TEXT = re.compile(r"(?:os error |code: |\[Errno )(\d+)")


def _storage_error(path: Path, e: Exception) -> WriteError | None:
    """A WriteError when ``e`` comes from the storage, else None (a bug: re-raise as is).

    safetensors (Rust) and torch.save (C++) report I/O failures as their own exception
    types, with the OS error in the text or not at all; the folder then tells.
    """
    code = e.errno if isinstance(e, OSError) else None
    if code is None:
        m = _ERRNO_IN_TEXT.search(str(e))
        code = int(m.group(1)) if m else None
    if code is None:
        try:
            st = os.statvfs(path.parent)
            if st.f_bavail == 0 or (st.f_files and st.f_favail == 0):  # btrfs: f_files 0
                code = errno.ENOSPC
            elif not os.access(path.parent, os.W_OK):  # read-only mounts refuse even root
                code = errno.EROFS if st.f_flag & os.ST_RDONLY else errno.EACCES
        except OSError as probe:
            code = probe.errno
    if code is None:
        if not isinstance(e, OSError):
            return None
        return WriteError(path, None, str(e).strip().splitlines()[0] if str(e).strip()
                          else type(e).__name__)
    return WriteError(path, code, os.strerror(code))


def _before_replace_hook(path: Path) -> None:
    """Test-only: ``CONVLAB_TEST_SLOW_WRITE=seconds`` widens the window before a rename,
    so kill tests can land inside a checkpoint write."""
    delay = os.environ.get("CONVLAB_TEST_SLOW_WRITE")
    if delay:
        time.sleep(float(delay))


def write_json(path: Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: not a readable JSON file ({e})") from None


def rows_to_csv(rows: Iterable[dict[str, Any]], fields: Iterable[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


# ------------------------------------------------------------------- a run folder


@dataclass
class Run:
    """A run folder on disk, opened for reading (``Run.open``) or being written."""

    path: Path
    summary: dict[str, Any] = field(default_factory=dict)

    # -- creation -----------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: str | Path | None, experiment: str, tag: str) -> Run:
        """A fresh, uniquely named folder ``<runs_dir>/<experiment>/<time>-<tag>``."""
        parent = resolve_runs_dir(runs_dir) / experiment
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunError(f"{parent}: cannot create the run folder ({e.strerror})") from None
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{tag}"
        for i in range(1000):
            path = parent / (stem if i == 0 else f"{stem}-{i}")
            try:
                path.mkdir()
                return cls(path)
            except FileExistsError:
                continue
            except OSError as e:
                raise RunError(f"{path}: cannot create the run folder ({e.strerror})") from None
        raise RunError(f"{parent}: too many runs named {stem}")  # pragma: no cover

    @classmethod
    def open(cls, path: str | Path) -> Run:
        path = Path(path)
        if not path.is_dir():
            raise RunError(f"{path}: not a run folder (no such directory)")
        if not (path / "summary.json").exists():
            raise RunError(f"{path}: not a run folder (no summary.json)")
        return cls(path, read_json(path / "summary.json"))

    # -- files ----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "running"))

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def weights_path(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def normalizer_path(self) -> Path:
        return self.path / "normalizer.safetensors"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoint"

    @property
    def figures_dir(self) -> Path:
        """Where ``convlab viz`` puts its PNG files."""
        return self.path / "figures"

    @property
    def fully_conv_dir(self) -> Path:
        """Where ``convlab convert --fully-convolutional`` puts its outputs."""
        return self.path / "fully_conv"

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text)

    def write_summary(self, **updates: Any) -> None:
        """Merge ``updates`` into summary.json (always the last file a step writes)."""
        self.summary.update(updates)
        write_json(self.path / "summary.json", self.summary)

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        atomic_write(self.path / "metrics.csv", rows_to_csv(rows, METRIC_FIELDS))

    def write_steps(self, rows: list[dict[str, Any]]) -> None:
        """steps.csv from rows of different kinds (gradient norms, interval train
        metrics), each with a ``step``: rows of one step and epoch become one line; a
        column a row lacks is left blank. (A gradient row of step ``s`` is the gradient
        of step ``s + 1``; an epoch's last metrics row, after step ``s``, stays apart.)"""
        merged: dict[tuple[Any, Any], dict[str, Any]] = {}
        for r in rows:
            merged.setdefault((r["step"], r.get("epoch")), {}).update(r)
        if not merged:
            return
        fields = list(dict.fromkeys(k for r in rows for k in r))
        lines = [merged[k] for k in sorted(merged)]
        atomic_write(self.path / "steps.csv", rows_to_csv(lines, fields))

    def remove_stale_temp_files(self) -> int:
        """Delete temp files a killed writer left (``.NAME.tmp-PID``); return how many."""
        stale = [*self.path.glob(".*.tmp-*"), *self.checkpoint_dir.glob(".*.tmp-*")]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)

    # -- reading --------------------------------------------------------------------

    @property
    def config(self) -> Any:
        from convlab.config import load_config

        return load_config(self.config_path)

    @property
    def env(self) -> dict[str, Any]:
        return read_json(self.path / "env.json")

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.path / "metrics.csv")

    @property
    def steps(self) -> dict[str, list[float]]:
        """steps.csv as columns, one value per line, NaN where a line has none: gradient
        norms every ``train.track_grad_norms`` steps (``total`` and one per layer) and
        train metrics every ``train.log_every`` steps (``at_epoch``, ``train_loss``,
        ``train_top1``, ``lr``). Empty when the run has none or the file is unreadable
        (an optional file)."""
        path = self.path / "steps.csv"
        if not path.exists():
            return {}
        try:
            with open(path, newline="") as f:
                rows = list(csv.DictReader(f))
            cols = {k: [float(r[k]) if r.get(k) not in (None, "") else float("nan")
                        for r in rows] for k in (rows[0] if rows else {}) if k is not None}
        except (OSError, ValueError, csv.Error):
            return {}
        return cols if any(v == v for v in cols.get("step", [])) else {}

    def metric(self, split: str, name: str) -> list[float]:
        """One metric per epoch for one split, e.g. ``run.metric("test", "top1")``."""
        return [float(r[name]) for r in self.metrics if r["split"] == split and r[name] != ""]

    def load_model(self, device: str = "cpu") -> Any:
        """The model of this run with its saved weights, in eval mode."""
        from convlab.train.checkpoint import load_weights
        from convlab.train.runner import build_model_for

        model = build_model_for(self.config, self.summary)
        load_weights(model, self.weights_path)
        return model.to(device).eval()

    def metrics_table(self) -> Any:
        from rich.table import Table

        table = Table("epoch", "split", "loss", "top1", "top5", "lr", "time s")
        for r in self.metrics:
            table.add_row(*(str(r.get(k, "")) for k in METRIC_FIELDS))
        return table


def read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["epoch"] = int(r["epoch"])
        for k in ("loss", "top1", "top5", "lr", "time_s"):
            if r.get(k) not in (None, ""):
                r[k] = float(r[k])
    return rows


def list_runs(
    runs_dir: str | Path, experiment: str | None = None, status: str | None = None
) -> list[Run]:
    """Every run folder under ``runs_dir`` (sorted by name = by start time per experiment).

    A folder whose summary.json is missing or unreadable is listed as ``incomplete``: a
    run killed before its first write, or one being created right now.
    """
    import fnmatch

    root = Path(runs_dir)
    out: list[Run] = []
    if not root.is_dir():
        return out
    for exp_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if experiment and not fnmatch.fnmatchcase(exp_dir.name, experiment):
            continue
        for run_dir in sorted(p for p in exp_dir.iterdir() if p.is_dir()):
            try:
                run = Run.open(run_dir)
            except RunError:
                run = Run(run_dir, {"status": "incomplete"})
            if status and run.status != status:
                continue
            out.append(run)
    return out
