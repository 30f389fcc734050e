"""One-sentence readings of a report's sections, computed from the numbers.

A figure tells a reader what happened only if they know where to look; each function
here looks for them and says it in one sentence ("test loss is lowest at 1.2M
parameters; larger models overfit"). They are pure functions of plain lists and dicts,
so each rule is tested on hand-made curves. A :class:`Finding` carries the sentence and
the numbers behind it (``data``), so tests and other tools need not parse the text.

Overfitting, as used throughout: the validation/test loss rises after its minimum while
the training loss keeps falling (the model keeps fitting the training set and gets worse
on new data). A rise of less than ``REL_TOL`` of the minimum (or ``ABS_TOL``) is noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

REL_TOL = 0.02  # a loss rise smaller than 2% of the minimum is noise, not overfitting
ABS_TOL = 1e-3  # ... and so is any rise below this (losses near 0 jitter by large ratios)
GAP_LARGE = 5.0  # points of train-minus-test accuracy worth calling a large gap
GAP_SMALL = 1.0  # points within which train and test accuracy are "the same"
SPIKE = 10.0  # a total gradient norm this many times those just before it is a spike
SPIKE_WINDOW = 5  # ... the median of this many recorded steps before it
MIN_EPOCHS = 3  # fewer trained epochs cannot show a held-out loss turning upwards


@dataclass(frozen=True)
class Finding:
    """One sentence and the numbers it was made from."""

    text: str
    kind: Literal["info", "warning"] = "info"
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.text


# ------------------------------------------------------------------ formatting


def human_count(n: float) -> str:
    """628 -> "628", 45_300 -> "45.3k", 1_234_567 -> "1.23M"."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.3g}" if isinstance(n, float) and not float(n).is_integer() else str(int(n))


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _num(x: float) -> str:
    return f"{x:.3g}"


def sentence(parts: Sequence[str]) -> str:
    """Clauses joined by semicolons as one sentence: capital first letter, one full stop."""
    text = "; ".join(p for p in parts if p)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def split_name(split: str) -> str:
    """``val`` -> ``validation``: the word a sentence needs."""
    return {"val": "validation"}.get(split, split)


