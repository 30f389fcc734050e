"""What the user sees while a run trains: a live bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


def fmt_metrics(m: dict[str, float]) -> str:
    parts = [f"loss {m['loss']:.4f}"]
    parts += [f"{k} {100 * m[k]:.2f}%" for k in ("top1", "top5") if k in m]
    return " ".join(parts)


class Reporter:
    """Silent base: the loop calls these hooks; subclasses print."""

    def start(self, header: str) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None: ...
    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None: ...
    def epoch_end(self, epoch: int, epochs: int, splits: dict[str, dict[str, float]],
                  lr: float, seconds: float) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class PlainReporter(Reporter):
    """One line per epoch (logs, CI, pipes)."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)

    def start(self, header: str) -> None:
        self.console.print(header)

    def epoch_end(self, epoch: int, epochs: int, splits: dict[str, dict[str, float]],
                  lr: float, seconds: float) -> None:
        body = "  ".join(f"{name}: {fmt_metrics(m)}" for name, m in splits.items())
        self.console.print(f"epoch {epoch}/{epochs}  {body}  lr {lr:.3g}  {seconds:.1f}s")

    def message(self, text: str) -> None:
        self.console.print(text)


class RichReporter(PlainReporter):
    """A progress bar per epoch with batch time and running loss/top-1/top-5.

    Refreshed by hand at the loop's logging interval (``auto_refresh=False``): a refresh
    thread would compete with training for the two cores.
    """

    def __init__(self, console: Console | None = None) -> None:
        super().__init__(console)
        self.progress: Progress | None = None
        self.task: Any = None

    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
            console=self.console, auto_refresh=False, transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, completed=done, info="")

    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None:
        if self.progress is not None:
            info = f"{batch_ms:.1f} ms/batch  {fmt_metrics(metrics)}"
            self.progress.update(self.task, completed=done, info=info)
            self.progress.refresh()

    def epoch_end(self, epoch: int, epochs: int, splits: dict[str, dict[str, float]],
                  lr: float, seconds: float) -> None:
        self.close()
        super().epoch_end(epoch, epochs, splits, lr, seconds)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def make_reporter(quiet: bool) -> Reporter:
    if quiet:
        return Reporter()
    return RichReporter() if sys.stdout.isatty() else PlainReporter()
