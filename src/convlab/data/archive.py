"""Files of a folder, a ``.zip`` or a ``.tar[.gz|.bz2|.xz]``, read in place; safe downloads.

Archives are read member by member without extracting them. Every member name is
checked before anything else happens: an absolute path, a ``..`` component or a link
(symbolic or hard) makes the whole archive a DataError that names the archive and the
member, so a hostile archive can neither reach outside its own tree nor make us follow a
link. ``zipfile`` and ``tarfile`` do the parsing; what they do not do (refuse such names
while *reading*, bound member sizes, turn their many exception types into one error) is
done here.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convlab.errors import DataError

MAX_MEMBER_BYTES = 64 << 20  # 64 MiB: far above any image file, far below a bomb
ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_S_IFMT, _S_IFLNK = 0o170000, 0o120000
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class TreeFile:
    """One regular file of a tree: its checked relative name and its bytes."""

    name: str  # posix path relative to the tree root, e.g. "train/cat/0001.jpg"
    data: bytes


class DownloadError(Exception):
    """A download that failed; loaders turn it into a DataError that says what to do."""


def find_or_download(
    path: Path | None, root: Path, name: str, marker: str, download: bool,
    fetch_folder: Callable[[Path], Path], missing: Callable[[Path, str], str],
    holds: str | None = None,
) -> Path:
    """The folder ``name`` of a dataset, told by its file ``marker``: ``data.path`` itself
    or ``data.path/name`` when given, else ``<root>/name``, else ``fetch_folder(root)``
    when downloads are allowed. ``missing(folder, why)`` words the one-line error;
    ``holds`` names the marker in it (default: the marker)."""
    folder = path if path is not None else root / name
    if path is not None and not (folder / marker).is_file():
        folder = path / name
    if (folder / marker).is_file():
        return folder
    if path is not None or not download:
        why = "data.download is false" if path is None else f"data.path holds no {holds or marker}"
        raise DataError(missing(folder, why))
    try:
        return fetch_folder(root)
    except DownloadError as e:
        raise DataError(missing(folder, f"download failed: {e}")) from None


def tree_kind(path: Path) -> str:
    """``"folder"``, ``"zip"`` or ``"tar"``: by type and suffix, else by content."""
    if path.is_dir():
        return "folder"
    if not path.is_file():
        raise DataError(f"{path}: not found (expected a folder, a .zip or a .tar[.gz])")
    name = path.name.lower()
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except Exception:  # any parse failure just means "not a tar"
        pass
    raise DataError(f"{path}: expected a folder, a .zip or a .tar[.gz] archive")


def iter_tree(path: Path, want: Callable[[str], bool]) -> Iterator[TreeFile]:
    """Yield the wanted regular files of a folder or archive, in storage order.

    ``want`` sees the checked relative name; unwanted members are never read (but their
    names are still checked: one unsafe member refuses the whole archive).
    """
    kind = tree_kind(path)
    if kind == "folder":
        yield from _iter_folder(path, want)
    elif kind == "zip":
        yield from _iter_zip(path, want)
    else:
        yield from _iter_tar(path, want)


def read_tree(path: Path, want: Callable[[str], bool]) -> list[TreeFile]:
    """All wanted files of a folder or archive, sorted by name (a stable order to label by)."""
    return sorted(iter_tree(path, want), key=lambda f: f.name)


def safe_member_name(archive: Path, name: str) -> str:
    """The member's name as a clean relative posix path, or a DataError if it is unsafe."""
    if "\x00" in name:
        raise DataError(f"{archive}: member {name!r} has a NUL byte in its name; refused")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise DataError(f"{archive}: member {name!r} has an absolute path; refused")
    parts = re.split(r"[\\/]", name)  # a backslash is a separator on Windows: check both
    if ".." in parts:
        raise DataError(f"{archive}: member {name!r} leaves the archive ('..' in path); refused")
    return "/".join(p for p in parts if p not in ("", "."))


# ---------------------------------------------------------------------- folders


def _walk(root: Path, want: Callable[[str], bool]) -> Iterator[tuple[str, Path]]:
    """(relative name, path) of wanted files; linked folders are not walked (no cycles)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            full = Path(dirpath) / filename
            name = full.relative_to(root).as_posix()
            if want(name):
                yield name, full


def folder_listing(root: Path, want: Callable[[str], bool]) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of the wanted files: a cheap fingerprint of a folder tree."""
    out = []
    for name, full in _walk(root, want):
        st = full.stat()
        out.append((name, st.st_size, st.st_mtime_ns))
    return out


