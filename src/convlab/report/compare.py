"""Runs side by side: final and best metrics with only the settings that differ.

:func:`compare_runs` is pure: it flattens each run's config to dotted keys
(``optim.lr``, ``model.stages.0.channels``) and keeps the keys whose values are not
the same in every run, because a table of sixty identical settings hides the two
that matter. The renderers turn the one :class:`Comparison` into a rich table,
Markdown, CSV or table cells for the HTML report.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from convlab.report.data import SPLITS, RunData

Kind = Literal["text", "setting", "int", "loss", "acc"]

FINAL_METRICS = tuple(f"{s}.{m}" for s in SPLITS for m in ("loss", "top1", "top5"))
BEST_METRICS = ("val.top1", "test.top1")


class _Missing:
    """A key that a run's config does not have (e.g. a third stage in a 2-stage model)."""

    def __repr__(self) -> str:
        return "-"


MISSING: Any = _Missing()


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> ``{"dotted.key": value}``.

    Mappings and lists of mappings are descended (``model.stages.0.channels``, the
    spelling ``--set`` accepts); lists of plain values (``data.synthetic.shape``) stay
    one value, since their items mean nothing apart.
    """
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        items: Sequence[tuple[str, Any]] = [(str(k), v) for k, v in tree.items()]
    elif isinstance(tree, list | tuple) and any(isinstance(v, Mapping | list) for v in tree):
        items = [(str(i), v) for i, v in enumerate(tree)]
    else:
        return {prefix: tree}
    if not items and prefix:
        return {prefix: tree}  # an empty section or list is still a value
    for k, v in items:
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, Mapping | list | tuple):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def differing_settings(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Dotted keys whose value differs between the configs (or is absent from some),
    in config order."""
    flat = [flatten(c) for c in configs]
    keys: list[str] = []
    for f in flat:  # merge the key orders: a key only some runs have goes after its sibling
        at = 0
        for k in f:
            if k in keys:
                at = keys.index(k) + 1
            else:
                keys.insert(at, k)
                at += 1
    differ = [k for k in keys if len({_canon(f.get(k, MISSING)) for f in flat}) > 1]
    # Where a section's ``name`` differs (model: cnn vs mlp), its other keys differ as a
    # matter of course: the name says it, and listing them buries the real differences.
    renamed = {k[: -len(".name")] for k in differ if k.endswith(".name")}
    return [k for k in differ
            if not any(k.startswith(f"{p}.") and k != f"{p}.name" for p in renamed)]


def _canon(v: Any) -> str:
    """A hashable spelling in which 1 == 1.0 but "1" != 1 (YAML may write either)."""
    if v is MISSING:
        return "\0missing"
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int | float):
        return repr(float(v))
    return json.dumps(v, sort_keys=True, default=str)


@dataclass(frozen=True)
class Column:
    """One column: ``key`` addresses :attr:`Comparison.rows`; ``kind`` picks a format."""

    key: str  # "run", "status", "params", "set:optim.lr", "final:test.top1", "best_epoch"
    title: str
    kind: Kind


