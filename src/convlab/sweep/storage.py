"""Where a sweep's Optuna study lives, the sweep lock, and who is alive.

Two kinds of storage:

* no ``--storage``: Optuna's journal file, ``<sweep folder>/optuna.journal``, safe for
  several processes on one machine. Liveness of a trial's worker is read from the
  process table (same machine, same PID namespace, same process start time), which is
  exact and immediate.
* ``--storage postgresql://user@host/db``: Optuna's RDB storage, shared by any number
  of machines. Liveness is Optuna's heartbeat: each running trial records one every
  ``heartbeat`` seconds, and a trial silent for ``grace = 4 x heartbeat`` is failed by
  whichever worker notices first.

The sweep lock serializes the only operations that must not interleave between workers
(creating trials: see ``convlab.sweep`` for why). On a journal it is ``flock`` on a file
beside the journal; on PostgreSQL a session advisory lock. Both are released by the
kernel or the server when their holder dies, so a killed worker never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.sweep.spec import SweepError

JOURNAL = "optuna.journal"
LOCK = ".sweep.lock"
CONNECT_TIMEOUT_S = 10


def quiet_optuna() -> None:
    """Optuna's info logs and experimental-feature warnings are noise in a sweep's output."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for messages and sweep.json)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL: show nothing secret
        return url.split("@")[-1] if "@" in url else url


@dataclass(frozen=True)
class StorageSpec:
    """Picklable description of the storage, handed to every worker process."""

    url: str | None = None  # None: the journal file in the sweep folder
    heartbeat: int = 15  # seconds; RDB only
    given: str | None = None  # the URL as the user wrote it (messages show this, masked)

    @classmethod
    def from_option(cls, url: str | None, heartbeat: int = 15) -> StorageSpec:
        """Validate ``--storage``: only PostgreSQL is shared safely by many machines."""
        if heartbeat < 1:
            raise SweepError(f"--heartbeat: expected at least 1 second, got {heartbeat}")
        if url is None:
            return cls(None, heartbeat)
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError):
            raise SweepError(
                f"--storage {url!r}: not a database URL; expected "
                f"postgresql://user:password@host:5432/database"
            ) from None
        if parsed.get_backend_name() != "postgresql":
            raise SweepError(
                f"--storage {mask_url(url)}: unsupported database "
                f"{parsed.get_backend_name()!r}; expected postgresql://... (several machines) "
                f"or no --storage (a journal file, this machine)"
            )
        if "+" not in parsed.drivername:  # the driver that is installed, not SQLAlchemy's guess
            parsed = parsed.set(drivername=f"postgresql+{_postgres_driver(url)}")
        return cls(parsed.render_as_string(hide_password=False), heartbeat, url)

    @property
    def remote(self) -> bool:
        return self.url is not None

    @property
    def grace(self) -> int:
        """Seconds of silence after which a running trial's worker counts as dead."""
        return 4 * self.heartbeat

    @property
    def shown(self) -> str:
        """The URL for messages: as given, password masked."""
        return mask_url(self.given or self.url or "")

    def label(self, sweep_dir: Path) -> str:
        return self.shown if self.url else str(sweep_dir / JOURNAL)

    def check_reachable(self) -> None:
        """Connect once before anything is created: an unreachable URL is a user error."""
        if self.url is None:
            return
        import sqlalchemy

        engine = None
        try:
            engine = sqlalchemy.create_engine(
                self.url, poolclass=sqlalchemy.pool.NullPool,
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            )
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
        except Exception as e:  # noqa: BLE001 - driver errors vary; all mean "cannot use it"
            raise SweepError(f"--storage {self.shown}: cannot connect "
                             f"({_first_line(e)})") from None
        finally:
            if engine is not None:
                engine.dispose()

    def open(self, sweep_dir: Path) -> Any:
        """A fresh Optuna storage object for this process (never shared across processes)."""
        import optuna

        quiet_optuna()
        if self.url is None:
            from optuna.storages import JournalStorage

            try:  # optuna >= 4.0
                from optuna.storages.journal import JournalFileBackend as Backend
            except ImportError:  # pragma: no cover - optuna 3.x
                from optuna.storages import JournalFileStorage as Backend
            return JournalStorage(Backend(str(sweep_dir / JOURNAL)))
        try:
            return optuna.storages.RDBStorage(
                self.url,
                engine_kwargs={"pool_pre_ping": True,
                               "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}},
                heartbeat_interval=self.heartbeat,
                grace_period=self.grace,
            )
        except Exception as e:  # noqa: BLE001
            raise SweepError(f"--storage {self.shown}: cannot open the Optuna "
                             f"storage ({_first_line(e)})") from None

    def lock(self, sweep_dir: Path, study: str) -> SweepLock:
        return SweepLock(self, sweep_dir, study)


def _postgres_driver(url: str) -> str:
    """psycopg 3 (SQLAlchemy 2.1's default, and our dependency), else psycopg2."""
    import importlib.util

    for module, name in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        if importlib.util.find_spec(module) is not None:
            return name
    raise SweepError(f"--storage {mask_url(url)}: no PostgreSQL driver installed; "
                     f"pip install 'psycopg[binary]'")


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0].strip()


class SweepLock:
    """A cross-process mutex for one study (re-usable, not re-entrant)."""

    def __init__(self, spec: StorageSpec, sweep_dir: Path, study: str) -> None:
        self.spec = spec
        self.path = sweep_dir / LOCK
        # pg_advisory_lock takes a signed 64-bit key: the study name's hash
        digest = hashlib.sha256(f"convlab-sweep:{study}".encode()).digest()
        self.key = int.from_bytes(digest[:8], "big", signed=True)
        self._engine: Any = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.spec.url is None:
            with open(self.path, "a+b") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released on close or death
                try:
                    yield
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(
                self.spec.url, poolclass=sqlalchemy.pool.NullPool,
                connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
            )
        # a session-level advisory lock on its own connection; closing the connection
        # (or the holder's death) releases it
        with self._engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self.key})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                conn.commit()

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None


# ------------------------------------------------------------------- liveness


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def machine_id() -> str:
    """This kernel boot and PID namespace: two processes with equal ids can see each
    other's PIDs (containers on one kernel share the boot id, not the namespace)."""
    boot = _read("/proc/sys/kernel/random/boot_id") or socket.gethostname()
    try:
        ns = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        ns = "?"
    return f"{boot}:{ns}"


def process_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat):
    together with the PID it names one process, even after the PID is reused. None when
    there is no such process, or only its zombie (dead, not yet reaped by its parent)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # fields[0] is field 3, the state
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def owner_record(worker: str) -> dict[str, Any]:
    """Who runs a trial: written into the trial when a worker claims it."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "machine": machine_id(), "pid": pid,
            "start": process_start(pid), "worker": worker}


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """True/False when the owner is on this machine; None when it is elsewhere (unknown)."""
    if owner.get("machine") != machine_id():
        return None
    start = process_start(int(owner.get("pid", -1)))
    return start is not None and start == owner.get("start")
