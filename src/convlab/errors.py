"""User-facing errors: each becomes one line on stderr and exit code 2 in the CLI."""

from __future__ import annotations


class ConvlabError(Exception):
    """Base class for errors caused by user input (a config, a data file, a checkpoint).

    The message is one line that names the file or key and says what was expected;
    the CLI prints it without a traceback and exits with code 2.
    """


class ConfigError(ConvlabError, ValueError):
    """An experiment config that does not validate."""


class DataError(ConvlabError):
    """A dataset that is missing, malformed or unsafe to load."""


class ModelError(ConvlabError, ValueError):
    """A model that cannot be built for the given input (shape errors and the like)."""


class RunError(ConvlabError):
    """A run folder that is missing, incomplete or cannot be written."""


def one_line_warnings() -> None:
    """Show warnings as one clean line on stderr ("warning: ..."), without the source
    line Python prints under them: what a person reads is the message. The CLI and each
    sweep worker process call it at start."""
    import sys
    import warnings

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: object = None, line: str | None = None) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    warnings.showwarning = show  # type: ignore[assignment]