@dataclass(frozen=True)
class Comparison:
    """Runs as rows; columns: run, status, differing settings, parameters, final and best
    metrics. Values are raw (floats in [0, 1] for accuracies); renderers format them."""

    labels: list[str]
    settings: list[str]  # the dotted keys that differ, also columns "set:<key>"
    columns: list[Column]
    rows: list[dict[str, Any]]  # column key -> value; MISSING / None where absent

    def column(self, key: str) -> list[Any]:
        return [r.get(key) for r in self.rows]

    def setting_values(self, key: str) -> list[Any]:
        return self.column(f"set:{key}")

    def short_names(self) -> dict[str, str]:
        """Each differing key by its shortest dotted suffix that is still unique:
        ``optim.lr`` -> ``lr``; ``model.stages.0.channels`` -> ``0.channels``."""
        out: dict[str, str] = {}
        for key in self.settings:
            parts = key.split(".")
            for n in range(1, len(parts) + 1):
                tail = ".".join(parts[-n:])
                if not any(o != key and (o == tail or o.endswith("." + tail))
                           for o in self.settings):
                    out[key] = tail
                    break
            else:  # pragma: no cover - a key is always unique in full
                out[key] = key
        return out

    def short_labels(self) -> list[str]:
        """The first path component that tells every run apart (``trial-3`` of
        ``trial-3/cap/20261122-...``; the run id when all runs share an experiment)."""
        parts = [label.split("/") for label in self.labels]
        depth = min(len(p) for p in parts)
        for j in range(depth):
            names = [p[j] for p in parts]
            if len(set(names)) == len(names):
                return names
        return list(self.labels)

    def descriptions(self, max_len: int = 50, max_value: int = 20) -> list[str]:
        """Each run named for legends and bar labels: by its ``description`` when those
        differ (a sweep's named grid values set it), with the settings that still tell
        runs of one description apart (``gap, seed=1``); else by its differing settings
        (``lr=0.1, flip=true``). The same keys name every run; keys with a long value in
        some run are left out; if a name would still be too long, or no key is left, or
        two runs would share a name, every run gets its short label instead."""
        short = self.short_names()
        values = {k: [format_value(v) for v in self.setting_values(k)] for k in self.settings}
        keys = [k for k in self.settings
                if k != "description" and all(len(v) <= max_value for v in values[k])]
        own = [v if isinstance(v, str) else "" for v in self.setting_values("description")] \
            if "description" in self.settings else []
        if not all(own):  # some run has no description: name them all by their settings
            own = []
        if own:
            keys = [k for k in keys if any(  # differs between two runs of one description
                own[i] == own[j] and values[k][i] != values[k][j]
                for i in range(len(own)) for j in range(i + 1, len(own)))]
        texts = [", ".join([*own[i:i + 1], *(f"{short[k]}={values[k][i]}" for k in keys)])
                 for i in range(len(self.rows))]
        if all(texts) and all(len(t) <= max_len for t in texts) and len(set(texts)) == len(texts):
            return texts
        return self.short_labels()

    def describe(self, i: int, max_len: int = 50) -> str:
        """:meth:`descriptions` of run ``i``."""
        return self.descriptions(max_len)[i]


def compare_runs(
    runs: Sequence[RunData],
    final: Sequence[str] = FINAL_METRICS,
    best: Sequence[str] = BEST_METRICS,
) -> Comparison:
    """The comparison table of ``runs`` (pure: no file is read).

    ``final`` and ``best`` name the ``<split>.<metric>`` keys to show; a key no run has
    is left out (no empty ``val`` columns for runs without a validation split).
    """
    # a run killed before writing its config has none: it shows "-", not 90 differences
    settings = differing_settings([r.config for r in runs if r.config])
    flat = [flatten(r.config) for r in runs]
    columns = [Column("run", "run", "text"), Column("status", "status", "text")]
    columns += [Column(f"set:{k}", k, "setting") for k in settings]
    columns.append(Column("params", "params", "int"))
    columns.append(Column("epochs", "epochs", "int"))
    for prefix, keys, attr in (("final", final, "final"), ("best", best, "best")):
        if prefix == "best":
            columns.append(Column("best_epoch", "best epoch", "int"))
        for k in keys:
            if any(k in getattr(r, attr) for r in runs):
                columns.append(Column(f"{prefix}:{k}", _metric_title(prefix, k),
                                      "loss" if k.endswith("loss") else "acc"))
    rows: list[dict[str, Any]] = []
    for r, f in zip(runs, flat, strict=True):
        row: dict[str, Any] = {"run": r.label, "status": r.status, "params": r.params,
                               "epochs": r.epochs_done, "best_epoch": r.best_epoch}
        row.update({f"set:{k}": f.get(k, MISSING) for k in settings})
        for c in columns:
            prefix, _, key = c.key.partition(":")
            if prefix in ("final", "best"):
                row[c.key] = getattr(r, prefix).get(key)
        rows.append(row)
    return Comparison([r.label for r in runs], settings, columns, rows)


# ------------------------------------------------------------------ a terminal's view

