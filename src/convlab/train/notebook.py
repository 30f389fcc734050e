"""Progress in a Jupyter notebook: one display, updated in place.

A terminal bar redrawn with carriage returns becomes one output line per redraw in a
notebook, and a line per epoch scrolls the cell away; so in a notebook a run shows a
single HTML display (created at the start, replaced at most every ``EVERY_S`` seconds):
the header, a progress bar with the running metrics and ETAs, the table of finished
epochs as it grows, and at the end the closing line. The executed notebook's output
for a whole run is that one display item.
"""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable
from typing import Any

from convlab.train import progress
from convlab.train.progress import Reporter, fmt_duration, fmt_metrics

EVERY_S = 0.5  # the display is replaced at most this often while training


def in_notebook() -> bool:
    """True inside a Jupyter kernel (Jupyter, JupyterLab, VS Code, Colab); False in a
    terminal IPython or a plain interpreter. IPython is only looked at if it is loaded."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


class _View:
    """What the display shows: HTML for notebooks, text for other front ends."""

    def __init__(self, html_text: str, plain: str) -> None:
        self.html_text, self.plain = html_text, plain

    def _repr_html_(self) -> str:
        return self.html_text

    def __repr__(self) -> str:
        return self.plain


def pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}"


def epoch_table(rows: list[dict[str, Any]]) -> str:
    """Finished epochs: loss and top-1 per split, learning rate, time."""
    if not rows:
        return ""
    splits = list(dict.fromkeys(s for r in rows for s in r["splits"]))
    head = "".join(f"<th>{html.escape(s)} loss</th><th>{html.escape(s)} top1 %</th>"
                   for s in splits)
    body = []
    for r in rows:
        cells = "".join(
            f"<td>{r['splits'][s]['loss']:.4f}</td><td>{pct(r['splits'][s].get('top1'))}</td>"
            if s in r["splits"] else "<td></td><td></td>" for s in splits)
        body.append(f"<tr><td>{r['epoch']}</td>{cells}<td>{r['lr']:.3g}</td>"
                    f"<td>{r['seconds']:.1f}</td></tr>")
    return (f'<table style="margin-top:4px"><tr><th>epoch</th>{head}<th>lr</th><th>s</th>'
            f'</tr>{"".join(body)}</table>')


class NotebookReporter(Reporter):
    """The :class:`Reporter` of a run in a notebook (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 display: Callable[..., Any] | None = None) -> None:
        self.clock = clock
        self._display = display
        self.handle: Any = None
        self.header = ""
        self.epoch = self.epochs = self.steps = self.done = self.start_done = 0
        self.metrics: dict[str, float] = {}
        self.batch_ms = 0.0
        self.evaluating = ""
        self.rows: list[dict[str, Any]] = []
        self.messages: list[str] = []
        self.t_start = self.t_epoch = clock()
        self.last_draw = float("-inf")
        self.updates = 0  # how often the display was replaced (tests, never a flood)

    # -- what is shown -------------------------------------------------------------

    def eta_text(self) -> str:
        """This epoch's and the run's time left, at this epoch's rate so far (or the
        mean of the finished epochs)."""
        now = self.clock()
        done = self.done - self.start_done
        if done > 0 and self.steps:
            per_step = (now - self.t_epoch) / done
            epoch_left = per_step * (self.steps - self.done)
        elif self.rows:
            epoch_left = sum(r["seconds"] for r in self.rows) / len(self.rows)
        else:
            return "ETA ?"
        per_epoch = (sum(r["seconds"] for r in self.rows) / len(self.rows) if self.rows
                     else epoch_left * self.steps / max(self.steps - self.done, 1))
        run_left = epoch_left + per_epoch * max(self.epochs - self.epoch, 0)
        return f"ETA {fmt_duration(epoch_left)} (run {fmt_duration(run_left)})"

    def status_text(self) -> str:
        if not self.epochs:
            return "preparing"
        if self.epoch > self.epochs or (self.rows and self.rows[-1]["epoch"] == self.epochs
                                        and not self.evaluating):
            return f"{self.epochs}/{self.epochs} epochs"
        parts = [f"epoch {self.epoch}/{self.epochs}", f"step {self.done:,}/{self.steps:,}"]
        parts.append(self.evaluating or self.eta_text())
        if self.metrics:
            parts.append(fmt_metrics(self.metrics))
        if self.batch_ms:
            parts.append(f"{self.batch_ms:.1f} ms/batch")
        return "  ".join(parts)

    def view(self) -> _View:
        fraction = (self.epoch - 1 + (self.done / self.steps if self.steps else 0)) \
            / self.epochs if self.epochs else 0.0
        if self.rows and self.rows[-1]["epoch"] == self.epochs:
            fraction = 1.0
        messages = "".join(f"<div>{html.escape(m)}</div>" for m in self.messages)
        page = (f'<div class="convlab-progress" style="font-family:sans-serif;'
                f'font-size:13px"><div>{html.escape(self.header)}</div>'
                f'<progress value="{fraction:.4f}" max="1" style="width:40%"></progress> '
                f'<span>{html.escape(self.status_text())}</span>'
                f'{epoch_table(self.rows)}{messages}</div>')
        plain = "\n".join([self.header, self.status_text(), *self.messages])
        return _View(page, plain)

    def draw(self, force: bool = False) -> None:
        """Replace the display's content (at most every ``EVERY_S`` unless ``force``)."""
        now = self.clock()
        if not force and now - self.last_draw < EVERY_S:
            return
        self.last_draw = now
        updating = self.handle is not None
        self.handle = show_in_place(self.handle, self._display, self.view())
        self.updates += updating

    # -- the Reporter hooks ----------------------------------------------------------

    def start(self, header: str) -> None:
        self.header = header
        self.t_start = self.clock()
        self.draw(force=True)

    def epoch_start(self, epoch: int, epochs: int, steps: int, done: int = 0) -> None:
        self.epoch, self.epochs, self.steps = epoch, epochs, steps
        self.done = self.start_done = done
        self.t_epoch = self.clock()
        self.metrics, self.evaluating = {}, ""
        self.draw()

    def tick(self, done: int) -> None:
        self.done = done
        self.draw()

    def batch(self, done: int, metrics: dict[str, float], batch_ms: float) -> None:
        self.done, self.metrics, self.batch_ms = done, dict(metrics), batch_ms
        self.draw()

    def eval_start(self, split: str, images: int) -> None:
        self.evaluating = f"evaluating {split} ({images:,} images)"
        self.draw()

    def epoch_end(self, epoch: int, epochs: int, splits: dict[str, dict[str, float]],
                  lr: float, seconds: float) -> None:
        self.epochs = epochs
        epoch_s = self.clock() - self.t_epoch if epoch else seconds
        self.rows.append({"epoch": epoch, "splits": splits, "lr": lr, "seconds": epoch_s})
        self.evaluating = ""
        self.draw(force=epoch == epochs)

    def message(self, text: str) -> None:
        self.messages.append(text)
        self.draw(force=True)

    def close(self) -> None:
        if self.handle is not None:
            self.draw(force=True)