def plural(n: int, word: str) -> str:
    """``1 epoch``, ``3 epochs``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def by_setting(values: Sequence[float | None], settings: Sequence[str] | None
               ) -> dict[str, list[float]] | None:
    """``values`` grouped by ``settings`` (each run's setting apart from its seed: runs
    that differ only in the seed share one), in order of first appearance, missing
    values left out; None unless some setting holds two values (seeds repeat it)."""
    if settings is None:
        return None
    groups: dict[str, list[float]] = {}
    for name, v in zip(settings, values, strict=True):
        if v is not None:
            groups.setdefault(name, []).append(float(v))
    return groups if any(len(v) > 1 for v in groups.values()) else None


def seed_noise(difference: str, spread: str, of: str = "") -> str:
    """The one wording for a difference no larger than the spread between seeds:
    ``within seed noise[ of X] (difference D, seed spread S)``."""
    return f"within seed noise{f' of {of}' if of else ''} (difference {difference}, " \
           f"seed spread {spread})"


def _points(x: float) -> str:
    """An accuracy difference in points, to the precision seed noise needs."""
    return f"{100 * x:.2f} points"


def _seeds_phrase(groups: Mapping[str, Sequence[float]]) -> str:
    n = max(len(v) for v in groups.values())
    return f"{n} seeds" if all(len(v) == n for v in groups.values()) else f"up to {n} seeds"


def too_few_epochs(n: int) -> str | None:
    """The one wording for "too short to judge overfitting", or None when it is not."""
    if n >= MIN_EPOCHS:
        return None
    return (f"{plural(n, 'epoch')} {'is' if n == 1 else 'are'} too few to judge "
            f"overfitting ({MIN_EPOCHS} or more show whether the held-out loss turns up)")


def gap_phrase(train_acc: float, eval_acc: float, eval_name: str = "test",
               prefix: str = "") -> str:
    """Train against held-out accuracy in words, sign and size spelled out: ``train
    accuracy is 10.1 points below test accuracy``; within ``GAP_SMALL``: the same."""
    gap = 100 * (train_acc - eval_acc)
    if abs(gap) <= GAP_SMALL:
        return (f"{prefix}train and {eval_name} accuracy are within {GAP_SMALL:g} point of "
                f"each other")
    return (f"{prefix}train accuracy is {abs(gap):.1f} points {'above' if gap > 0 else 'below'} "
            f"{eval_name} accuracy")


def change_phrase(what: str, first: float, last: float, where_first: str,
                  where_last: str) -> str:
    """``X goes from 1.1 at step 0 to 0.4 at step 90``; equal values: ``X stays at 1.1
    from step 0 to step 90``; one point: ``X is 1.1 at step 0``."""
    if where_first == where_last:
        return f"{what} is {_num(first)} {where_first}"
    if _num(first) == _num(last):
        return f"{what} stays at {_num(first)} from {where_first.removeprefix('at ')} to " \
               f"{where_last.removeprefix('at ')}"
    return f"{what} goes from {_num(first)} {where_first} to {_num(last)} {where_last}"


# ------------------------------------------------------------------ overfitting


@dataclass(frozen=True)
class Overfit:
    """Where the held-out loss turned: it was lowest at ``epoch`` and rose afterwards."""

    epoch: int  # the epoch of the minimum: the model overfits after it
    min_loss: float
    last_epoch: int
    last_loss: float
    train_at_min: float
    train_last: float


def detect_overfitting(
    train_loss: Sequence[float], eval_loss: Sequence[float],
    epochs: Sequence[float] | None = None, rel_tol: float = REL_TOL, abs_tol: float = ABS_TOL,
) -> Overfit | None:
    """An :class:`Overfit` when the eval loss ends clearly above its minimum while the
    train loss ends below its value at that minimum; else None.

    The end of training is compared with the minimum (not any bump along the way):
    a loss that wobbles and comes back down is not overfitting.
    """
    n = min(len(train_loss), len(eval_loss))
    if n < 2:
        return None
    ev, tr = list(eval_loss[:n]), list(train_loss[:n])
    ep = [int(e) for e in epochs[:n]] if epochs is not None else list(range(1, n + 1))
    i = min(range(n), key=lambda j: ev[j])
    rose = ev[-1] - ev[i] > max(rel_tol * abs(ev[i]), abs_tol)
    train_fell = tr[-1] < tr[i]
    if i == n - 1 or not rose or not train_fell:
        return None
    return Overfit(ep[i], ev[i], ep[-1], ev[-1], tr[i], tr[-1])


def eval_split(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> str | None:
    """The held-out split to read: test when recorded, else validation."""
    for s in ("test", "val"):
        if curves.get(s, {}).get("loss"):
            return s
    return None


def trained(c: Mapping[str, Sequence[float]], metric: str = "loss"
            ) -> tuple[list[int], list[float]]:
    """(epochs, values) of one split's curve without the epoch-0 point: the untrained
    model (``train.eval_at_start``) says nothing about over- or underfitting."""
    ys = list(c.get(metric, []))
    ep = [int(e) for e in c.get("epoch", range(1, len(ys) + 1))][: len(ys)]
    keep = [i for i, e in enumerate(ep) if e > 0]
    return [ep[i] for i in keep], [ys[i] for i in keep]


def trained_epochs(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> int:
    """How many trained epochs the held-out curve has."""
    split = eval_split(curves)
    return len(trained(curves[split])[0]) if split else 0


def overfit_of(curves: Mapping[str, Mapping[str, Sequence[float]]]) -> Overfit | None:
    """:func:`detect_overfitting` on a run's curves (train vs its held-out split, epoch
    0 left out)."""
    split = eval_split(curves)
    train = curves.get("train", {})
    if split is None or not train.get("loss"):
        return None
    ep, ev = trained(curves[split])
    _, tr = trained(train)
    return detect_overfitting(tr, ev, ep) if len(ev) >= MIN_EPOCHS else None


# ------------------------------------------------------------------ one run


def start_phrase(curves: Mapping[str, Mapping[str, Sequence[float]]],
                 num_classes: int | None = None) -> str:
    """The epoch-0 reading (``train.eval_at_start``): the untrained model's held-out
    loss and error beside chance (1 - 1/K error, loss ln K for K classes); "" without an
    epoch 0."""
    split = eval_split(curves)
    if split is None:
        return ""
    c = curves[split]
    ep = [int(e) for e in c.get("epoch", [])]
    if 0 not in ep or "loss" not in c:
        return ""
    i = ep.index(0)
    text = f"before training, {split_name(split)} loss is {_num(c['loss'][i])}"
    if c.get("top1") and len(c["top1"]) > i:
        text += f" and top-1 error {pct(1 - c['top1'][i])}"
    if num_classes and num_classes > 1:
        text += (f" (guessing among {num_classes} classes: error "
                 f"{pct(1 - 1 / num_classes)}, loss ln {num_classes} = "
                 f"{math.log(num_classes):.2f})")
    return text


def runs_start_phrase(runs: Sequence[Mapping[str, Mapping[str, Sequence[float]]]],
                      num_classes: int | None = None) -> str:
    """The epoch-0 reading of several runs: the range of their untrained held-out loss
    and error beside chance; "" unless some run was evaluated before training."""
    losses, errors = [], []
    for curves in runs:
        split = eval_split(curves)
        c = curves.get(split or "", {})
        ep = [int(e) for e in c.get("epoch", [])]
        if 0 in ep:
            i = ep.index(0)
            losses.append(c["loss"][i])
            if len(c.get("top1", [])) > i:
                errors.append(1 - c["top1"][i])
    if not losses:
        return ""

    def span(vs: list[float], fmt: Any) -> str:
        lo, hi = fmt(min(vs)), fmt(max(vs))
        return lo if lo == hi else f"{lo} to {hi}"

    text = f"before training, held-out loss is {span(losses, _num)}"
    if errors:
        text += f" and top-1 error {span(errors, pct)}"
    text += f" in {plural(len(losses), 'run')}"
    if num_classes and num_classes > 1:
        text += (f" (guessing among {num_classes} classes: error {pct(1 - 1 / num_classes)}, "
                 f"loss ln {num_classes} = {math.log(num_classes):.2f})")
    return text


def learning_curve_finding(curves: Mapping[str, Mapping[str, Sequence[float]]],
                           num_classes: int | None = None) -> Finding:
    """Does the held-out loss overfit, flatten, or still fall at the end? Fewer than
    ``MIN_EPOCHS`` trained epochs get no verdict, only what the curve did; an epoch-0
    point is read against chance."""
    split = eval_split(curves)
    if split is None:
        return Finding("No validation or test loss was recorded, so overfitting cannot be "
                       "judged.", "warning")
    ep, ev = trained(curves[split])
    _, train = trained(curves.get("train", {}))
    name = split_name(split)
    start = start_phrase(curves, num_classes)
    if len(ev) < MIN_EPOCHS:
        data = {"overfit": False, "overfit_after": None, "split": split,
                "too_few_epochs": True}
        parts = [start]
        if ep:
            acc = trained(curves[split], "top1")[1]
            error = f" and top-1 error {pct(1 - acc[-1])}" if start and acc else ""
            parts.append(f"after {plural(ep[-1], 'epoch')}, {name} loss is {_num(ev[-1])}{error}")
        parts.append(too_few_epochs(len(ev)) or "")
        return Finding(sentence(parts), data=data)
    of = detect_overfitting(train, ev, ep) if train else None
    if of is not None:
        return Finding(
            f"{name.capitalize()} loss is lowest at epoch {of.epoch} ({_num(of.min_loss)}) and "
            f"rises to {_num(of.last_loss)} by epoch {of.last_epoch} while train loss keeps "
            f"falling ({_num(of.train_at_min)} to {_num(of.train_last)}): the model overfits "
            f"after epoch {of.epoch}.", "warning",
            {"overfit": True, "overfit_after": of.epoch, "split": split})
    i = min(range(len(ev)), key=lambda j: ev[j])
    data = {"overfit": False, "overfit_after": None, "split": split, "min_epoch": ep[i]}
    if i == len(ev) - 1:
        drop = ev[-2] - ev[-1]
        if drop > max(REL_TOL * abs(ev[-2]), ABS_TOL):
            return Finding(f"{name.capitalize()} loss is still falling at the last epoch "
                           f"({ep[-1]}: {_num(ev[-2])} to {_num(ev[-1])}): no sign of "
                           f"overfitting, and more epochs may help.",
                           data={**data, "still_falling": True})
        return Finding(f"{name.capitalize()} loss reaches its lowest, {_num(ev[-1])}, at the "
                       f"last epoch ({ep[-1]}) and has levelled off: no sign of overfitting.",
                       data={**data, "still_falling": False})
    if len(train) >= len(ev) and train[len(ev) - 1] >= train[i] and ev[-1] > ev[i]:
        return Finding(f"Both train and {name} loss rise after epoch {ep[i]}: training is "
                       f"unstable (the learning rate may be too high), not overfitting.",
                       "warning", {**data, "unstable": True})
    return Finding(f"{name.capitalize()} loss is lowest at epoch {ep[i]} ({_num(ev[i])}) and "
                   f"ends at {_num(ev[-1])}: it has levelled off, with no clear overfitting.",
                   data=data)


def final_metrics_finding(final: Mapping[str, float]) -> Finding:
    """The gap between train and held-out accuracy at the last epoch."""
    split = "test" if "test.top1" in final else "val" if "val.top1" in final else None
    if split is None:
        return Finding("No held-out accuracy was recorded.", "warning")
    acc = final[f"{split}.top1"]
    name = split_name(split)
    if "train.top1" not in final:
        return Finding(f"Final {name} accuracy is {pct(acc)}.", data={"acc": acc})
    tr = final["train.top1"]
    gap = 100 * (tr - acc)
    data = {"acc": acc, "train_acc": tr, "gap_points": gap, "split": split}
    head = f"Final {name} accuracy is {pct(acc)} against {pct(tr)} on train: "
    words = gap_phrase(tr, acc, name)
    if gap > GAP_LARGE:
        return Finding(f"{head}{words}, a large gap: the model fits the training set much "
                       f"better than new data.", "warning", data)
    if gap < -GAP_SMALL:
        return Finding(f"{head}{words}, since train accuracy is averaged over the epoch while "
                       f"the model still learns (and with any augmentation or dropout on).",
                       data=data)
    if abs(gap) <= GAP_SMALL:
        return Finding(f"{head}{words}, so the model generalizes as well as it fits.",
                       data=data)
    return Finding(f"{head}{words}.", data=data)


def layers_finding(layers: Sequence[tuple[str, str, int]], total: int) -> Finding:
    """Where the parameters are: ``layers`` are (name, type, parameters) rows."""
    weighted = [r for r in layers if r[2] > 0]
    if not weighted or total <= 0:
        return Finding(f"The model has {total:,} parameters.", data={"params": total})
    name, typ, p = max(weighted, key=lambda r: r[2])
    share = p / total
    return Finding(
        f"{total:,} parameters in {len(weighted)} layers with weights; the largest, {name} "
        f"({typ}), holds {p:,} of them ({share:.0%}).",
        data={"params": total, "largest": name, "share": share})


def sizes_phrase(sizes: Mapping[str, int]) -> str:
    """``800 train / 200 val / 1,000 test images``; "" when unknown."""
    shown = [f"{n:,} {s}" for s, n in sizes.items() if n]
    return " / ".join(shown) + " images" if shown else ""


def settings_finding(config: Mapping[str, Any], params: int | None,
                     sizes: Mapping[str, int] | None = None) -> Finding:
    """What was trained, in words: model, data and its split sizes, optimizer,
    schedule, epochs."""
    if not config:
        return Finding("The run folder holds no readable config.", "warning")
    model = config.get("model", {}) or {}
    data = config.get("data", {}) or {}
    optim = config.get("optim", {}) or {}
    sched = config.get("schedule", {}) or {}
    train = config.get("train", {}) or {}
    size = f" ({params:,} parameters)" if params is not None else ""
    epochs = train.get("epochs")
    split = f" ({sizes_phrase(sizes)})" if sizes and sizes_phrase(sizes) else ""
    parts = [f"the {model.get('name', '?')} model{size} was trained on "
             f"{data.get('dataset', '?')}{split} for "
             f"{plural(epochs, 'epoch') if isinstance(epochs, int) else '? epochs'} with "
             f"{optim.get('name', '?')} at learning rate {optim.get('lr', '?')} and batch size "
             f"{train.get('batch_size', '?')}"]
    if sched.get("name") not in (None, "constant"):
        parts.append(f"{sched['name']} schedule")
    aug = [k for k, v in (data.get("augment") or {}).items() if v and not isinstance(v, dict)]
    if aug:
        parts.append("augmentation: " + ", ".join(aug))
    return Finding(sentence([", ".join(parts)]))


# ------------------------------------------------------------------ several runs


def runs_settings_finding(n: int, differing: Sequence[str],
                          sizes: Sequence[Mapping[str, int]] = ()) -> Finding:
    """What the runs differ in, and the split sizes when every run shares them."""
    if not differing:
        text = f"The {n} runs have identical settings (repeats)."
    else:
        shown = ", ".join(differing[:6]) + (f" and {len(differing) - 6} more"
                                            if len(differing) > 6 else "")
        text = f"The {n} runs differ in {plural(len(differing), 'setting')}: {shown}."
    phrases = {sizes_phrase(s) for s in sizes}
    if len(phrases) == 1 and (only := phrases.pop()):
        text += f" Each run has {only}."
    return Finding(text)


def comparison_finding(
    labels: Sequence[str], values: Sequence[float | None], metric: str = "final test top-1",
    statuses: Sequence[str] | None = None, train_values: Sequence[float | None] | None = None,
    settings: Sequence[str] | None = None,
) -> Finding:
    """Best and worst run by an accuracy (higher is better), the spread, the mean
    train-test gap, and the runs that did not complete.

    ``settings`` names each run's setting apart from its seed. Where seeds repeat a
    setting, settings are ranked by their mean over the seeds, and two whose means
    differ by no more than the larger spread (max - min) of their seeds are called
    within seed noise instead of one being named the better."""
    scored = [(lab, v) for lab, v in zip(labels, values, strict=True) if v is not None]
    parts: list[str] = []
    data: dict[str, Any] = {}
    groups = by_setting(values, settings)
    if scored:
        best = max(scored, key=lambda t: t[1])
        worst = min(scored, key=lambda t: t[1])
        data.update(best=best[0], worst=worst[0])
        spread = 100 * (best[1] - worst[1])
        data["spread_points"] = spread
        if len(scored) > 1 and spread < 0.05:
            parts.append(f"all {len(scored)} runs reach the same {metric}, {pct(best[1])}")
        elif groups is not None:
            ranked, ranking = _settings_ranking(groups, metric)
            parts += ranked
            data.update(ranking)
        else:
            parts.append(f"best {metric}: {best[0]} ({pct(best[1])})")
            if len(scored) > 1:
                parts.append(f"worst: {worst[0]} ({pct(worst[1])}), {spread:.1f} points lower")
    if train_values is not None:
        pairs = [(t, v) for t, v in zip(train_values, values, strict=True)
                 if t is not None and v is not None]
        if pairs:
            tr, ev = (statistics.fmean(p[i] for p in pairs) for i in (0, 1))
            data["mean_gap_points"] = 100 * (tr - ev)
            parts.append(gap_phrase(tr, ev, metric.split()[1] if " " in metric else "held-out",
                                    "on average, "))
    if statuses is not None:
        bad = [f"{lab} ({s})" for lab, s in zip(labels, statuses, strict=True)
               if s != "completed"]
        if bad:
            parts.append(f"{len(bad)} did not complete: " + ", ".join(bad))
    if not parts:
        return Finding("No run recorded a held-out accuracy.", "warning")
    return Finding(sentence(parts), "warning" if "did not complete" in parts[-1] else "info",
                   data)


def _settings_ranking(groups: Mapping[str, Sequence[float]], metric: str
                      ) -> tuple[list[str], dict[str, Any]]:
    """Clauses ranking settings by their mean over seeds, against the seed spread."""
    means = {k: statistics.fmean(v) for k, v in groups.items()}
    spreads = {k: max(v) - min(v) for k, v in groups.items()}
    seeds = _seeds_phrase(groups)
    data: dict[str, Any] = {"setting_means": means, "seed_spreads": spreads}
    if len(groups) == 1:
        (only,) = groups
        data.update(best=None, worst=None, within_seed_noise=True)
        return [f"the {plural(len(groups[only]), 'run')} repeat one setting over seeds: "
                f"mean {metric} {pct(means[only])}, seed spread {_points(spreads[only])}"], data

    def noise(a: str, b: str) -> tuple[float, float]:  # difference of means, seed spread
        return means[a] - means[b], max(spreads[a], spreads[b])

    best = max(means, key=lambda k: means[k])
    worst = min(means, key=lambda k: means[k])
    diff, spread = noise(best, worst)
    data.update(difference_points=100 * diff, seed_spread_points=100 * spread)
    if diff <= spread:
        data.update(best=None, worst=None, within_seed_noise=True)
        if len(means) == 2:
            a, b = means
            what = (f"the mean {metric} over {seeds} of {a} ({pct(means[a])}) and {b} "
                    f"({pct(means[b])})")
        else:
            what = (f"the mean {metric} over {seeds} of all {len(means)} settings, "
                    f"{pct(means[worst])} to {pct(means[best])},")
        return [f"{what} is {seed_noise(_points(diff), _points(spread))}"], data
    data.update(best=best, worst=worst, within_seed_noise=False)
    parts = [f"best mean {metric} over {seeds}: {best} ({pct(means[best])})"]
    for k in means:
        d, s = noise(best, k)
        if k not in (best, worst) and d <= s:
            parts.append(f"{k} ({pct(means[k])}) is {seed_noise(_points(d), _points(s), 'it')}")
    parts.append(f"worst: {worst} ({pct(means[worst])}), {100 * diff:.1f} points lower, "
                 f"more than the seed spread ({_points(spread)})")
    return parts, data


def sweep_finding(
    x: Sequence[float], train_loss: Sequence[float | None], eval_loss: Sequence[float | None],
    x_name: str = "parameters", overfit_after: Sequence[int | None] | None = None,
    eval_name: str = "test",
) -> Finding:
    """Where along a swept setting the held-out loss is lowest, and what happens on
    either side: larger values that fit the training set better but do worse on new
    data overfit; smaller values worse on both underfit. Repeats of one value (seeds)
    are averaged. ``overfit_after`` holds each run's :attr:`Overfit.epoch` (or None)."""
    pts: dict[float, list[tuple[float, float]]] = {}
    for xi, t, e in zip(x, train_loss, eval_loss, strict=True):
        if t is not None and e is not None:
            pts.setdefault(float(xi), []).append((float(t), float(e)))
    if not pts:
        return Finding(f"No run recorded both train and {eval_name} loss.", "warning")
    xs = sorted(pts)
    tr = [statistics.fmean(p[0] for p in pts[v]) for v in xs]
    ev = [statistics.fmean(p[1] for p in pts[v]) for v in xs]
    # repeats (seeds): the spread of each value's held-out loss; a difference no larger
    # than the spread of the two values compared is seed noise
    repeated = any(len(pts[v]) > 1 for v in xs)
    sp = [max(p[1] for p in pts[v]) - min(p[1] for p in pts[v]) for v in xs]

    def at(v: float) -> str:
        return f"{human_count(v)} parameters" if x_name == "parameters" else f"{x_name}={v:g}"

    larger = "larger models" if x_name == "parameters" else f"larger {x_name} values"
    smaller = "smaller models" if x_name == "parameters" else f"smaller {x_name} values"
    i = min(range(len(xs)), key=lambda j: ev[j])
    parts = [f"{eval_name} loss is lowest at {at(xs[i])} ({_num(ev[i])})"]
    data: dict[str, Any] = {"best_x": xs[i], "overfit_larger": False, "underfit_smaller": False}
    if repeated:
        near = [j for j in range(len(xs)) if j != i and ev[j] - ev[i] <= max(sp[i], sp[j])]
        data["within_seed_noise"] = [xs[j] for j in near]
        parts += [f"{at(xs[j])} ({_num(ev[j])}) is "
                  f"{seed_noise(_num(ev[j] - ev[i]), _num(max(sp[i], sp[j])), 'it')}"
                  for j in near]
    noise_tol = max(REL_TOL * abs(ev[i]), ABS_TOL)

    def beyond(j: int) -> float:  # what a loss above the lowest must exceed to count
        return max(noise_tol, sp[i], sp[j]) if repeated else noise_tol

    if i < len(xs) - 1:
        tol = beyond(len(xs) - 1)
        if ev[-1] - ev[i] > tol and tr[-1] < tr[i]:
            data["overfit_larger"] = True
            parts.append(f"{larger} fit the training set better (train loss {_num(tr[i])} to "
                         f"{_num(tr[-1])}) but reach only {_num(ev[-1])}: they overfit")
        elif ev[-1] - ev[i] > tol:
            parts.append(f"{larger} do worse on both train and {eval_name} loss")
        else:
            parts.append(f"{larger} do not improve it")
    elif len(xs) > 1 and not (repeated and ev[-2] - ev[-1] <= max(sp[-1], sp[-2])):
        parts.append(f"it still falls at the largest value, so {larger} may do better")
    if i > 0 and tr[0] > tr[i] and ev[0] - ev[i] > beyond(0):
        data["underfit_smaller"] = True
        parts.append(f"{smaller} underfit (train loss {_num(tr[0])} at {at(xs[0])})")
    if overfit_after is not None:
        over = [(float(xi), e) for xi, e in zip(x, overfit_after, strict=True) if e is not None]
        data["overfit_runs"] = len(over)
        if over:
            first = min(e for _, e in over)
            last = max(e for _, e in over)
            when = f"epoch {first}" if first == last else f"epochs {first}-{last}"
            over_x = {v for v, _ in over}
            lo = min(over_x)
            # the overfitting runs are exactly those at or above one value: say so
            threshold = lo > xs[0] and all((v >= lo) == (v in over_x) for v in pts)
            who = (f"runs with {at(lo)} or more" if threshold
                   else f"{len(over)} of {len(x)} runs")
            parts.append(f"{who} overfit during training, after {when}")
    return Finding(sentence(parts), "info", data)


