"""Groups of CLI commands that live beside the core ones in ``convlab.cli``.

Each module here has ``register(app)``; keeping them apart keeps ``cli.py`` short.
"""

from __future__ import annotations

import importlib

import typer

MODULES = ("analysis", "data", "export", "report", "study", "sweep", "viz")


def register_all(app: typer.Typer) -> None:
    for name in MODULES:
        importlib.import_module(f"convlab.commands.{name}").register(app)
