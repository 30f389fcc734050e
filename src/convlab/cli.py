"""The ``convlab`` command: thin wrappers that parse, build a config and call the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from convlab.errors import ConvlabError

app = typer.Typer(
    name="convlab",
    help="Convolutional-network image-classification experiments from a short YAML file.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain help: rich markup would eat "[default: ...]" written in a help text
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Show and check experiment configs.", no_args_is_help=True)
models_app = typer.Typer(help="The registered models.", no_args_is_help=True)
runs_app = typer.Typer(help="List and inspect run folders.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(models_app, name="models")
app.add_typer(runs_app, name="runs")

console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True)

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a key: --set optim.lr=0.1 (repeatable)."),
]
RunsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--runs-dir", help="Root of the run folders (default: $CONVLAB_RUNS, else ./runs)."
    ),
]


@app.command()
def run(
    experiment: Annotated[
        str, typer.Argument(help="A YAML file or a bundled experiment name.")
    ] = "",
    set_: SetOption = None,
    runs_dir: RunsDirOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the result.")] = False,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue this interrupted run folder.")
    ] = None,
) -> None:
    """Train one experiment and write its run folder (or continue one with --resume)."""
    from convlab.train.runner import resume_run, run_experiment

    if not experiment and resume is None:
        raise typer.BadParameter("give an experiment (file or bundled name) or --resume RUN")

    try:
        if resume is not None:
            result = resume_run(resume, quiet=quiet)
        else:
            result = run_experiment(experiment, overrides=set_ or [], runs_dir=runs_dir,
                                    quiet=quiet)
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, last checkpoint intact
        err_console.print("interrupted; the previous checkpoint is intact")
        raise typer.Exit(130) from None
    console.print(f"run folder: {result.path}")
    if result.status == "interrupted":  # the shell's convention: 128 + signal number
        raise typer.Exit(128 + int(result.summary.get("signal") or 2))
    if result.status != "completed":
        raise typer.Exit(1)


@config_app.command("show")
def config_show(
    experiment: Annotated[str, typer.Argument(help="A YAML file or a bundled experiment name.")],
    set_: SetOption = None,
) -> None:
    """Print the resolved config (defaults, then the file, then --set), with
    match_params applied: the model that will train."""
    from convlab.config import load_config
    from convlab.train.runner import resolve_match_params

    cfg, matched = resolve_match_params(load_config(experiment, set_ or []))
    if matched:
        sys.stdout.write(f"# match_params: {matched['vary']} = {matched['value']} gives "
                         f"{matched['params']:,} parameters for a target of "
                         f"{matched['target']:,} ({matched['reference']})\n")
    sys.stdout.write(cfg.to_yaml())


@config_app.command("keys")
def config_keys(
    prefix: Annotated[str | None, typer.Argument(
        help="Only keys under this one: train, model.stages, optim, or an entry's name "
        "(cnn, sgd, cosine).")] = None,
) -> None:
    """Every key of an experiment file: type, default and what it does (--set KEY=VALUE
    sets any of them; '*' stands for every list item)."""
    import textwrap

    from convlab.commands.keys import experiment_keys, matching

    rows = matching(experiment_keys(), prefix)
    if not rows:
        raise typer.BadParameter(f"no key under {prefix!r}; try 'convlab config keys'")
    width = min(console.width, 100)
    for r in rows:  # key, type and default on one line; what it does wrapped below
        console.print(f"{r.key}  {r.type} = {r.default}", markup=False, highlight=False)
        desc = f"[{r.owner}] {r.description}".strip() if r.owner else r.description
        for line in textwrap.wrap(desc, width - 4):
            console.print(f"    {line}", markup=False, highlight=False)


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON schema of an experiment file."""
    from convlab.config import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@config_app.command("examples")
def config_examples() -> None:
    """List the bundled example experiments."""
    from convlab.config import bundled_examples

    for name, path in bundled_examples().items():
        console.print(f"{name}  [dim]{path}[/dim]")