def ablation_finding(labels: Sequence[str], values: Sequence[float | None],
                     metric: str = "final test top-1",
                     train: Sequence[float | None] | None = None,
                     settings: Sequence[str] | None = None) -> Finding:
    """Read a ladder of runs in order: where it starts and ends, the biggest step up,
    the biggest step down; with the ``train`` accuracies, the step that narrows the
    train-minus-held-out gap most (what a regularizer is for, even where it costs
    accuracy within a short training).

    ``settings`` names each run's setting apart from its seed; where seeds repeat a
    setting, the ladder is read over the settings' means, and a step no larger than the
    seed spread (max - min) of the two settings it joins is called within seed noise
    instead of a gain or a drop."""
    spreads: list[float] | None = None
    groups = by_setting(values, settings)
    if groups is not None and settings is not None:  # one rung per setting: seed means
        order = list(groups)
        if train is not None:
            tg: dict[str, list[float]] = {}
            for name, v, t in zip(settings, values, train, strict=True):
                if v is not None and t is not None:
                    tg.setdefault(name, []).append(float(t))
            train = [statistics.fmean(tg[k]) if k in tg else None for k in order]
        labels, values = order, [statistics.fmean(groups[k]) for k in order]
        spreads = [max(groups[k]) - min(groups[k]) for k in order]
        metric = f"mean {metric} over {_seeds_phrase(groups)}"
    runs = "settings" if spreads is not None else "runs"
    pts = [(lab, v) for lab, v in zip(labels, values, strict=True) if v is not None]
    if len(pts) < 2:
        return Finding(f"Too few {runs} with a {metric} to compare.", "warning")
    if max(v for _, v in pts) - min(v for _, v in pts) < 0.0005:
        return Finding(f"All {len(pts)} {runs} reach the same {metric}, {pct(pts[0][1])}.",
                       data={"largest_gain": None, "largest_drop": None, "best": None})
    parts = [f"{metric} goes from {pct(pts[0][1])} ({pts[0][0]}) to {pct(pts[-1][1])} "
             f"({pts[-1][0]})" if pct(pts[0][1]) != pct(pts[-1][1]) else
             f"{metric} is {pct(pts[0][1])} both first ({pts[0][0]}) and last ({pts[-1][0]})"]
    # (rung, change in points, seed spread in points); with spreads, pts are the settings
    steps = [(pts[j][0], 100 * (pts[j][1] - pts[j - 1][1]),
              100 * max(spreads[j], spreads[j - 1]) if spreads is not None else 0.0)
             for j in range(1, len(pts))]
    noisy = [st for st in steps if spreads is not None and abs(st[1]) <= st[2]]
    beyond = [st for st in steps if st not in noisy]
    up = max(beyond, key=lambda s: s[1], default=None)
    down = min(beyond, key=lambda s: s[1], default=None)
    if up is not None and up[1] > 0 and len(steps) > 1:
        parts.append(f"the largest gain, +{up[1]:.1f} points, comes with {up[0]}")
    if down is not None and down[1] < 0:
        parts.append(f"{down[0]} lowers it by {-down[1]:.1f} points")
    parts += [f"{lab} changes it {seed_noise(f'{d:+.2f} points', f'{sp:.2f} points')}"
              for lab, d, sp in noisy]
    best = max(pts, key=lambda t: t[1])
    at_best = [lab for lab, _ in pts].index(best[0])
    if best is not pts[-1] and (spreads is None or best[1] - pts[-1][1]
                                > max(spreads[at_best], spreads[-1])):
        parts.append(f"the best is {best[0]} ({pct(best[1])})")
    narrowest = None
    if train is not None:
        gaps = [(lab, 100 * (t - v)) for lab, v, t in zip(labels, values, train, strict=True)
                if v is not None and t is not None]
        # the gap a regularizer narrows is train accuracy above held-out accuracy; a
        # negative gap (train below: augmentation, dropout) is no overfitting to narrow
        shrink = [(gaps[j][0], gaps[j - 1][1], gaps[j][1]) for j in range(1, len(gaps))
                  if max(gaps[j - 1][1], 0) - max(gaps[j][1], 0) >= GAP_LARGE / 2]
        if shrink:
            narrowest = max(shrink, key=lambda g: max(g[1], 0) - max(g[2], 0))
            held = metric.split()[1] if " " in metric else "held-out"
            after = (f"{narrowest[2]:.1f} points" if narrowest[2] >= 0 else
                     f"none (train accuracy {-narrowest[2]:.1f} points below {held} accuracy)")
            parts.append(f"{narrowest[0]} narrows the gap of train accuracy above {held} "
                         f"accuracy most, from {narrowest[1]:.1f} points to {after}")
    data = {"largest_gain": up[0] if up is not None and up[1] > 0 else None,
            "largest_drop": down[0] if down is not None and down[1] < 0 else None,
            "best": best[0], "narrows_gap": narrowest[0] if narrowest else None}
    if spreads is not None:
        data["within_seed_noise"] = [lab for lab, _, _ in noisy]
    return Finding(sentence(parts), data=data)