def _iter_folder(root: Path, want: Callable[[str], bool]) -> Iterator[TreeFile]:
    """A local folder is the user's own: symlinked files are read like any other."""
    for name, full in _walk(root, want):
        try:
            size = full.stat().st_size
            if size > MAX_MEMBER_BYTES:
                raise DataError(_too_big(full, size))
            yield TreeFile(name, full.read_bytes())
        except OSError as e:
            raise DataError(f"{full}: cannot read ({e.strerror or e})") from None


# -------------------------------------------------------------------------- zip


def _iter_zip(path: Path, want: Callable[[str], bool]) -> Iterator[TreeFile]:
    try:
        zf = zipfile.ZipFile(path)
    except Exception as e:  # zipfile raises many types on hostile input
        raise DataError(f"{path}: not a readable zip archive ({_one_line(e)})") from None
    with zf:
        infos = zf.infolist()
        for info in infos:  # check every name before reading any member
            _check_zip_info(path, info)
        for info in infos:
            name = safe_member_name(path, info.filename)
            if info.is_dir() or not want(name):
                continue
            yield TreeFile(name, _read_zip_member(zf, info, path))


def _check_zip_info(path: Path, info: zipfile.ZipInfo) -> None:
    safe_member_name(path, info.filename)
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        raise DataError(f"{path}: member {info.filename!r} is a symbolic link; refused")
    if info.file_size > MAX_MEMBER_BYTES:
        raise DataError(_too_big(f"{path}: member {info.filename!r}", info.file_size))


def _read_zip_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """zipfile stops inflating at the declared size and checks the CRC, so a member can
    inflate to at most ``file_size`` (bounded above) bytes."""
    try:
        return zf.read(info)
    except Exception as e:  # CRC, zlib, encryption, unsupported method, ...
        raise DataError(
            f"{path}: cannot read member {info.filename!r} ({_one_line(e)})"
        ) from None


# -------------------------------------------------------------------------- tar


def _iter_tar(path: Path, want: Callable[[str], bool]) -> Iterator[TreeFile]:
    """One forward pass: random access into a .tar.gz would re-inflate from the start."""
    with _open_tar(path) as tf:
        while True:
            member = _next_tar_member(tf, path)
            if member is None:
                return
            name = _check_tar_member(path, member)
            if member.isdir() or not want(name):
                continue
            yield TreeFile(name, _read_tar_member(tf, member, path))


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except Exception as e:  # tarfile/gzip/bz2/lzma each raise their own types
        raise DataError(f"{path}: not a readable tar archive ({_one_line(e)})") from None


def _next_tar_member(tf: tarfile.TarFile, path: Path) -> tarfile.TarInfo | None:
    try:
        return tf.next()
    except Exception as e:  # truncated or corrupt headers and streams
        raise DataError(f"{path}: corrupt tar archive ({_one_line(e)})") from None


def _check_tar_member(path: Path, member: tarfile.TarInfo) -> str:
    name = safe_member_name(path, member.name)
    if member.issym() or member.islnk():
        raise DataError(
            f"{path}: member {member.name!r} is a link (to {member.linkname!r}); refused"
        )
    if not (member.isfile() or member.isdir()):
        raise DataError(
            f"{path}: member {member.name!r} is a device or fifo; only files and folders allowed"
        )
    if member.size > MAX_MEMBER_BYTES:
        raise DataError(_too_big(f"{path}: member {member.name!r}", member.size))
    return name


