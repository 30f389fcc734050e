"""convlab: convolutional-network image-classification experiments from a short YAML file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from convlab.runs import Run

__all__ = ["__version__", "load_config", "load_run", "run"]


def run(config: Any, *, runs_dir: Any = None, quiet: bool = True, **kwargs: Any) -> Run:
    """Train one experiment (a config, a YAML path, a bundled name or a dict); return its Run."""
    from convlab.train.runner import run_experiment

    return run_experiment(config, runs_dir=runs_dir, quiet=quiet, **kwargs)


def load_run(path: Any) -> Run:
    """Open a run folder written by :func:`run`."""
    from convlab.runs import Run

    return Run.open(path)


def load_config(source: Any, overrides: Any = ()) -> Any:
    from convlab.config import load_config as _load

    return _load(source, overrides)
