"""Helpers for the fault tests: a fork server for training processes, and run checks.

Starting a Python process that imports torch costs 2-8 s on the 2-core test machines,
too much for twenty-odd kill trials or eight parallel runs. ``python _train_child.py
serve`` is a *fork server*: it imports convlab (and torch) once, then for each request
forks a child that runs the real command line (``convlab.cli.main``) with the given
arguments and environment, its output in a log file. The children are ordinary
processes with their own pids, so the tests can ``kill -9`` them, and they share
nothing with each other once forked. The server itself never runs a torch operation,
so no thread pool exists when it forks.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

TMP_RE = re.compile(r"^\..+\.tmp-\d+$")  # atomic_write's temporary names


# ------------------------------------------------------------------- the fork server


def _serve() -> None:  # pragma: no cover - runs in the server process
    import torch._inductor  # noqa: F401  (use_deterministic_algorithms imports it: ~3 s)

    import convlab.cli as cli
    import convlab.commands.analysis  # noqa: F401  (imported once here, not per child)
    import convlab.train.runner  # noqa: F401

    children: dict[int, int | None] = {}  # pid -> exit code (negative: killed by signal)

    def reap(pid: int = -1) -> None:
        while True:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return
            if got == 0:
                return
            children[got] = os.waitstatus_to_exitcode(status)
            if pid != -1:
                return

    def reply(obj: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "start":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(cli, req)  # never returns
            children[pid] = None
            reply({"pid": pid})
        elif cmd == "poll":
            reap()
            reply({"exited": {str(p): c for p, c in children.items() if c is not None}})
        elif cmd == "wait":
            pid, deadline = int(req["pid"]), time.monotonic() + float(req.get("timeout", 60))
            while children.get(pid) is None and time.monotonic() < deadline:
                reap(pid)
                if children.get(pid) is None:
                    time.sleep(0.005)
            reply({"code": children.get(pid)})
        elif cmd == "quit":
            break
    for pid, code in children.items():  # leave nothing running behind us
        if code is None:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


def _child(cli: Any, req: dict[str, Any]) -> None:  # pragma: no cover - forked child
    code = 1
    try:
        fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.environ.update(req.get("env", {}))
        os.chdir(req.get("cwd", "."))
        sys.argv = ["convlab", *req["argv"]]
        try:
            cli.main()
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


# ------------------------------------------------------------------- the client


class ForkServer:
    """Client of ``_train_child.py serve`` (one per test session: see ``fork_server``)."""

    def __init__(self) -> None:
        env = {**os.environ, "COLUMNS": "300", "PYTHONUNBUFFERED": "1"}
        env.pop("CONVLAB_TEST_SLOW_WRITE", None)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, bufsize=1, env=env,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, obj: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"fork server did not answer {obj['cmd']!r} in {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fork server died (exit {self.proc.poll()})")
        return json.loads(line)

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> int:
        """Fork a child running ``convlab <argv>``; its stdout+stderr go to ``log``."""
        out = self.request({"cmd": "start", "argv": argv, "log": str(log), "env": env or {},
                            "cwd": str(cwd or log.parent)})
        return int(out["pid"])

    def poll(self) -> dict[int, int]:
        """Exit codes of the children that have ended so far (negative: by a signal)."""
        return {int(p): c for p, c in self.request({"cmd": "poll"})["exited"].items()}

    def wait(self, pid: int, timeout: float = 120) -> int | None:
        out = self.request({"cmd": "wait", "pid": pid, "timeout": timeout}, timeout + 30)
        return out["code"]

    def close(self) -> None:
        if self.alive():
            assert self.proc.stdin is not None
            try:  # no reply to wait for: the server kills its children and exits
                self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


_SERVER: ForkServer | None = None


def fork_server() -> ForkServer:
    """The session's fork server, started on first use and stopped at exit."""
    global _SERVER
    if _SERVER is None or not _SERVER.alive():
        _SERVER = ForkServer()
        atexit.register(_SERVER.close)
    return _SERVER


# ------------------------------------------------------------------- checks on runs


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(cfg))
    return path


def temp_files(folder: Path) -> list[Path]:
    """atomic_write temporaries left under ``folder`` (a kill -9 leaves some)."""
    return sorted(p for p in folder.rglob(".*") if TMP_RE.match(p.name))


def load_checkpoint_files(run_dir: Path) -> dict[str, Any]:
    """What --resume would read: state.pt (weights_only) and the weights file it names.

    Raises AssertionError with a reason when either does not load or holds non-finite
    weights; returns the state.
    """
    folder = run_dir / "checkpoint"
    state = torch.load(folder / "state.pt", map_location="cpu", weights_only=True)
    assert isinstance(state, dict) and {"weights", "loop", "optimizer"} <= set(state), state
    weights = folder / state["weights"]
    assert weights.is_file(), f"state.pt names {weights.name}, which does not exist"
    tensors = load_file(weights)
    assert tensors and all(bool(torch.isfinite(t).all()) for t in tensors.values())
    return state


def metric_rows(run_dir: Path) -> list[tuple[Any, ...]]:
    """metrics.csv without the wall-clock column: what must repeat bit for bit."""
    from convlab.runs import read_metrics

    return [(r["epoch"], r["split"], r["loss"], r["top1"], r.get("top5"), r["lr"])
            for r in read_metrics(run_dir / "metrics.csv")]


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_file(a), load_file(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def complete_run_problems(run_dir: Path, epochs: int, splits: int = 2) -> list[str]:
    """Why a folder shown ``completed`` is not a complete run (empty list: it is)."""
    problems: list[str] = []
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError) as e:
        return [f"summary.json unreadable: {e}"]
    try:
        weights = load_file(run_dir / "model.safetensors")
        if summary.get("params") != sum(t.numel() for t in weights.values()):
            problems.append("model.safetensors does not hold `params` numbers")
    except Exception as e:  # noqa: BLE001 - any failure to load is the finding
        problems.append(f"model.safetensors does not load: {e}")
    rows = metric_rows(run_dir)
    if len(rows) != epochs * splits or [r[0] for r in rows[::splits]] != list(
            range(1, epochs + 1)):
        problems.append(f"metrics.csv has {len(rows)} rows, expected {epochs * splits}")
    elif summary.get("final", {}).get("test.loss") != rows[-1][2]:
        problems.append("summary final test.loss differs from metrics.csv's last row")
    if summary.get("epochs_done") != epochs:
        problems.append(f"epochs_done {summary.get('epochs_done')} != {epochs}")
    return problems


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] == ["serve"]:
        _serve()
    else:
        sys.exit(f"usage: {sys.argv[0]} serve")
