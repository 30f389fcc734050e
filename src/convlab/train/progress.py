"""What the user sees while a run trains: a live bar on a terminal, plain lines elsewhere.

The loop calls the :class:`Reporter` hooks: ``tick`` after every step (cheap: it only
looks at the clock), ``batch`` at each logging interval with the running metrics (the
one host sync of the interval), ``eval_start`` before each held-out split is
evaluated, ``epoch_end`` with every split's metrics. The arithmetic (ETAs, durations,
how an epoch line fits a width) is pure functions at the top of this module.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

PLAIN_EVERY_S = 15.0  # off a terminal: a progress line at least this often while training
LIVE_EVERY_S = 0.25  # on a terminal: the bar's step count is updated this often


# ------------------------------------------------------------------ pure helpers


def fmt_metrics(m: dict[str, float], top5: bool = True) -> str:
    """``loss 0.4321 top1 87.12% top5 99.10%`` (accuracies in percent)."""
    parts = [f"loss {m['loss']:.4f}"]
    parts += [f"{k} {100 * m[k]:.2f}%" for k in ("top1", "top5")
              if k in m and (top5 or k == "top1")]
    return " ".join(parts)


def fmt_duration(seconds: float | None) -> str:
    """``0:09``, ``12:03``, ``1:02:03``; ``?`` when unknown (no step measured yet)."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``2 epochs``, ``0 epochs``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def eta(done: int, total: int, elapsed: float) -> float | None:
    """Seconds left at the rate so far; None before the first measured step."""
    if done <= 0 or elapsed <= 0:
        return None
    return max(total - done, 0) * elapsed / done


def run_eta(epoch_left: float | None, epochs_after: int, epoch_train_s: float | None,
            eval_s: float) -> float | None:
    """Seconds left in the run: this epoch's rest, its evaluation, then whole epochs."""
    if epoch_left is None or epoch_train_s is None:
        return None
    return epoch_left + eval_s + epochs_after * (epoch_train_s + eval_s)


def epoch_lines(epoch: int, epochs: int, splits: dict[str, dict[str, float]], lr: float,
                epoch_s: float, total_s: float, width: int | None = None) -> list[str]:
    """The end-of-epoch report: one line, or (when it would pass ``width``) a heading
    and one line per split, so a terminal never wraps it in the middle of a number."""
    head = f"epoch {epoch}/{epochs}"
    times = f"lr {lr:.3g}  epoch {epoch_s:.1f}s  total {total_s:.1f}s"
    one = f"{head}  " + "  ".join(f"{n}: {fmt_metrics(m)}" for n, m in splits.items())
    one += f"  {times}"
    if width is None or len(one) <= width:
        return [one]
    name_w = max((len(n) for n in splits), default=0)
    return [f"{head}  {times}"] + [f"  {n.ljust(name_w)}  {fmt_metrics(m)}"
                                   for n, m in splits.items()]


def closing_line(summary: dict[str, Any]) -> str:
    """The last line of a run: status, test accuracy, epochs and wall time."""
    status = summary.get("status", "?")
    done = int(summary.get("epochs_done") or 0)
    wall = f"{summary.get('wall_s') or 0:.1f}s"
    acc = (summary.get("final") or {}).get("test.top1")
    again = "; convlab run --resume RUN continues it" if status == "interrupted" else ""
    if done == 0 and acc is None:
        when = "the first epoch ended" if status == "interrupted" else "an epoch completed"
        return f"{status} before {when} ({wall}){again}"
    acc_s = f"test top1 {100 * acc:.2f}%" if acc is not None else "no test accuracy"
    return f"{status}: {acc_s} after {plural(done, 'epoch')} in {wall}{again}"


# ------------------------------------------------------------------ reporters


