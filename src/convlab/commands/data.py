"""``convlab data ls|show`` (the registered datasets, where their files are) and
``convlab cache ls|clear`` (the decoded-image cache)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(help="The registered datasets and where their files are.",
                       no_args_is_help=True)
cache_app = typer.Typer(help="The decoded-image cache ($CONVLAB_CACHE).", no_args_is_help=True)
console = Console(soft_wrap=True, highlight=False)

RootOption = Annotated[Path | None, typer.Option(
    "--root", help="Data root to look in (default: $CONVLAB_DATA, else ~/.cache/convlab/data).")]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", "-s", help="A data setting: --set label=coarse, --set path=pets.zip (repeatable).")]


def _shape(shape: tuple[int, int, int] | None) -> str:
    return "x".join(map(str, shape)) if shape else "(from the files)"


def _config(name: str, root: Path | None, sets: list[str] | None) -> object:
    from pydantic import ValidationError

    from convlab.config import (
        ConfigError,
        DataConfig,
        apply_override,
        format_validation_error,
        parse_override,
    )

    raw: dict[str, object] = {"dataset": name, "download": False}
    if root is not None:
        raw["root"] = root
    for item in sets or []:
        keys, value = parse_override(item)
        apply_override(raw, keys, value)
    try:
        return DataConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, "data")) from None


@data_app.command("ls")
def data_ls(root: RootOption = None) -> None:
    """Each dataset: shape, classes, where its files are looked for, and whether they are
    present here."""
    from convlab.data.sources import dataset_info, locate
    from convlab.data.spec import DATASETS

    table = Table("dataset", "shape", "classes", "train / test", "looked for", "here")
    for name in DATASETS.list():
        cfg = _config(name, root, None)
        info, found = dataset_info(cfg), locate(cfg)  # type: ignore[arg-type]
        spec = DATASETS.get(name)
        sizes = " / ".join(f"{info.sizes[s]:,}" for s in ("train", "test")) \
            if info.sizes else "-"
        if spec.locate is None:
            where, here = "(reads no file)", "yes"
        elif not found.looked:
            where, here = "data.path", "-"
        else:
            where = str(found.found or found.looked[0])
            here = "yes" if found.found else "no"
        table.add_row(name, _shape(info.shape), str(len(info.classes)) if info.classes else "-",
                      sizes, where, here)
    console.print(table)


@data_app.command("show")
def data_show(
    name: Annotated[str, typer.Argument(
        help="A registered dataset (e.g. cifar100) or a user's loader 'mydata.py:load'.")],
    root: RootOption = None, set_: SetOption = None,
    read: Annotated[bool, typer.Option(
        "--read", help="Read the files to report the sizes found (seconds for big sets).")]
    = False,
) -> None:
    """A dataset's settings, sizes, class names, where it was found, and its cache files."""
    from convlab.data.imagefolder import cache_dir
    from convlab.data.sources import dataset_info, load_raw, locate
    from convlab.data.spec import DATASETS
    from convlab.usercode import is_user_ref

    cfg = _config(name, root, set_)  # an unknown name: one line with the closest names
    out = console.print
    if is_user_ref(name):
        out(f"[bold]{name}[/bold]: a user's loader, called with data.args "
            f"{cfg.args}")  # type: ignore[attr-defined]
        if read:
            raw = load_raw(cfg)  # type: ignore[arg-type]
            out(f"read: train {len(raw.train):,}, test {len(raw.test):,}, "
                f"{_shape(raw.shape)}, classes ({len(raw.classes)}): {', '.join(raw.classes)}")
        return
    spec = DATASETS.get(name)
    info, found = dataset_info(cfg), locate(cfg)  # type: ignore[arg-type]
    out(f"[bold]{name}[/bold]: {spec.summary}")
    out(f"settings: {cfg.settings or '(none of its own)'}")  # type: ignore[attr-defined]
    for field, f in spec.settings.model_fields.items():
        out(f"  {field}: {f.description or ''} (default {f.default!r})")
    out(f"shape: {_shape(info.shape)}")
    if info.sizes:
        out("sizes: " + ", ".join(f"{s} {n:,}" for s, n in info.sizes.items()))
    if info.classes:
        out(f"classes ({len(info.classes)}): {', '.join(info.classes)}")
    out(f"files: {spec.files}")
    if spec.locate is not None:
        out(f"looked in: {', '.join(map(str, found.looked)) or '(data.path unset)'}")
        out(f"found: {found.found or 'no'}")
    out(f"download: {spec.download or 'never (your own files)'}")
    if read and (found.found or spec.locate is None):
        raw = load_raw(cfg)  # type: ignore[arg-type]
        out(f"read: train {len(raw.train):,}, test {len(raw.test):,}, "
            f"{_shape(raw.shape)}, from {raw.location}")
    stem = found.found.name if found.found else None
    files = sorted(cache_dir().glob(f"{_cache_stem(stem)}-*.npz")) if stem else []
    out(f"decoded cache ({cache_dir()}): " + (", ".join(
        f"{f.name} {_size(f.stat().st_size)}" for f in files) or "none"))


def _cache_stem(name: str) -> str:
    from convlab.data.imagefolder import _safe_stem

    return _safe_stem(Path(name))


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


@cache_app.command("ls")
def cache_ls() -> None:
    """The decoded-image cache files and their sizes ($CONVLAB_CACHE, else
    ~/.cache/convlab/decoded)."""
    from convlab.data.imagefolder import cache_dir

    folder = cache_dir()
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    table = Table("file", "size", title=str(folder))
    for f in files:
        table.add_row(f.name, _size(f.stat().st_size))
    console.print(table)
    console.print(f"{len(files)} file(s), {_size(sum(f.stat().st_size for f in files))}")


@cache_app.command("clear")
def cache_clear(
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete the decoded-image cache (it is rebuilt, slowly, on the next read)."""
    from convlab.data.imagefolder import cache_dir

    folder = cache_dir()
    files = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    total = sum(f.stat().st_size for f in files)
    if files and not yes and sys.stdin.isatty():
        typer.confirm(f"delete {len(files)} file(s), {_size(total)}, in {folder}?", abort=True)
    for f in files:
        f.unlink(missing_ok=True)
    console.print(f"deleted {len(files)} file(s), {_size(total)}, from {folder}")


def register(app: typer.Typer) -> None:
    """Add the ``data`` and ``cache`` groups to the main app (once)."""
    if getattr(app, "_convlab_data", False):
        return
    app._convlab_data = True  # type: ignore[attr-defined]
    app.add_typer(data_app, name="data")
    app.add_typer(cache_app, name="cache")
