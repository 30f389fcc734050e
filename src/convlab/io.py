"""Files written safely, read with a clear error: the one I/O leaf everything may use.

- :func:`atomic_write`: a temporary name in the same folder, fsync, rename; a storage
  failure (full, read-only) is one :class:`WriteError` line naming the file.
- JSON and CSV helpers; safetensors weights and tensors (no pickle: loading cannot run
  code); other state through ``torch.load(weights_only=True)``.

torch and safetensors are imported inside the functions that need them, so listing run
folders stays fast. See docs/architecture.md, "Layers".
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
from pathlib import Path
from typing import Any

from convlab.errors import RunError

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



# ------------------------------------------------------------------- tensors


def state_dict_for_save(model: Any) -> dict[str, Any]:
    """Contiguous CPU copies (safetensors refuses shared or strided storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}


def save_weights(model: Any, path: Path) -> None:
    from safetensors.torch import save_file

    sd = state_dict_for_save(model)
    atomic_write(path, lambda tmp: save_file(sd, str(tmp)))


def save_tensors(tensors: dict[str, Any], path: Path) -> None:
    from safetensors.torch import save_file

    sd = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(sd, str(tmp)))


def load_tensors(path: Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise RunError(f"{path}: not a valid safetensors file ({e})") from None


def load_weights(model: Any, path: Path) -> None:
    """Load a safetensors state dict, naming the file and the mismatch when it does not fit."""
    sd = load_tensors(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    if missing or unexpected:
        raise RunError(
            f"{path}: weights do not fit the model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    for k, v in sd.items():
        if v.shape != own[k].shape:
            raise RunError(
                f"{path}: {k} has shape {tuple(v.shape)}, the model expects {tuple(own[k].shape)}"
            )
    model.load_state_dict(sd)


def save_state(state: dict[str, Any], path: Path) -> None:
    """Optimizer/scheduler/RNG/loop state: tensors and plain containers only."""
    import torch

    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RunError(f"{path}: file not found") from None
    except Exception as e:  # weights_only refusals, truncation, bad zip: all one story
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RunError(f"{path}: not a loadable checkpoint state ({first})") from None


