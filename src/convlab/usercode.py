"""A user's own code, named by a colon: ``path/to/file.py:Attr`` or ``module.path:Attr``.

One convention for every extension point that takes user code (a model, a dataset
loader, an ``imports:`` file): see docs/architecture.md, "A user's own code".

- ``nets.py:TinyNet`` / ``sub/nets.py:TinyNet``: a file, imported by path. Its folder
  goes on ``sys.path`` so the file may import its neighbours. The module is registered in
  ``sys.modules`` under a name derived from the file's path, so pickling a class defined
  there works in the same process and a second load of an unchanged file is free.
- ``mypkg.nets:TinyNet``: an importable module; ``nets:TinyNet`` also finds ``nets.py``
  in the experiment's folder or the working directory when it is not importable (a
  console script does not put the working directory on ``sys.path``).

Errors raised while importing or calling user code become one :class:`UserCodeError`
line naming the user's file, line and exception (Hydra's "Error locating target" hides
the real cause; this shows it). ``CONVLAB_DEBUG=1`` (or ``--debug``) makes the CLI print
the full traceback, which is kept as the error's ``__cause__``.

Reopening a run in a fresh process (resume, analysis, sweep workers) imports the files
again from their original path while their SHA-256 matches the run's record, else from
the copy in the run folder: :func:`prefer_copies`.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.errors import ConvlabError

_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class UserCodeError(ConvlabError, ValueError):
    """User code that cannot be found, imported, called, or called with these arguments."""


class UserCodeWarning(UserWarning):
    """User code loaded from a run folder's copy because the original changed or is gone."""


@dataclass(frozen=True)
class LoadedObject:
    """What a user-code reference resolved to."""

    obj: Any
    ref: str  # as written (a file reference made absolute)
    file: Path | None  # the source file, absolute, when there is one
    sha256: str | None  # of that file's bytes


def is_user_ref(name: object) -> bool:
    """A name holding a colon names user code (``nets.py:TinyNet``, ``pkg.mod:Net``)."""
    return isinstance(name, str) and ":" in name


def split_ref(ref: str) -> tuple[str, str]:
    """``"a/b.py:Net"`` -> ("a/b.py", "Net"); refuses an empty side or a bad attribute."""
    target, _, attr = ref.rpartition(":")
    if not target or not _ATTR.match(attr):
        raise UserCodeError(
            f"{ref!r}: expected path/to/file.py:Name or module.path:Name "
            f"(Name a class or function defined there)"
        )
    return target, attr


def short_name(name: str) -> str:
    """How a person reads a model name: ``/home/me/exp/nets.py:TinyNet`` -> ``nets.py:TinyNet``
    (registered names and module references unchanged)."""
    if not is_user_ref(name):
        return name
    target, _, attr = name.rpartition(":")
    return f"{Path(target).name}:{attr}" if is_file_target(target) else name


def is_file_target(target: str) -> bool:
    return target.endswith(".py") or "/" in target or os.sep in target


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def resolve_file(target: str, base_dir: Path | None = None) -> Path:
    """The absolute path of a file reference: against ``base_dir`` (the folder of the
    experiment file that names it) when it exists there, else the working directory."""
    p = Path(target).expanduser()
    if p.is_absolute():
        if not p.is_file() and str(p) not in _COPIES:  # a reopened run's copy may serve
            raise UserCodeError(f"{p}: file not found")
        return p
    tried = []
    for folder in ([Path(base_dir)] if base_dir is not None else []) + [Path.cwd()]:
        candidate = (folder / p).resolve()
        if candidate.is_file():
            return candidate
        tried.append(str(candidate))
    raise UserCodeError(f"{target}: file not found (looked for {' and '.join(tried)})")


def absolute_ref(ref: str, base_dir: Path | None = None) -> str:
    """A file reference with its path made absolute (``nets.py:Net`` ->
    ``/home/me/exp/nets.py:Net``); a module reference unchanged, or made a file
    reference when ``module.py`` exists there (what a student beside their file means)."""
    target, attr = split_ref(ref)
    if is_file_target(target):
        return f"{resolve_file(target, base_dir)}:{attr}"
    local = _local_module_file(target, base_dir)  # nets.py beside the experiment wins
    return f"{local}:{attr}" if local is not None else ref


def _local_module_file(module: str, base_dir: Path | None) -> Path | None:
    if not _MODULE.match(module):
        return None
    rel = Path(*module.split(".")).with_suffix(".py")
    for folder in ([Path(base_dir)] if base_dir is not None else []) + [Path.cwd()]:
        if (folder / rel).is_file():
            return (folder / rel).resolve()
    return None