def _read_tar_member(tf: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    try:
        f = tf.extractfile(member)
        data = f.read() if f is not None else b""
    except Exception as e:  # truncated data, corrupt compression stream
        raise DataError(f"{path}: cannot read member {member.name!r} ({_one_line(e)})") from None
    if len(data) != member.size:
        raise DataError(f"{path}: member {member.name!r} is truncated")
    return data


# ---------------------------------------------------------------------- extract


def extract_folder(archive: Path, folder: str, root: Path) -> Path:
    """Extract the files under ``folder/`` of an archive into ``root/folder``, all or nothing.

    Members are name-checked (see :func:`safe_member_name`) and written into a temporary
    folder beside the target, which is renamed into place only when every file is written;
    a failure leaves nothing behind. (torchvision's ``extract_archive`` calls
    ``tarfile.extractall`` without a filter, which we avoid for this reason.)
    """
    target = root / folder
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder}-", dir=root))
    try:
        written = 0
        for f in iter_tree(archive, lambda n: n.startswith(f"{folder}/")):
            out = tmp / f.name.removeprefix(f"{folder}/")
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(f.data)
            written += 1
        if not written:
            raise DataError(f"{archive}: holds no files under {folder}/")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def extract_members(archive: Path, members: dict[str, Path], max_bytes: int) -> None:
    """Copy the named members of a zip or tar into the given files, all or nothing.

    For archives whose files are too large to hold in memory (EMNIST's zip, the CIFAR-100
    and STL-10 tarballs): each member is streamed to a temporary file beside its target
    and renamed only when every member is written. The output names are ours (the
    ``members`` mapping), never the archive's; a member must be a regular file of at most
    ``max_bytes`` bytes.
    """
    tmps: dict[Path, Path] = {}
    try:
        for name, fileobj, size in _iter_members(archive, set(members)):
            if size > max_bytes:
                raise DataError(f"{archive}: member {name!r} holds {size} bytes "
                                f"(more than the {max_bytes} expected)")
            dest = members[name]
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}-", dir=dest.parent)
            tmps[dest] = Path(tmp_name)
            with os.fdopen(fd, "wb") as out:
                copied = _copy_bounded(fileobj, out, max_bytes)
            if copied != size:
                raise DataError(f"{archive}: member {name!r} is truncated")
        missing = sorted(n for n, d in members.items() if d not in tmps)
        if missing:
            raise DataError(f"{archive}: holds no member {missing[0]!r}")
        for dest, tmp in tmps.items():
            os.replace(tmp, dest)
        tmps.clear()
    except OSError as e:
        raise DataError(f"{archive}: cannot extract ({e.strerror or e})") from None
    finally:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)


def _iter_members(archive: Path, names: set[str]) -> Iterator[tuple[str, Any, int]]:
    """(name, readable file, declared size) of the wanted regular members."""
    if tree_kind(archive) == "zip":
        try:
            zf = zipfile.ZipFile(archive)
        except Exception as e:
            raise DataError(f"{archive}: not a readable zip archive ({_one_line(e)})") from None
        with zf:
            for info in zf.infolist():
                if info.filename in names and not info.is_dir():
                    with zf.open(info) as f:
                        yield info.filename, f, info.file_size
        return
    with _open_tar(archive) as tf:
        while (member := _next_tar_member(tf, archive)) is not None:
            name = safe_member_name(archive, member.name)
            if name in names and member.isfile():
                yield name, tf.extractfile(member), member.size


def _copy_bounded(src: Any, dst: Any, max_bytes: int) -> int:
    copied = 0
    try:
        while piece := src.read(1 << 22):
            copied += len(piece)
            if copied > max_bytes:
                raise DataError(f"an archive member inflates past {max_bytes} bytes")
            dst.write(piece)
    except (zipfile.BadZipFile, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"corrupt archive member ({_one_line(e)})") from None
    return copied


# --------------------------------------------------------------------- download


def fetch(urls: list[str], dest: Path, md5: str | None) -> None:
    """Download ``dest`` from the first URL that works, with torchvision's downloader.

    torchvision's ``download_url`` handles redirects and the MD5 check; we add atomicity
    (download into a temporary folder beside ``dest``, then rename) so an interrupted
    download never leaves a truncated file where a loader would find it.
    """
    from torchvision.datasets.utils import download_url

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {dest.parent} ({e.strerror or e})") from None
    errors = []
    for url in urls:
        tmp = Path(tempfile.mkdtemp(prefix=".download-", dir=dest.parent))
        try:
            download_url(url, str(tmp), filename=dest.name, md5=md5)
            os.replace(tmp / dest.name, dest)
            return
        except Exception as e:  # URLError, HTTPError, timeouts, MD5 mismatch
            errors.append(f"{url}: {_one_line(e)}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    raise DownloadError("; ".join(errors) or "no URL to download from")


# ---------------------------------------------------------------------- helpers


def _too_big(what: Any, size: int) -> str:
    return f"{what}: {size} bytes, more than the {MAX_MEMBER_BYTES} allowed for one file"


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."