@models_app.command("ls")
def models_ls(pattern: Annotated[str, typer.Argument(help="Glob, e.g. 'res*'.")] = "*") -> None:
    """List the registered models and named architectures (yours too, with --import)."""
    from rich.table import Table

    from convlab.models import MODELS, list_models

    table = Table("name", "builder", "description")
    for name in list_models(pattern):
        spec = MODELS.get(name)
        kind = spec.base or ("(builder)" if spec.source.startswith("convlab.") else
                             f"(yours: {spec.source})")
        table.add_row(name, kind, spec.description)
    console.print(table)


@models_app.command("show")
def models_show(
    name: Annotated[str, typer.Argument(help="A model name, or your own: nets.py:TinyNet.")],
) -> None:
    """Print a model's complete settings as the YAML model section of an experiment."""
    import yaml

    from convlab.errors import ModelError
    from convlab.models import resolve_settings

    try:
        settings = resolve_settings(name, {})
    except ValueError as e:
        raise ModelError(f"model {name!r}: {e}") from None
    sys.stdout.write(yaml.safe_dump({"model": {"name": name, **settings}}, sort_keys=False))


@runs_app.command("ls")
def runs_ls(
    runs_dir: RunsDirOption = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only this experiment (glob).")
    ] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only runs with this status.")]
    = None,
) -> None:
    """The runs under the runs folder, newest last; a sweep's or a study's trials grouped
    under it. Accuracies in %; a run's id is never cut short."""
    from convlab.runs import list_grouped_runs, resolve_runs_dir

    groups: dict[str, list[Any]] = {}
    for group, r in list_grouped_runs(resolve_runs_dir(runs_dir), experiment, status):
        groups.setdefault(group, []).append(r)
    if not groups:
        console.print(f"no runs under {resolve_runs_dir(runs_dir)}", markup=False)
    for group in sorted(groups, key=lambda g: (g != "", g)):  # plain runs first
        runs = groups[group]
        n = f"{len(runs)} run{'s' if len(runs) > 1 else ''}"
        parts = group.split("/")
        title = (f"study {parts[1]}, group {'/'.join(parts[2:])} ({n})"
                 if len(parts) > 2 and parts[0] == "studies"
                 else f"sweep {group} ({n})" if group else None)
        console.print(_runs_table(runs, console.width, title))


RUN_COLUMNS = ("run", "status", "description", "test %", "val %", "epochs", "params",
               "wall s")  # the order they are dropped in is the reverse of this


def _runs_table(runs: list[Any], width: int, title: str | None) -> Any:
    """The runs as a table that fits ``width``: whole columns dropped, last first."""
    from rich.table import Table
    from rich.text import Text

    rows = []
    for r in runs:
        s, fin = r.summary, r.summary.get("final", {})
        rows.append({
            "run": r.name, "status": s.get("status", "?"), "description": _description(r),
            "test %": _pct(fin.get("test.top1")), "val %": _pct(fin.get("val.top1")),
            "epochs": f"{s.get('epochs_done', 0)}/{s.get('epochs', '?')}",
            "params": f"{s.get('params', 0):,}", "wall s": _fmt(s.get("wall_s"), ".1f"),
        })
    cols = [c for c in RUN_COLUMNS if c != "description" or any(r[c] for r in rows)]
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) + 3 for c in cols}
    while len(cols) > 2 and sum(widths[c] for c in cols) + 1 > width:
        cols.pop()  # the least important column
    table = Table(title=title, title_justify="left")
    for c in cols:
        table.add_column(c, no_wrap=True, justify="right" if c in ("test %", "val %",
                                                                    "params", "wall s")
                         else "left")
    for r in rows:
        table.add_row(*(Text(r[c]) for c in cols))
    return table


def _description(run: Any) -> str:
    """The description in the run's config.yaml (read raw: an old run's config may not
    validate against today's schema)."""
    import yaml

    try:
        cfg = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ""
    return str(cfg.get("description") or "") if isinstance(cfg, dict) else ""


