"""convlab: convolutional-network image-classification experiments from a short YAML file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from convlab.runs import Run

__all__ = ["__version__", "create_model", "list_models", "load_config", "load_run",
           "register_model", "run"]


def run(
    config: Any = "synthetic-smoke", overrides: Any = (), *, model: Any = None,
    runs_dir: Any = None, quiet: bool = True, **kwargs: Any,
) -> Run:
    """Train one experiment (a config, a YAML path, a bundled name or a dict); return its Run.

    ``overrides``: ``["optim.lr=0.1", ...]`` as ``--set`` takes them. ``model``: an
    ``nn.Module`` or a callable returning one, used instead of the config's ``model``
    section (the run records the object's class there).
    """
    from convlab.train.runner import run_experiment

    return run_experiment(config, list(overrides), runs_dir=runs_dir, quiet=quiet, model=model,
                          **kwargs)


def load_run(path: Any, model: Any = None) -> Run:
    """Open a run folder written by :func:`run`. ``model``: an ``nn.Module`` that
    ``load_model()`` loads the weights into (for a run trained from a model object of a
    class that cannot be imported again)."""
    from convlab.runs import Run

    r = Run.open(path)
    r.model_object = model
    return r


def create_model(name_or_section: Any, in_shape: Any = (1, 28, 28), num_classes: int = 10) -> Any:
    """A model by name (``"pw1"``, ``"nets.py:TinyNet"``) or model section (a dict), built
    for images of ``in_shape`` (C, H, W) and ``num_classes`` classes."""
    from convlab.models import create_model as _create

    return _create(name_or_section, tuple(in_shape), num_classes)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob, e.g. ``list_models("res*")``."""
    from convlab.models import list_models as _list

    return _list(pattern)


def register_model(name: str, settings: Any = None, description: str = "") -> Any:
    """Decorator: ``@convlab.register_model("mynet")`` on an ``nn.Module`` subclass or a
    function returning one (see :func:`convlab.models.register_model`)."""
    from convlab.models import register_model as _register

    return _register(name, settings, description)


def load_config(source: Any, overrides: Any = ()) -> Any:
    """Resolve defaults <- file, bundled name or dict <- ``key=value`` overrides."""
    from convlab.config import load_config as _load

    return _load(source, overrides)