class Reporter:
    """Silent base: the loop calls these hooks; subclasses print."""

    def start(self, header: str) -> None: ...
    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None: ...
    def tick(self, done: int) -> None: ...
    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None: ...
    def eval_start(self, split: str, images: int) -> None: ...
    def epoch_end(self, epoch: int, epochs: int, splits: dict[str, dict[str, float]],
                  lr: float, seconds: float) -> None: ...
    def data_progress(self, what: str, done: int, total: int) -> None:
        """Images of ``what`` decoded so far (before training: a dataset being read)."""
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class _Timing:
    """Where the current epoch stands, for ETAs: steps, clock, the last metrics."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.epoch = self.epochs = self.steps = self.done = self.start_done = 0
        self.t_epoch = self.t_train_end = clock()
        self.metrics: dict[str, float] = {}
        self.batch_ms = 0.0
        self.epoch_train_s: float | None = None  # a whole epoch's training, measured
        self.eval_s = 0.0  # the last epoch's evaluation time
        self.evaluating = ""

    def begin(self, epoch: int, epochs: int, steps: int, done: int) -> None:
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.done = self.start_done = done
        self.t_epoch = self.clock()
        self.metrics, self.evaluating = {}, ""

    def epoch_left(self) -> float | None:
        left = eta(self.done - self.start_done, self.steps - self.start_done,
                   self.clock() - self.t_epoch)
        if left is None and self.epoch_train_s is not None and self.steps:
            left = self.epoch_train_s * (self.steps - self.done) / self.steps  # last epoch's
        return left

    def run_left(self) -> float | None:
        per_epoch = self.epoch_train_s
        if per_epoch is None and self.done > self.start_done:
            per_epoch = (self.clock() - self.t_epoch) * self.steps / (self.done - self.start_done)
        return run_eta(self.epoch_left(), self.epochs - self.epoch, per_epoch, self.eval_s)

    def train_ended(self) -> None:
        """The first evaluation began: measure this epoch's training time once."""
        if not self.evaluating:
            self.t_train_end = self.clock()
            if self.done > self.start_done:
                self.epoch_train_s = ((self.t_train_end - self.t_epoch) * self.steps
                                      / (self.done - self.start_done))

    def ended(self) -> float:
        """The epoch's wall time (training and evaluation); remembers the evaluation's."""
        now = self.clock()
        if self.evaluating:
            self.eval_s = now - self.t_train_end
        else:
            self.train_ended()
            self.eval_s = 0.0
        return now - self.t_epoch

    def status(self, width: int) -> str:
        """The live text after the bar: the parts that fit ``width``, most important
        first (a part never cut in the middle)."""
        if self.evaluating:
            return self.evaluating
        m = self.metrics
        eta_text = f"ETA {fmt_duration(self.epoch_left())}"
        if self.epochs > 1:
            eta_text += f" (run {fmt_duration(self.run_left())})"
        ranked = [  # (rank: lower is kept first, text) in display order
            (0, f"{self.done:,}/{self.steps:,}"), (1, eta_text),
            (3, f"loss {m['loss']:.4f}" if m else ""),
            (2, f"top1 {100 * m['top1']:.2f}%" if "top1" in m else ""),
            (4, f"top5 {100 * m['top5']:.2f}%" if "top5" in m else ""),
            (5, f"{self.batch_ms:.1f} ms/batch" if self.batch_ms else ""),
        ]
        keep: set[int] = set()
        used = -1
        for i in sorted(range(len(ranked)), key=lambda i: ranked[i][0]):
            text = ranked[i][1]
            if text and used + 1 + len(text) <= width:
                keep.add(i)
                used += 1 + len(text)
        return " ".join(ranked[i][1] for i in range(len(ranked)) if i in keep)

    def plain(self) -> str:
        """A progress line for logs: step, running metrics, ETAs."""
        text = (f"epoch {self.epoch}/{self.epochs}  step {self.done:,}/{self.steps:,}  "
                f"{fmt_metrics(self.metrics, top5=False) if self.metrics else 'first steps'}  "
                f"ETA epoch {fmt_duration(self.epoch_left())}")
        if self.epochs > 1:
            text += f" run {fmt_duration(self.run_left())}"
        return text