# --------------------------------------------------------------- run-folder copies

# original absolute path -> (sha256 recorded by the run, the copy in the run folder)
_COPIES: dict[str, tuple[str, Path]] = {}


@contextlib.contextmanager
def prefer_copies(records: list[dict[str, Any]], run_dir: Path) -> Iterator[None]:
    """While active, a file a run recorded is imported from its original path if its
    hash still matches, else from the run folder's copy (with one warning line).

    ``records`` are the run's ``env.json`` ``user_code`` entries (``file``, ``sha256``,
    ``copy`` relative to ``run_dir``).
    """
    added = []
    for r in records:
        key = str(r["file"])
        if key not in _COPIES:
            _COPIES[key] = (str(r["sha256"]), Path(run_dir) / str(r["copy"]))
            added.append(key)
    try:
        yield
    finally:
        for key in added:
            _COPIES.pop(key, None)


def _source_for(path: Path) -> Path:
    """The file to import for ``path``: itself, or the run folder's copy (see above)."""
    record = _COPIES.get(str(path))
    if record is None:
        return path
    sha, copy = record
    if path.is_file() and sha256_file(path) == sha:
        return path
    why = "changed since the run" if path.is_file() else "is gone"
    if not copy.is_file():
        raise UserCodeError(f"{path}: {why}, and the run's copy {copy} is missing")
    warnings.warn(f"{path} {why}; using the run's copy {copy}", UserCodeWarning, stacklevel=3)
    return copy


# ----------------------------------------------------------------------- loading

_FILE_MODULES: dict[tuple[str, str], Any] = {}  # (source path, sha256) -> module


def module_name_for(path: Path) -> str:
    """A stable ``sys.modules`` name for a file imported by path (picklable classes)."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    return f"convlab_user_{stem}_{digest}"


def import_file(path: Path) -> Any:
    """Import a Python file by path (once per content), naming the user's error."""
    path = Path(path).resolve()
    source = _source_for(path)
    sha = sha256_file(source)
    cached = _FILE_MODULES.get((str(source), sha))
    if cached is not None:
        return cached
    name = module_name_for(path)
    spec = importlib.util.spec_from_file_location(name, source)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise UserCodeError(f"{source}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # so the file can import its neighbours
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:
        sys.modules.pop(name, None)
        if isinstance(e, KeyboardInterrupt | SystemExit):
            raise
        raise user_error(e, f"importing {source}") from e
    _FILE_MODULES[(str(source), sha)] = module
    return module


def import_module(module: str, base_dir: Path | None = None) -> Any:
    """Import ``module`` by name; a local ``module.py`` is found as a file when the module
    is not importable."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and not module.startswith(e.name):
            raise user_error(e, f"importing {module}") from e  # missing inside the module
        local = _local_module_file(module, base_dir)
        if local is None:
            raise UserCodeError(
                f"{module}: no module of that name can be imported, and no {module}.py was "
                f"found{f' in {base_dir} or' if base_dir else ' in'} the working directory"
            ) from None
        return import_file(local)
    except Exception as e:
        raise user_error(e, f"importing {module}") from e


def import_user_module(item: str, base_dir: Path | None = None) -> Any:
    """An ``imports:`` entry: a file (``nets.py``) or a module name; its decorators run."""
    if is_file_target(item):
        return import_file(resolve_file(item, base_dir))
    return import_module(item, base_dir)


def load_object(ref: str, base_dir: Path | None = None) -> LoadedObject:
    """Resolve ``file.py:Attr`` or ``module:Attr`` to the object it names."""
    target, attr = split_ref(ref)
    file: Path | None = None
    if is_file_target(target):
        file = resolve_file(target, base_dir)
        module = import_file(file)
        ref = f"{file}:{attr}"
    else:
        module = import_module(target, base_dir)
        src = getattr(module, "__file__", None)
        file = Path(src).resolve() if src and _is_user_file(module) else None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            hint = difflib.get_close_matches(attr, names, n=1)
            where = file or target
            raise UserCodeError(
                f"{where}: defines no {attr!r}"
                + (f"; did you mean {hint[0]!r}?" if hint else
                   f" (it defines: {', '.join(names[:12]) or 'nothing public'})")
            )
        obj = getattr(obj, part)
    source = Path(getattr(module, "__file__", "") or "")
    sha = sha256_file(source) if file is not None and source.is_file() else None
    return LoadedObject(obj, ref, file, sha)


def _is_user_file(module: Any) -> bool:
    """A module imported by path through :func:`import_file` (a copy worth keeping)."""
    return str(getattr(module, "__name__", "")).startswith("convlab_user_")


# ----------------------------------------------------------------------- errors


def user_error(e: BaseException, doing: str) -> UserCodeError:
    """One line: the user's innermost frame (file:line), the exception type and text."""
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if "/convlab/" not in f.filename.replace(os.sep, "/")
              and not f.filename.startswith("<frozen")]
    where = f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""
    if isinstance(e, SyntaxError) and e.filename:
        where = f"{e.filename}:{e.lineno}: "
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return UserCodeError(f"{where}{type(e).__name__}{': ' + text if text else ''} ({doing})")