def _pct(v: object) -> str:
    return "-" if v is None else f"{100 * float(v):.2f}"  # type: ignore[arg-type]


@runs_app.command("show")
def runs_show(run: Annotated[Path, typer.Argument(help="A run folder.")]) -> None:
    """The summary and per-epoch metrics of one run."""
    from convlab.runs import Run

    r = Run.open(run)
    console.print_json(json.dumps(r.summary))
    console.print(_metrics_table(r.metrics))


def _metrics_table(rows: list[dict[str, Any]]) -> Any:
    """Per-epoch metrics as a person reads them: accuracies in %, losses to 4 significant
    digits (a long float cut to fit would misread 7.8e-08 as 7.8)."""
    from rich.table import Table

    def num(v: object, spec: str, scale: float = 1.0) -> str:
        return "-" if v in (None, "") else format(scale * float(v), spec)  # type: ignore[arg-type]

    table = Table("epoch", "split", "loss", "top1 %", "top5 %", "lr", "time s")
    for m in rows:
        table.add_row(str(m.get("epoch", "")), str(m.get("split", "")),
                      num(m.get("loss"), ".4g"), num(m.get("top1"), ".2f", 100),
                      num(m.get("top5"), ".2f", 100), num(m.get("lr"), ".3g"),
                      num(m.get("time_s"), ".1f"))
    return table


def _fmt(v: object, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)  # type: ignore[arg-type]


def take_global_options(argv: list[str]) -> tuple[list[str], list[str], bool]:
    """Remove ``--import FILE_OR_MODULE`` (repeatable) and ``--debug`` from anywhere in
    ``argv``: they apply to every command (each that builds models may name what the
    imports register). Returns (argv left, imports, debug)."""
    rest: list[str] = []
    imports: list[str] = []
    debug = False
    it = iter(argv)
    for arg in it:
        if arg == "--":
            rest += [arg, *it]
            break
        if arg == "--import":
            value = next(it, None)
            if value is None:
                raise ConvlabError("--import: expected a Python file or module after it")
            imports.append(value)
        elif arg.startswith("--import="):
            imports.append(arg.split("=", 1)[1])
        elif arg == "--debug":
            debug = True
        else:
            rest.append(arg)
    return rest, imports, debug


@app.callback()
def _root(
    import_: Annotated[
        list[str] | None,
        typer.Option("--import", help="A Python file or module to import first, e.g. one "
                     "that registers models with @convlab.register_model (repeatable; "
                     "accepted before or after the command)."),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks of errors in your own code "
                           "(also CONVLAB_DEBUG=1).")
    ] = False,
) -> None:
    """Convolutional-network image-classification experiments from a short YAML file."""
    if import_:
        from convlab.usercode import import_user_module

        for item in import_:
            import_user_module(item)


def _one_line_warnings() -> None:
    from convlab.errors import one_line_warnings

    one_line_warnings()


def main() -> None:
    """Entry point. Usage errors exit 2 (click's convention); so do user errors
    (``ConvlabError``), as one line on stderr without a traceback (the full traceback of
    an error in the user's own code with ``--debug`` or ``CONVLAB_DEBUG=1``)."""
    import os

    from convlab.commands import register_all

    _one_line_warnings()
    debug = os.environ.get("CONVLAB_DEBUG", "") not in ("", "0", "false", "no")
    try:
        argv, imports, debug_flag = take_global_options(sys.argv[1:])
        debug = debug or debug_flag
        if debug:
            os.environ["CONVLAB_DEBUG"] = "1"
        if imports:
            from convlab.usercode import import_user_module

            for item in imports:
                import_user_module(item)
        register_all(app)
        app(args=argv)
    except ConvlabError as e:
        if debug and (e.__cause__ is not None or e.__context__ is not None):
            import traceback

            traceback.print_exception(e.__cause__ or e.__context__, file=sys.stderr)
        from rich.markup import escape  # "pip install 'convlab[mlflow]'" is not markup

        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False,
                          soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