class PlainReporter(Reporter):
    """Plain lines (logs, CI, pipes, Slurm): each epoch, and a progress line at least
    every ``every`` seconds of training."""

    def __init__(self, console: Console | None = None, every: float = PLAIN_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console or Console(highlight=False, soft_wrap=True)
        self.every = every
        self.timing = _Timing(clock)
        self.t_line = clock()
        self.decoding: str | None = None  # what data_progress is decoding now
        self.total: float | None = None  # seconds of the run so far, at each epoch's end

    def _width(self) -> int | None:
        return None  # a log never wraps: one line per epoch

    def start(self, header: str) -> None:
        self.console.print(header, markup=False)

    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self.timing.begin(epoch, epochs, steps, done)
        self.t_line = self.timing.clock()

    def tick(self, done: int) -> None:
        self.timing.done = done
        now = self.timing.clock()
        if now - self.t_line >= self.every:
            self.t_line = now
            self._progress_line()

    def _progress_line(self) -> None:
        self.console.print(self.timing.plain(), markup=False)

    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None:
        self.timing.done, self.timing.metrics, self.timing.batch_ms = done, metrics, batch_ms
        self.tick(done)

    def eval_start(self, split: str, images: int) -> None:
        self.timing.train_ended()
        self.timing.evaluating = f"evaluating {split} ({images:,} images)"
        now = self.timing.clock()
        if now - self.t_line >= self.every:  # a long epoch: say what the silence is
            self.t_line = now
            self.console.print(f"epoch {self.timing.epoch}/{self.timing.epochs}  "
                               f"{self.timing.evaluating}", markup=False)

    def epoch_end(self, epoch: int, epochs: int, splits: dict[str, dict[str, float]],
                  lr: float, seconds: float) -> None:
        epoch_s = self.timing.ended() if epoch else seconds
        if self.total is None:  # a resumed run: the time of the sessions before this one
            self.total = max(seconds - epoch_s, 0.0)
        self.total += epoch_s  # wall time, so the total is never less than its epochs
        for line in epoch_lines(epoch, epochs, splits, lr, epoch_s, self.total,
                                self._width()):
            self.console.print(line, markup=False)
        self.t_line = self.timing.clock()

    def message(self, text: str) -> None:
        self.console.print(text, markup=False)

    def data_progress(self, what: str, done: int, total: int) -> None:
        """A line when decoding starts, then at least every ``every`` seconds."""
        now = self.timing.clock()
        if what != self.decoding or now - self.t_line >= self.every:
            self.decoding, self.t_line = what, now
            self.console.print(f"decoding {what} {done:,}/{total:,} images", markup=False)
        if done >= total:
            self.decoding = None


class _StatusColumn(ProgressColumn):
    """Counts, ETAs and running metrics, computed when drawn (so they move with time)."""

    def __init__(self, timing: _Timing, console: Console) -> None:
        super().__init__()
        self.timing, self.console = timing, console

    def render(self, task: Task) -> Text:
        t = self.timing
        used = len(f"epoch {t.epoch}/{t.epochs} ") + bar_width(self.console.width) + 2
        return Text(t.status(self.console.width - used), no_wrap=True, overflow="crop")


def bar_width(console_width: int) -> int:
    """A short bar on a narrow terminal leaves the numbers room."""
    return 10 if console_width < 100 else 20


def fit_header(header: str, width: int) -> list[str]:
    """The run's first line, broken after its '; ' parts when it is wider than the
    terminal (a path is never wrapped in the middle when a break can avoid it)."""
    import textwrap

    if len(header) <= width:
        return [header]
    parts = header.split("; ")
    lines: list[str] = []
    for i, part in enumerate(parts):
        text = part + (";" if i < len(parts) - 1 else "")
        lines += textwrap.wrap(text, width, initial_indent="  " if i else "",
                               subsequent_indent="  ", break_long_words=False,
                               break_on_hyphens=False)
    return lines


class RichReporter(PlainReporter):
    """A live bar per epoch: step count, epoch and run ETA, running loss/top-1, redrawn
    twice a second by time (a refresh thread that does nothing else) and after every
    ``LIVE_EVERY_S`` of steps; epoch lines sized to the terminal."""

    def __init__(self, console: Console | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(console, every=float("inf"), clock=clock)
        self.progress: Progress | None = None
        self.task: Any = None
        self.t_update = clock()

    def _width(self) -> int | None:
        return self.console.width

    def start(self, header: str) -> None:
        for line in fit_header(header, self.console.width):
            self.console.print(line, markup=False)

    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        super().epoch_start(epoch, epochs, steps, done)
        self.close()
        self.progress = Progress(
            TextColumn(f"epoch {epoch}/{epochs}"), BarColumn(bar_width(self.console.width)),
            _StatusColumn(self.timing, self.console),
            console=self.console, auto_refresh=True, refresh_per_second=2, transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=steps, completed=done)

    def tick(self, done: int) -> None:
        self.timing.done = done
        now = self.timing.clock()
        if self.progress is not None and now - self.t_update >= LIVE_EVERY_S:
            self.t_update = now
            self.progress.update(self.task, completed=done)

    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None:
        self.timing.metrics, self.timing.batch_ms = metrics, batch_ms
        self.t_update = 0.0  # show the new metrics now
        self.tick(done)

    def eval_start(self, split: str, images: int) -> None:
        super().eval_start(split, images)
        if self.progress is not None:
            self.progress.update(self.task, completed=self.timing.steps)
            self.progress.refresh()

    def epoch_end(self, epoch: int, epochs: int, splits: dict[str, dict[str, float]],
                  lr: float, seconds: float) -> None:
        self.close()
        super().epoch_end(epoch, epochs, splits, lr, seconds)

    def message(self, text: str) -> None:
        """Wrapped at spaces to the terminal (a path or number is never cut), above the
        live bar while one shows."""
        import textwrap

        lines = textwrap.wrap(text, self.console.width, subsequent_indent="  ",
                              break_long_words=False, break_on_hyphens=False) or [""]
        for line in lines:
            if self.progress is not None:
                self.progress.console.print(line, markup=False)
            else:
                super().message(line)

    def data_progress(self, what: str, done: int, total: int) -> None:
        """A transient bar while a dataset decodes; gone when it is done."""
        if self.progress is None:
            self.progress = Progress(
                TextColumn(f"decoding {what}"), BarColumn(bar_width(self.console.width)),
                TextColumn("{task.completed:,}/{task.total:,} images"),
                console=self.console, auto_refresh=True, refresh_per_second=2,
                transient=True)
            self.progress.start()
            self.task = self.progress.add_task("decode", total=total)
        self.progress.update(self.task, completed=done)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


# The notebook display (convlab.train.notebook, which builds on this module) sets this
# when imported: a factory that returns its reporter inside a notebook, else None. The
# train package imports it, so this module needs no import of it (no cycle).
notebook_reporter: Callable[[], Reporter | None] | None = None


def make_reporter(quiet: bool | None) -> Reporter:
    """``quiet=None`` (``convlab.run``'s default): the live display in a notebook,
    silence elsewhere; ``False``: the notebook display, a terminal bar or plain lines."""
    if quiet is not True and notebook_reporter is not None:
        shown = notebook_reporter()
        if shown is not None:
            return shown
    if quiet or quiet is None:
        return Reporter()
    return RichReporter() if sys.stdout.isatty() else PlainReporter()