def grad_norm_finding(steps: Sequence[float], norms: Mapping[str, Sequence[float]]) -> Finding:
    """How the total gradient norm evolves, its spikes, and which layer gets the largest
    and the smallest gradients (a large ratio hints at vanishing gradients)."""
    total = list(norms.get("total", []))
    if not total:
        return Finding("No gradient norms were recorded.", "warning")
    parts = [change_phrase("total gradient norm", total[0], total[-1],
                           f"at step {int(steps[0])}", f"at step {int(steps[-1])}")]
    data: dict[str, Any] = {"spike": False}
    # a spike is a jump against the steps just before it: the large gradients of the
    # first steps of training, falling from there, are not one
    ratios = [(total[k] / ref, k) for k in range(1, len(total))
              if (ref := statistics.median(total[max(0, k - SPIKE_WINDOW):k])) > 0]
    ratio, j = max(ratios, default=(0.0, 0))
    if ratio > SPIKE:
        data["spike"] = True
        parts.append(f"it spikes to {_num(total[j])} at step {int(steps[j])}, "
                     f"{ratio:.0f}x the steps before it")
    layers = {k: statistics.median(v) for k, v in norms.items() if k != "total" and v}
    if len(layers) > 1:
        hi = max(layers, key=lambda k: layers[k])
        lo = min(layers, key=lambda k: layers[k])
        data.update(largest=hi, smallest=lo)
        spread = f", {layers[hi] / layers[lo]:.3g}x less" if layers[lo] > 0 else \
            ": no gradient reaches it"
        parts.append(f"{hi} gets the largest gradients (median {_num(layers[hi])}), {lo} the "
                     f"smallest ({_num(layers[lo])}{spread})")
    return Finding(sentence(parts), "warning" if data["spike"] else "info", data)