def call_user(fn: Callable[..., Any], kwargs: dict[str, Any], where: str) -> Any:
    """Call user code; an exception it raises becomes one UserCodeError line."""
    try:
        return fn(**kwargs)
    except ConvlabError:
        raise
    except Exception as e:
        raise user_error(e, where) from e


# ------------------------------------------------------------- keyword arguments


def signature_of(fn: Callable[..., Any]) -> inspect.Signature:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError) as e:
        raise UserCodeError(f"{fn!r}: cannot read its signature ({e})") from None


def check_kwargs(
    fn: Callable[..., Any], kwargs: dict[str, Any], where: str,
    provided: dict[str, Any] | None = None, optional: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check ``kwargs`` against ``fn``'s signature and return the arguments to call with.

    An unknown key (with a "did you mean"), a missing required parameter, or a value
    its annotation refuses is a one-line UserCodeError naming ``where`` and the key.
    ``provided`` fills parameters the signature names and ``kwargs`` does not set (the
    dataset's ``num_classes``, ``in_channels``, ``in_shape``); names in ``optional`` may
    be missing now because they will be provided later.
    """
    from pydantic import ConfigDict, ValidationError, create_model

    from convlab.schema import format_validation_error

    sig = signature_of(fn)
    params = {n: p for n, p in sig.parameters.items()
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    takes_any = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
    if not takes_any:
        for key in kwargs:
            if key not in params:
                hint = difflib.get_close_matches(key, list(params), n=1)
                accepted = ", ".join(params) or "no keyword arguments"
                raise UserCodeError(
                    f"{where}: unknown key {key!r}"
                    + (f"; did you mean {hint[0]!r}?" if hint else f" (it takes: {accepted})")
                )
    out = dict(kwargs)
    for name, value in (provided or {}).items():
        if name in params and name not in out:
            out[name] = value
    missing = [n for n, p in params.items()
               if p.default is p.empty and n not in out and n not in optional]
    if missing:
        raise UserCodeError(f"{where}: missing required key {missing[0]!r}")
    fields: dict[str, Any] = {}
    for name in out:
        p = params.get(name)
        if p is None or p.annotation is p.empty or isinstance(p.annotation, str):
            continue  # no annotation to check (or an unresolvable string one)
        fields[name] = (p.annotation, ...)
    if not fields:
        return out
    try:
        model = create_model(  # type: ignore[call-overload]
            "UserKwargs", __config__=ConfigDict(arbitrary_types_allowed=True), **fields
        )
        checked = model.model_validate({k: out[k] for k in fields})
    except ValidationError as e:
        raise UserCodeError(format_validation_error(e, where)) from None
    except Exception:  # an annotation pydantic cannot build a validator for: skip checks
        return out
    out.update({k: getattr(checked, k) for k in fields})
    return out


def json_defaults(fn: Callable[..., Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The signature's defaults that are plain data (recorded in the resolved config)."""
    out = {}
    for name, p in signature_of(fn).parameters.items():
        if name in skip or p.default is p.empty or p.kind not in (
            p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY
        ):
            continue
        if _is_plain(p.default):
            out[name] = list(p.default) if isinstance(p.default, tuple) else p.default
    return out


def _is_plain(v: Any) -> bool:
    if v is None or isinstance(v, bool | int | float | str):
        return True
    if isinstance(v, list | tuple):
        return all(_is_plain(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _is_plain(x) for k, x in v.items())
    return False


def debug_enabled() -> bool:
    return os.environ.get("CONVLAB_DEBUG", "") not in ("", "0", "false", "no")