class NotebookLog:
    """Progress lines (a sweep's) in one notebook display, updated in place: the latest
    ``keep`` lines, so a sweep of many trials stays one output item. Call it as ``echo``."""

    def __init__(self, keep: int = 30, display: Callable[..., Any] | None = None) -> None:
        self.keep = keep
        self.lines: list[str] = []
        self.count = 0
        self._display = display
        self.handle: Any = None

    def view(self) -> _View:
        hidden = self.count - len(self.lines)
        head = [f"... {hidden} earlier lines"] if hidden else []
        text = "\n".join([*head, *self.lines])
        return _View(f'<pre style="font-size:12px;margin:0">{html.escape(text)}</pre>', text)

    def __call__(self, line: str) -> None:
        self.count += 1
        self.lines = [*self.lines, line][-self.keep:]
        self.handle = show_in_place(self.handle, self._display, self.view())


def _reporter_in_a_notebook() -> Reporter | None:
    """What ``progress.make_reporter`` shows inside a notebook (None elsewhere)."""
    return NotebookReporter() if in_notebook() else None


progress.notebook_reporter = _reporter_in_a_notebook


def show_in_place(handle: Any, display: Any, view: Any) -> Any:
    """Show ``view`` as a new display the first time (``handle`` None), else replace the
    content of that display in place; returns the handle. ``display``: IPython's by
    default (tests pass their own)."""
    if handle is not None:
        handle.update(view)
        return handle
    show = display
    if show is None:
        from IPython.display import display as show
    return show(view, display_id=True)