def overfitting_finding(labels: Sequence[str], overfits: Sequence[Overfit | None],
                        epochs: Sequence[int] | None = None) -> Finding:
    """Which of several runs overfit, and after which epoch; ``epochs`` (trained epochs
    of each run) keeps runs too short to tell out of the verdict."""
    judged = [i for i in range(len(labels))
              if epochs is None or epochs[i] >= MIN_EPOCHS]
    if not judged:
        n = max(epochs or [0])
        return Finding(sentence([f"the runs have at most {plural(n, 'trained epoch')}: "
                                  + (too_few_epochs(n) or "")]),
                       data={"overfit": [], "too_few_epochs": True})
    over = [(labels[i], o) for i in judged if (o := overfits[i]) is not None]
    short = len(labels) - len(judged)
    not_judged = (f" ({plural(short, 'run')} with fewer than {MIN_EPOCHS} epochs not judged)"
                  if short else "")
    if not over:
        return Finding(f"None of the {len(judged)} runs overfits: no held-out loss rises "
                       f"clearly after its minimum while train loss keeps falling"
                       f"{not_judged}.", data={"overfit": []})
    listed = ", ".join(f"{lab} (after epoch {o.epoch})" for lab, o in over[:5])
    more = f" and {len(over) - 5} more" if len(over) > 5 else ""
    return Finding(f"{len(over)} of {len(judged)} runs overfit: {listed}{more}{not_judged}.",
                   "warning",
                   {"overfit": [lab for lab, _ in over]})


