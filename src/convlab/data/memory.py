"""Will it fit? The memory a dataset needs in memory as uint8, checked before decoding."""

from __future__ import annotations

import os

from convlab.errors import DataError

HEADROOM = 0.8  # use at most this share of the available memory for the images


def available_bytes() -> int | None:
    """Memory available to this process now (``CONVLAB_MEMORY_BYTES`` overrides, for tests
    and for machines whose limits the OS does not report); None when unknown."""
    env = os.environ.get("CONVLAB_MEMORY_BYTES")
    if env:
        return int(env)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX
        return None


def check_fits(where: str, n_images: int, shape: tuple[int, int, int],
               remedy: str = "keep fewer with data.subset (train/val/test)") -> None:
    """Raise a one-line DataError when ``n_images`` uint8 images of ``shape`` (C, H, W)
    would not fit in the available memory, naming the size and what to do."""
    need = n_images * shape[0] * shape[1] * shape[2]
    have = available_bytes()
    if have is None or need <= HEADROOM * have:
        return
    c, h, w = shape
    raise DataError(
        f"{where}: {n_images:,} images of {c}x{h}x{w} need {_gb(need)} in memory as uint8, "
        f"more than the {_gb(have)} available; {remedy}"
    )


def _gb(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6)):
        if n >= scale / 10:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1e3:.1f} KB"
