"""convlab: convolutional-network image-classification experiments from a short YAML file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from convlab.runs import Run

__all__ = ["__version__", "compare", "create_model", "list_models", "load_config", "load_run",
           "register_model", "report", "run", "sweep"]


def run(
    config: Any = "synthetic-smoke", overrides: Any = (), *, model: Any = None,
    runs_dir: Any = None, quiet: bool | None = None, **kwargs: Any,
) -> Run:
    """Train one experiment (a config, a YAML path, a bundled name or a dict); return its Run.

    ``overrides``: ``["optim.lr=0.1", ...]`` as ``--set`` takes them. ``model``: an
    ``nn.Module`` or a callable returning one, used instead of the config's ``model``
    section (the run records the object's class there). ``quiet``: by default a live
    display in a notebook and silence elsewhere; ``False`` prints progress, ``True`` nothing.
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


# ---------------------------------------------------------------- notebooks: many runs


def _run_paths(runs: Any) -> list[Any]:
    """Run folders from a Run, a path, a sweep's result, or a list of any of them."""
    items = runs if isinstance(runs, list | tuple) else [runs]
    paths = []
    for item in items:
        path = getattr(item, "path", None) or getattr(item, "folder", None) or item
        paths.append(path)
    return paths


def compare(runs: Any) -> Any:
    """Runs side by side as a pandas DataFrame, one row per run: status, the settings
    that differ, parameters, final and best metrics (accuracies as fractions). ``runs``:
    Runs, run folders, folders of runs (a sweep, a study) or a :func:`sweep`'s result."""
    from convlab.report.compare import MISSING, _csv_name, compare_runs
    from convlab.report.data import load_runs
    from convlab.runs.display import need

    pd = need("pandas", "convlab.compare()")
    cmp = compare_runs(load_runs(_run_paths(runs)))
    columns = [c for c in cmp.columns if not c.key.startswith("set:tracking")]  # not a
    names = [_csv_name(c.key) for c in columns]  # setting: trackers change no result
    rows = [[None if r.get(c.key) is MISSING else r.get(c.key) for c in columns]
            for r in cmp.rows]
    return pd.DataFrame(rows, columns=names).set_index("run")


def sweep(spec_or_path: Any, *, workers: int = 1, runs_dir: Any = None,
          storage: str | None = None, quiet: bool | None = None) -> Any:
    """Run (or continue) a sweep from a sweep file or a mapping; return its result
    (``.folder``, ``.rows``, ``.done``; pass it to :func:`compare` or :func:`report`).
    Progress: one display updated in place in a notebook, lines elsewhere, none with
    ``quiet=True``."""
    import warnings

    from convlab.train.notebook import NotebookLog, in_notebook

    with warnings.catch_warnings():  # optuna's tqdm import, in a notebook without widgets
        warnings.filterwarnings("ignore", message="IProgress not found")
        from convlab.sweep import run_sweep

    echo: Any = None
    if quiet is not True:
        echo = NotebookLog() if in_notebook() else (print if quiet is False else None)
    return run_sweep(spec_or_path, workers=workers, storage=storage, runs_dir=runs_dir,
                     echo=echo)


def report(runs: Any, out: Any = None, title: str = "") -> Any:
    """Write report.md and a self-contained report.html for runs (as :func:`compare`
    takes them) and return the page, which a notebook shows inline (``.markdown``,
    ``.html`` and ``.figures`` are the files written)."""
    from convlab.report.report import report_paths
    from convlab.runs.display import HtmlPage

    files = report_paths(_run_paths(runs), out, title)
    return HtmlPage(files.html, markdown=files.markdown, html=files.html,
                    figures=files.figures)


def _make_callable_modules() -> None:
    """``convlab.sweep(...)`` and ``convlab.report(...)`` are functions, and ``sweep`` and
    ``report`` are also subpackages: importing a subpackage sets the package attribute of
    that name to the module, which would hide the function. So each of those modules is
    made callable (calling it calls the function), whichever is imported first."""
    import sys
    import types

    functions = {"sweep": sweep, "report": report}

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return functions[self.__name__.rpartition(".")[2]](*args, **kwargs)

    class _Package(types.ModuleType):
        def __setattr__(self, name: str, value: Any) -> None:
            if name in functions and isinstance(value, types.ModuleType):
                value.__class__ = _CallableModule
            super().__setattr__(name, value)

    for name in functions:
        module = sys.modules.get(f"{__name__}.{name}")
        if module is not None:  # imported already: make it callable and the attribute
            module.__class__ = _CallableModule
            globals()[name] = module
    sys.modules[__name__].__class__ = _Package


_make_callable_modules()