# ------------------------------------------------------------------ per-step curves


def step_finding(steps: Mapping[str, Sequence[float]]) -> Finding:
    """The per-interval train loss of one run (steps.csv): where it starts and ends, and
    the lowest it reached when that is not the end."""
    loss, at = list(steps.get("train_loss", [])), list(steps.get("step", []))
    if not loss or len(at) != len(loss):
        return Finding("No per-step train metrics were recorded.", "warning")
    parts = [change_phrase("train loss over a log interval", loss[0], loss[-1],
                           f"at step {int(at[0])}", f"at step {int(at[-1])}")]
    acc = list(steps.get("train_top1", []))
    if len(acc) == len(loss) and len(acc) > 1:
        a, b = pct(acc[0]), pct(acc[-1])
        verb = "rises" if acc[-1] > acc[0] else "falls"
        parts.append(f"train top-1 stays at {a}" if a == b else f"train top-1 {verb} from {a} "
                     f"to {b}")
    j = min(range(len(loss)), key=lambda k: loss[k])
    if 0 < j < len(loss) - 1 and loss[-1] - loss[j] > max(REL_TOL * abs(loss[j]), ABS_TOL):
        parts.append(f"it was lowest at step {int(at[j])} ({_num(loss[j])})")
    return Finding(sentence(parts), data={"first": loss[0], "last": loss[-1],
                                           "min_step": int(at[j])})


def steps_finding(runs: Mapping[str, Mapping[str, Sequence[float]]]) -> Finding:
    """Several runs' per-interval train loss: which ends lowest and which highest."""
    last = {lab: float(st["train_loss"][-1]) for lab, st in runs.items()
            if st.get("train_loss")}
    if not last:
        return Finding("No per-step train metrics were recorded.", "warning")
    if len(last) == 1:
        lab = next(iter(last))
        return step_finding(runs[lab])
    lo = min(last, key=lambda k: last[k])
    hi = max(last, key=lambda k: last[k])
    if _num(last[lo]) == _num(last[hi]):
        return Finding(f"All {len(last)} runs end with the same train loss over the last log "
                       f"interval, {_num(last[lo])}.", data={"lowest": None})
    return Finding(f"Over the last log interval, {lo} has the lowest train loss "
                   f"({_num(last[lo])}) and {hi} the highest ({_num(last[hi])}).",
                   data={"lowest": lo, "highest": hi})
