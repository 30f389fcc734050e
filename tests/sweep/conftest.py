"""Fixtures for the sweep tests: sweep files over the tiny experiment, and a throwaway
PostgreSQL server (skipped with a reason where its binaries are not installed)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import tiny_config


def tiny_base(**sections: Any) -> dict[str, Any]:
    """The shared tiny experiment, one thread (other work shares these two cores)."""
    cfg = tiny_config(**sections)
    cfg["train"] = {**cfg["train"], "threads": 1}
    return cfg


@pytest.fixture
def write_sweep(tmp_path: Path) -> Callable[..., Path]:
    """``write_sweep(grid=..., seeds=...)``: a sweep file over the tiny experiment."""

    def write(name: str = "tinysweep", base: Any = None, **body: Any) -> Path:
        doc = {"name": name, "base": tiny_base() if base is None else base, **body}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return versions[-1] if versions else None


def _server_user() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: as root, run it as 'postgres' (Debian's package
    creates it) or 'nobody'; otherwise as ourselves."""
    if os.geteuid() != 0:
        return {}
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            u = pwd.getpwnam(name)
            return {"user": u.pw_uid, "group": u.pw_gid, "extra_groups": []}
    pytest.skip("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free localhost port, for this module's tests."""
    initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
    if initdb is None or postgres is None:
        pytest.skip("PostgreSQL server binaries (initdb, postgres) not installed: "
                    "apt-get install postgresql")
    from convlab.sweep import StorageSpec, SweepError

    try:
        StorageSpec.from_option("postgresql://x@127.0.0.1/x")
    except SweepError as e:
        pytest.skip(str(e))
    as_user = _server_user()
    # not pytest's tmp_path: that is private to root (0700), and the server must not be root
    folder = Path(tempfile.mkdtemp(prefix="convlab-pg-"))
    if as_user:
        os.chown(folder, as_user["user"], as_user["group"])
    proc, log = None, None
    try:
        init = subprocess.run(
            [initdb, "-D", str(folder / "data"), "-U", "convlab", "--auth=trust", "--no-sync",
             "-E", "UTF8"], capture_output=True, text=True, cwd=folder, timeout=120, **as_user)
        if init.returncode != 0:
            pytest.fail(f"initdb failed: {init.stderr.strip()[-500:]}")
        port = free_port()
        log = open(folder / "server.log", "wb")  # noqa: SIM115 - closed at teardown
        proc = subprocess.Popen(
            [postgres, "-D", str(folder / "data"), "-p", str(port), "-h", "127.0.0.1",
             "-k", str(folder), "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off", "-c", "max_connections=50"],
            stdout=log, stderr=subprocess.STDOUT, cwd=folder, **as_user)
        url = f"postgresql://convlab@127.0.0.1:{port}/postgres"
        deadline = time.monotonic() + 60
        while True:
            try:
                StorageSpec.from_option(url).check_reachable()
                break
            except SweepError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (folder / "server.log").read_text(errors="replace")[-800:]
                    pytest.fail(f"PostgreSQL did not start: {tail}")
                time.sleep(0.1)
        yield url
    finally:
        if proc is not None:
            proc.send_signal(2)  # SIGINT: fast shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log is not None:
            log.close()
        shutil.rmtree(folder, ignore_errors=True)
