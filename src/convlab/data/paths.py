"""Where datasets' files are looked for: ``data.root``, else ``$CONVLAB_DATA``, else
``$XDG_CACHE_HOME/convlab/data`` (``~/.cache/convlab/data``), in torchvision's layouts, so
an existing torchvision download folder works as a root."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def default_root(cfg: Any = None) -> Path:
    """``cfg.root``, else ``$CONVLAB_DATA``, else ``$XDG_CACHE_HOME/convlab/data``."""
    if cfg is not None and cfg.root is not None:
        return Path(cfg.root).expanduser()
    env = os.environ.get("CONVLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "convlab" / "data"


def resolve_path(cfg: Any) -> Path | None:
    """``cfg.path`` as given, or relative to the data root when it exists only there."""
    if cfg.path is None:
        return None
    path = Path(cfg.path).expanduser()
    if not path.exists() and not path.is_absolute():
        under_root = default_root(cfg) / path
        if under_root.exists():
            return under_root
    return path
