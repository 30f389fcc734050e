"""What --help shows: every default that a help text names survives, one meaning of -s,
and no line wider than an 80-column terminal in the analysis commands."""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

from convlab.cli import app
from convlab.commands import register_all


def _commands() -> list[tuple[str, click.Command]]:
    register_all(app)
    root = typer.main.get_command(app)
    out: list[tuple[str, click.Command]] = []

    def walk(prefix: str, cmd: click.Command) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(f"{prefix} {name}".strip(), sub)
        else:
            out.append((prefix, cmd))

    walk("", root)
    return out


def test_short_s_means_set_everywhere() -> None:
    for name, cmd in _commands():
        for p in cmd.params:
            if "-s" in getattr(p, "opts", []):
                assert "--set" in p.opts, f"convlab {name}: -s is {p.opts}"


@pytest.mark.parametrize("args", [["summary"], ["calc", "rf"], ["calc", "outsize"],
                                  ["probe", "ops"]])
def test_help_keeps_written_defaults(args: list[str]) -> None:
    register_all(app)
    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    if args[0] == "summary":
        assert "[default: 1x28x28 for a model, the dataset's for an experiment]" in text
        assert "[default: 10 for a model" in text
    if args[-1] == "outsize":
        assert "[default: 1; the kernel for pooling]" in text
    assert "Input shape ." not in text
    wide = [line for line in res.output.splitlines() if len(line) > 80]
    assert not wide, wide