TERMINAL_TITLES = {  # short headings: a column is as wide as its heading
    "final:test.top1": "test %", "final:val.top1": "val %", "best:val.top1": "best val %",
    "best:test.top1": "best test %", "final:test.loss": "test loss",
    "final:val.loss": "val loss", "best_epoch": "best ep",
}


def _cell_width(cmp: Comparison, c: Column, title: str) -> int:
    values = [format_cell(r.get(c.key), c.kind) for r in cmp.rows]
    return max([len(title), *map(len, values)]) + 3  # rich: "│ " + text + " "


def column_names(cmp: Comparison) -> dict[str, str]:
    """Every name a column answers to in ``--columns`` -> its key: the key itself
    (``final:test.top1``), the CSV name (``final.test.top1``, ``optim.lr``), the heading
    and, for a setting, its short name (``lr``)."""
    short = cmp.short_names()
    names: dict[str, str] = {}
    for c in cmp.columns:
        for n in (c.key, _csv_name(c.key), c.title, TERMINAL_TITLES.get(c.key, ""),
                  short.get(c.key[4:], "") if c.key.startswith("set:") else ""):
            if n:
                names.setdefault(n.lower(), c.key)
    return names


def terminal_view(cmp: Comparison, width: int | None = None,
                  columns: Sequence[str] | None = None, all_: bool = False
                  ) -> tuple[Comparison, list[str]]:
    """The comparison as a person at a terminal wants it, and the column keys left out.

    The first column names each run (:meth:`Comparison.descriptions`: its description,
    else the settings that differ, with the settings a description already determines
    folded into it); then what matters: final and best held-out top-1, held-out loss,
    epochs, parameters; then the other differing settings while ``width`` allows
    (the lowest-ranked columns are dropped whole, never squeezed to nothing).
    ``columns`` picks columns by name (see :func:`column_names`); ``all_`` keeps every
    column of the full table (the run's own path label first).
    """
    by_key = {c.key: c for c in cmp.columns}
    if all_:
        return cmp, []
    names = cmp.descriptions()
    ident = Column("name", "run", "text")
    rows = [{**r, "name": n} for r, n in zip(cmp.rows, names, strict=True)]
    if columns:
        lookup = column_names(cmp)
        unknown = [c for c in columns if c.lower() not in lookup and c != "run"]
        if unknown:
            from convlab.errors import ConvlabError

            raise ConvlabError(f"--columns {unknown[0]!r}: no such column; expected one of: "
                               f"{', '.join(sorted(set(_csv_name(k) for k in by_key)))}")
        picked = [by_key[lookup[c.lower()]] for c in columns if c != "run"]
        return Comparison(cmp.labels, cmp.settings, [ident, *picked], rows), []
    held = "val" if any(r.get("final:val.top1") is not None for r in cmp.rows) else "test"
    ranked = [  # most important first
        f"final:{held}.top1", f"best:{held}.top1", f"final:{held}.loss", "epochs", "params",
    ]
    if held == "val":
        ranked.insert(1, "final:test.top1")
    if any(r.get("status") != "completed" for r in cmp.rows):
        ranked.insert(0, "status")
    named = " ".join(names)
    ranked += [c.key for c in cmp.columns if c.key.startswith("set:")
               and f"{cmp.short_names()[c.key[4:]]}=" not in named and not _folded(cmp, c.key)]
    ranked = [k for k in ranked if k in by_key]
    budget = (width or 10**6) - 1 - _cell_width(
        Comparison(cmp.labels, cmp.settings, [ident], rows), ident, "run")
    kept: list[str] = []
    for k in ranked:
        w = _cell_width(cmp, by_key[k], _title(cmp, by_key[k]))
        if w <= budget:
            kept.append(k)
            budget -= w
    order = kept  # most important first, as ranked
    cols = [ident] + [Column(k, _title(cmp, by_key[k]), by_key[k].kind) for k in order]
    left_out = [k for k in by_key if k not in kept and k != "run"]
    return Comparison(cmp.labels, cmp.settings, cols, rows), left_out


