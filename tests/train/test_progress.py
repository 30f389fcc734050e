"""What a person reads while a run trains: ETAs, plain lines off a terminal, epoch lines
that fit 80 columns, and the words of the closing line."""

from __future__ import annotations

import io

from rich.console import Console

from convlab.train.progress import (
    PlainReporter,
    RichReporter,
    closing_line,
    epoch_lines,
    eta,
    fit_header,
    fmt_duration,
    plural,
    run_eta,
)

SPLITS = {"train": {"loss": 0.43219, "top1": 0.8712, "top5": 0.991},
          "val": {"loss": 0.5012, "top1": 0.8523, "top5": 0.9876},
          "test": {"loss": 0.5101, "top1": 0.8499, "top5": 0.9871}}


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_eta_arithmetic() -> None:
    assert eta(0, 100, 5.0) is None  # nothing measured yet: unknown, not zero
    assert eta(25, 100, 5.0) == 15.0  # 75 steps at 0.2 s
    assert run_eta(15.0, 2, 20.0, 1.0) == 15 + 1 + 2 * 21
    assert run_eta(None, 2, 20.0, 1.0) is None
    assert [fmt_duration(s) for s in (9.4, 62, 3723, None)] == ["0:09", "1:02", "1:02:03", "?"]
    assert (plural(1, "epoch"), plural(0, "epoch"), plural(3, "epoch")) == (
        "1 epoch", "0 epochs", "3 epochs")


def test_plain_reporter_prints_a_progress_line_every_15_seconds() -> None:
    buf, clock = io.StringIO(), Clock()
    rep = PlainReporter(Console(file=buf, width=80, soft_wrap=True), clock=clock)
    rep.epoch_start(1, 4, 800, 0)
    for step in range(1, 801):
        clock.t += 0.125  # 100 s of training in all
        if step % 40 == 0:
            rep.batch(step, SPLITS["train"], 100.0)
        else:
            rep.tick(step)
    lines = buf.getvalue().splitlines()
    assert 6 <= len(lines) <= 7, lines  # 100 s / 15 s
    first = lines[0]  # at 15 s: 120 of 800 steps, 85 s left in the epoch, 3 more epochs
    assert first == "epoch 1/4  step 120/800  loss 0.4322 top1 87.12%  ETA epoch 1:25 run 6:25"
    assert all(len(line) <= 80 for line in lines)


def test_epoch_lines_fit_80_columns_with_labelled_times() -> None:
    one = epoch_lines(3, 10, SPLITS, 0.01, 12.34, 45.67)
    assert len(one) == 1 and "epoch 12.3s  total 45.7s" in one[0]
    lines = epoch_lines(3, 10, SPLITS, 0.01, 12.34, 45.67, width=80)
    assert len(lines) == 4 and all(len(line) <= 80 for line in lines)
    assert lines[0] == "epoch 3/10  lr 0.01  epoch 12.3s  total 45.7s"
    assert lines[2] == "  val    loss 0.5012 top1 85.23% top5 98.76%"
    head = fit_header("tiny: cnn (1,828 parameters) on synthetic (3,686 train / 512 test) "
                      "on cpu; run runs/tiny/20261201-210755-73403564", 80)
    assert head == ["tiny: cnn (1,828 parameters) on synthetic (3,686 train / 512 test) "
                    "on cpu;", "  run runs/tiny/20261201-210755-73403564"]
    head = fit_header("tinyp: cnn (2,698 parameters) on synthetic (54,000 train / 6,000 val "
                      "/ 512 test) on cpu; run /tmp/runs_c/tinyp/20261201-213640-6bff762e", 80)
    assert all(len(line) <= 80 for line in head) and head[-1].endswith("-6bff762e")
    assert head[1] == "  on cpu;"


def test_live_status_drops_whole_parts_to_fit() -> None:
    clock = Clock()
    rep = RichReporter(Console(file=io.StringIO(), width=80, force_terminal=True),
                       clock=clock)
    rep.epoch_start(2, 10, 3375, 0)
    clock.t = 2.0
    rep.batch(1207, SPLITS["train"], 1.66)
    text = rep.timing.status(56)
    assert text.startswith("1,207/3,375 ETA 0:04 (run ") and "top1 87.12%" in text
    assert len(text) <= 56 and "ms/batch" not in text  # dropped whole, never cut
    assert "ms/batch" in rep.timing.status(120)
    rep.eval_start("test", 10000)
    assert rep.timing.status(56) == "evaluating test (10,000 images)"
    rep.close()


def test_closing_line_words() -> None:
    assert closing_line({"status": "completed", "epochs_done": 1, "wall_s": 6.91,
                         "final": {"test.top1": 0.9909}}) == (
        "completed: test top1 99.09% after 1 epoch in 6.9s")
    assert closing_line({"status": "interrupted", "epochs_done": 0, "wall_s": 2.0,
                         "final": {}}) == ("interrupted before the first epoch ended "
                                           "(2.0s); convlab run --resume RUN continues it")
    assert "after 3 epochs" in closing_line({"status": "completed", "epochs_done": 3,
                                             "wall_s": 1, "final": {"test.top1": 0.5}})


def test_plain_reporter_says_when_it_evaluates_after_a_quiet_spell() -> None:
    buf, clock = io.StringIO(), Clock()
    rep = PlainReporter(Console(file=buf, width=80, soft_wrap=True), clock=clock)
    rep.epoch_start(1, 2, 10, 0)
    clock.t = 3.0
    rep.eval_start("val", 5000)  # 3 s since the last line: nothing
    clock.t = 20.0
    rep.eval_start("test", 10000)  # 20 s: a line
    assert buf.getvalue() == "epoch 1/2  evaluating test (10,000 images)\n"


def test_terminal_messages_wrap_at_spaces() -> None:
    buf = io.StringIO()
    rep = RichReporter(Console(file=buf, width=40, force_terminal=False, soft_wrap=True))
    rep.message("stopping after this step (checkpoint follows); press Ctrl-C again to stop "
                "at once")
    lines = buf.getvalue().splitlines()
    assert lines == ["stopping after this step (checkpoint",
                     "  follows); press Ctrl-C again to stop", "  at once"]
