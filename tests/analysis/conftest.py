"""Fixtures shared by the analysis tests: the ``cli`` fixture lives in tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable

Cli = Callable[..., tuple[int, str, str]]