def _title(cmp: Comparison, c: Column) -> str:
    if c.key.startswith("set:"):
        short = cmp.short_names()[c.key[4:]]
        taken = {"run", "status", "params", "epochs", *TERMINAL_TITLES.values()}
        return c.key[4:] if short in taken else short  # train.epochs beside "epochs"
    return TERMINAL_TITLES.get(c.key, c.title)


def _folded(cmp: Comparison, key: str) -> bool:
    """A setting the description determines (one value per description): the name
    already says it, e.g. ``model.head.type`` of runs described as ``gap`` and ``fc``."""
    if "description" not in cmp.settings or key == "set:description":
        return key == "set:description"
    seen: dict[str, str] = {}
    for r in cmp.rows:
        d, v = str(r.get("set:description")), _canon(r.get(key, MISSING))
        if seen.setdefault(d, v) != v:
            return False
    return True


def setting_names(cmp: Comparison) -> list[str] | None:
    """Each run named by its setting apart from the seed, where seeds repeat a setting:
    runs that differ only in ``seed`` share one name (their description, with the
    settings it does not determine; else their differing settings, ``lr=0.1``). None
    when no ``seed`` differs or no setting is repeated, and so nothing to average."""
    if "seed" not in cmp.settings:
        return None
    keys = [k for k in cmp.settings if k != "seed"]
    idents = [tuple(_canon(r.get(f"set:{k}", MISSING)) for k in keys) for r in cmp.rows]
    if len(set(idents)) == len(idents):
        return None
    short = cmp.short_names()
    described = "description" in keys and all(
        isinstance(v, str) and v for v in cmp.setting_values("description"))
    shown = [k for k in keys if k != "description"
             and not (described and _folded(cmp, f"set:{k}"))]
    names: dict[tuple[str, ...], str] = {}
    for ident, r in zip(idents, cmp.rows, strict=True):
        if ident not in names:
            own = [str(r["set:description"])] if described else []
            names[ident] = ", ".join(
                [*own, *(f"{short[k]}={format_value(r.get(f'set:{k}', MISSING))}"
                         for k in shown)]) or "the base setting"
    if len(set(names.values())) < len(names):  # two settings would share a name
        return None
    return [names[i] for i in idents]


def against_seed_noise(cmp: Comparison, key: str,
                       metric: str = "final:test.top1") -> str | None:
    """Whether the setting ``key`` changes ``metric`` by more than the seeds do: the
    difference between its values' means against the largest spread (max - min) between
    the seeds of one value. None unless ``key`` differs and some value has two seeds.

    The capacity study's flatten-order group asks it: an FC layer learns the same
    function under any fixed order of its inputs, so the difference should be noise.
    """
    col = f"set:{key}"
    if key not in cmp.settings:
        return None
    groups: dict[str, list[float]] = {}
    for r in cmp.rows:
        v = r.get(metric)
        if v is not None:
            groups.setdefault(format_value(r.get(col, MISSING)), []).append(float(v))
    if len(groups) < 2 or max(len(v) for v in groups.values()) < 2:
        return None
    means = {k: sum(v) / len(v) for k, v in groups.items()}
    spread = max(max(v) - min(v) for v in groups.values())
    diff = max(means.values()) - min(means.values())
    acc = metric.endswith(("top1", "top5"))
    unit, scale = (" points", 100.0) if acc else ("", 1.0)
    fmt = (lambda x: f"{100 * x:.2f}%") if acc else (lambda x: f"{x:.4g}")
    shown = " vs ".join(f"{k} {fmt(m)}" for k, m in means.items())
    n = max(len(v) for v in groups.values())
    verdict = ("within the spread between seeds: no effect beyond noise" if diff <= spread
               else "more than the spread between seeds")
    return (f"{key}: {shown} (mean of {n} seeds); the difference, "
            f"{scale * diff:.2f}{unit}, is {verdict} ({scale * spread:.2f}{unit})")


def seed_noise_sentence(runs: Sequence[RunData]) -> str | None:
    """:func:`against_seed_noise` for a group of runs that differ in one setting besides
    the seed (and the description naming it), each value repeated over seeds; else None."""
    cmp = compare_runs(runs)
    keys = [k for k in cmp.settings if k not in ("seed", "description")]
    if len(keys) != 1 or "seed" not in cmp.settings:
        return None
    held = "final:val.top1" if any(r.get("final:val.top1") is not None for r in cmp.rows) \
        else "final:test.top1"
    return against_seed_noise(cmp, keys[0], held)


def render_json(cmp: Comparison) -> str:
    """One object per run, CSV names as keys, raw values (accuracies as fractions)."""
    out = []
    for r in cmp.rows:
        obj: dict[str, Any] = {}
        for c in cmp.columns:
            v = r.get(c.key)
            obj[_csv_name(c.key)] = None if v is MISSING else v
        out.append(obj)
    return json.dumps(out, indent=2, default=str) + "\n"


def _metric_title(prefix: str, key: str) -> str:
    split, _, metric = key.partition(".")
    unit = " %" if metric.startswith("top") else ""
    return f"{prefix} {split} {metric}{unit}"


# ------------------------------------------------------------------ formatting


def format_value(v: Any) -> str:
    """A config value as YAML would spell it: ``true``, ``null``, ``[1, 28, 28]``."""
    if v is MISSING:
        return "-"
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | tuple | dict):
        return json.dumps(v, default=str)
    return str(v)


def format_cell(v: Any, kind: Kind) -> str:
    """Display text: accuracies as percentages, losses to 4 significant digits."""
    if v is None or v is MISSING:
        return "-"
    if kind == "acc":
        return f"{100 * float(v):.2f}"
    if kind == "loss":
        return f"{float(v):.4g}"
    if kind == "int":
        return f"{int(v):,}"
    if kind == "setting":
        return format_value(v)
    return str(v)


def cells(cmp: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows, shared by every text renderer."""
    header = [c.title for c in cmp.columns]
    body = [[format_cell(r.get(c.key), c.kind) for c in cmp.columns] for r in cmp.rows]
    return header, body


def right_aligned(cmp: Comparison) -> list[bool]:
    return [c.kind in ("int", "loss", "acc") for c in cmp.columns]


def render_table(cmp: Comparison) -> Any:
    """A ``rich`` Table (print it with a Console). Settings are headed by their short
    names (``lr``, ``0.channels``) and nothing is cut short with an ellipsis: a
    terminal is narrow, and a truncated key or value is worse than a wrapped one."""
    from rich.table import Table
    from rich.text import Text  # plain text: a "[red]" in a run's setting is not markup

    header, body = cells(cmp)
    short = cmp.short_names()
    t = Table()
    for c, h, right in zip(cmp.columns, header, right_aligned(cmp), strict=True):
        title = short[c.key[4:]] if c.key.startswith("set:") and c.key[4:] in short else h
        t.add_column(Text(title), justify="right" if right else "left", overflow="fold",
                     no_wrap=c.key in ("run", "name"))
    for row in body:
        t.add_row(*(Text(c) for c in row))
    return t


def md_escape(text: str) -> str:
    """Make a string safe inside a Markdown table cell (pipes, newlines, HTML)."""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]],
                   right: Sequence[bool]) -> str:
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def render_markdown(cmp: Comparison) -> str:
    """A GitHub-flavoured Markdown table."""
    header, body = cells(cmp)
    return markdown_table(header, body, right_aligned(cmp))


def render_csv(cmp: Comparison) -> str:
    """Raw numbers (accuracies as fractions), lists as JSON, missing as empty."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([_csv_name(c.key) for c in cmp.columns])
    for r in cmp.rows:
        row = []
        for c in cmp.columns:
            v = r.get(c.key)
            if v is None or v is MISSING:
                row.append("")
            elif c.kind == "setting" and (isinstance(v, bool) or not isinstance(v, str | int
                                                                                 | float)):
                row.append(format_value(v))
            else:
                row.append(v)
        w.writerow(row)
    return buf.getvalue()


def _csv_name(key: str) -> str:
    """``set:optim.lr`` -> ``optim.lr``; ``final:test.top1`` -> ``final.test.top1``."""
    prefix, sep, rest = key.partition(":")
    if not sep:
        return key
    return rest if prefix == "set" else f"{prefix}.{rest}"
