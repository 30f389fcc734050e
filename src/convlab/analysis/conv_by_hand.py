"""A 2-D convolution worked out by hand: every output as its sum of products.

What a CNN layer computes (``torch.nn.functional.conv2d``) is a *cross-correlation*::

    y[i, j] = sum_{u, v} x_pad[i*s + u*d, j*s + v*d] * w[u, v]

with dilation ``d`` spreading the kernel's taps ``d`` pixels apart (a span of
``d(k - 1) + 1``; Yu & Koltun, "Multi-scale context aggregation by dilated
convolutions", 2016).

The signal-processing *convolution* flips the kernel first (rotates it by 180 degrees):
``w'[u, v] = w[k_h - 1 - u, k_w - 1 - v]``. The two agree for symmetric kernels (box,
Gaussian, Laplacian) and differ in sign for antisymmetric ones (Sobel).

Arithmetic is exact (``fractions.Fraction``), so a box filter gives ``4/3`` rather than
``1.3333334`` and the printed sums can be checked with pencil and paper.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from convlab.analysis.common import AnalysisError

Matrix = list[list[Fraction]]


def _m(rows: list[list[int]], scale: int = 1) -> Matrix:
    return [[Fraction(v, scale) for v in row] for row in rows]


NAMED_KERNELS: dict[str, Matrix] = {
    # Sobel (1968): a horizontal derivative smoothed vertically, and its transpose.
    "sobel_x": _m([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel_y": _m([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "box3": _m([[1, 1, 1], [1, 1, 1], [1, 1, 1]], 9),  # 3x3 mean
    "gaussian3": _m([[1, 2, 1], [2, 4, 2], [1, 2, 1]], 16),  # binomial approximation
    "laplacian": _m([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),  # 4-neighbour second derivative
}


def parse_matrix(text: str, what: str = "--image") -> Matrix:
    """A matrix from a named kernel, a file, or inline text.

    Inline: rows separated by ``;`` or newlines, entries by spaces or commas, e.g.
    ``"1 0 2; 3 2 0"``; ``[[1, 0], [2, 3]]`` works too. Entries may be integers,
    decimals or fractions (``1/9``). A file holds the same text.
    """
    key = text.strip()
    if key.lower() in NAMED_KERNELS:
        return [row[:] for row in NAMED_KERNELS[key.lower()]]
    if "\n" not in key and ";" not in key and Path(key).is_file():
        try:
            key = Path(key).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise AnalysisError(f"{what} {text}: cannot read the file ({e})") from None
        what = f"{what} {text}"
    return _parse_inline(key, what, text)


def _parse_inline(body: str, what: str, original: str) -> Matrix:
    import re

    body = re.sub(r"\]\s*,\s*\[", ";", body.strip())
    body = body.replace("[", " ").replace("]", " ")
    lines = [ln for ln in re.split(r"[;\n]", body) if ln.strip()]
    if not lines:
        raise AnalysisError(f"{what}: empty matrix; expected rows like '1 0 2; 3 2 0'")
    rows: Matrix = []
    for r, line in enumerate(lines, 1):
        row = []
        for c, tok in enumerate(t for t in re.split(r"[\s,]+", line.strip()) if t):
            try:
                row.append(Fraction(tok))
            except (ValueError, ZeroDivisionError):
                if len(lines) == 1 and re.fullmatch(r"[A-Za-z_~./][\w.\-/~]*", line.strip()):
                    raise AnalysisError(
                        f"{what} {original!r}: not a named kernel ({', '.join(NAMED_KERNELS)}), "
                        f"a file, or a matrix like '1 0 2; 3 2 0'"
                    ) from None
                raise AnalysisError(
                    f"{what}: row {r}, entry {c + 1}: {tok!r} is not a number"
                ) from None
        if not row:
            raise AnalysisError(f"{what}: row {r} is empty; expected numbers like '1 0 2'")
        if rows and len(row) != len(rows[0]):
            raise AnalysisError(
                f"{what}: row {r} has {len(row)} entries but row 1 has {len(rows[0])}; "
                f"every row needs the same number"
            )
        rows.append(row)
    return rows


@dataclass(frozen=True)
class OutputTerm:
    """y[i, j] = sum(a * b for a, b in terms): input values times kernel values."""

    i: int
    j: int
    top: int  # the window's top-left corner in the padded input
    left: int
    terms: list[tuple[Fraction, Fraction]]

    @property
    def value(self) -> Fraction:
        return sum((a * b for a, b in self.terms), Fraction(0))


@dataclass(frozen=True)
class HandConv:
    """Everything needed to print, and to check, a small convolution."""

    image: Matrix
    kernel: Matrix  # as given
    applied: Matrix  # as slid over the image: flipped when ``flip``
    padded: Matrix
    padding: int
    stride: int
    flip: bool
    outputs: list[OutputTerm]
    result: Matrix
    dilation: int = 1


def flip_kernel(w: Matrix) -> Matrix:
    """Rotate by 180 degrees: w'[u, v] = w[k_h - 1 - u, k_w - 1 - v]."""
    return [row[::-1] for row in w[::-1]]


def conv_by_hand(
    image: Matrix, kernel: Matrix, padding: int = 0, stride: int = 1, flip: bool = False,
    dilation: int = 1,
) -> HandConv:
    """Slide ``kernel`` over ``image`` zero-padded by ``padding``, stepping ``stride``,
    its taps ``dilation`` pixels apart.

    Cross-correlation by default (what ``nn.Conv2d`` computes); ``flip=True`` gives the
    convolution of signal processing. Output size per axis: (n + 2p - d(k-1) - 1) // s + 1.
    """
    if padding < 0:
        raise AnalysisError(f"--padding {padding}: expected an integer >= 0")
    if stride < 1:
        raise AnalysisError(f"--stride {stride}: expected an integer >= 1")
    if dilation < 1:
        raise AnalysisError(f"--dilation {dilation}: expected an integer >= 1")
    h, w = len(image), len(image[0])
    kh, kw = len(kernel), len(kernel[0])
    sh, sw = dilation * (kh - 1) + 1, dilation * (kw - 1) + 1  # the dilated kernel's span
    ph, pw = h + 2 * padding, w + 2 * padding
    if sh > ph or sw > pw:
        spans = f" (dilation {dilation} spreads it over {sh}x{sw})" if dilation > 1 else ""
        raise AnalysisError(
            f"the {kh}x{kw} kernel{spans} does not fit in the {ph}x{pw} padded image "
            f"({h}x{w} + 2*{padding}); use a smaller kernel or more padding"
        )
    zero = Fraction(0)
    padded = [[zero] * pw for _ in range(ph)]
    for r in range(h):
        for c in range(w):
            padded[r + padding][c + padding] = image[r][c]
    applied = flip_kernel(kernel) if flip else kernel
    oh, ow = (ph - sh) // stride + 1, (pw - sw) // stride + 1  # floor((n+2p-d(k-1)-1)/s)+1
    outputs, result = [], []
    for i in range(oh):
        row = []
        for j in range(ow):
            top, left = i * stride, j * stride
            terms = [(padded[top + u * dilation][left + v * dilation], applied[u][v])
                     for u in range(kh) for v in range(kw)]
            out = OutputTerm(i, j, top, left, terms)
            outputs.append(out)
            row.append(out.value)
        result.append(row)
    return HandConv(image, kernel, applied, padded, padding, stride, flip, outputs, result,
                    dilation)


# ------------------------------------------------------------------ rendering


def fmt_number(q: Fraction) -> str:
    """3, -0.25, 1/9: an integer, a short exact decimal, or else a fraction."""
    if q.denominator == 1:
        return str(q.numerator)
    f = float(q)
    if Fraction(repr(f)) == q and len(repr(f)) <= 7:
        return repr(f)
    return f"{q.numerator}/{q.denominator}"


def format_matrix(m: Matrix, indent: str = "  ") -> str:
    """Right-aligned columns, one row per line."""
    cells = [[fmt_number(v) for v in row] for row in m]
    width = max(len(c) for row in cells for c in row)
    return "\n".join(indent + " ".join(c.rjust(width) for c in row) for row in cells)


def _factor(v: Fraction) -> str:
    s = fmt_number(v)
    return f"({s})" if s.startswith("-") or "/" in s else s


def format_term(o: OutputTerm) -> str:
    """``y[0,0] = 1*0 + 0*1 + ... = 4``."""
    products = " + ".join(f"{_factor(a)}*{_factor(b)}" for a, b in o.terms)
    return f"y[{o.i},{o.j}] = {products} = {fmt_number(o.value)}"


def render(hc: HandConv) -> str:
    """The whole worked example as plain text."""
    h, w = len(hc.image), len(hc.image[0])
    kh, kw = len(hc.kernel), len(hc.kernel[0])
    oh, ow = len(hc.result), len(hc.result[0])
    op = ("convolution (kernel flipped by 180 degrees)" if hc.flip
          else "cross-correlation (what nn.Conv2d computes; --flip for convolution)")
    d = hc.dilation
    span_h = f"{kh}" if d == 1 else f"{d}*({kh} - 1) - 1"
    span_w = f"{kw}" if d == 1 else f"{d}*({kw} - 1) - 1"
    lines = [
        f"{op}: {h}x{w} input, {kh}x{kw} kernel, padding {hc.padding}, stride {hc.stride}"
        + (f", dilation {d}" if d > 1 else ""),
        f"output size: ({h} + 2*{hc.padding} - {span_h}) // {hc.stride} + 1 = {oh} rows, "
        f"({w} + 2*{hc.padding} - {span_w}) // {hc.stride} + 1 = {ow} columns",
        "",
        f"padded input ({len(hc.padded)}x{len(hc.padded[0])}):",
        format_matrix(hc.padded),
        "",
        "kernel:",
        format_matrix(hc.kernel),
    ]
    if hc.flip:
        lines += ["", "kernel flipped (as applied):", format_matrix(hc.applied)]
    taps = "" if d == 1 else f"; taps {d} apart"
    lines += ["", f"sums of products (window top-left at padded row i*s, column j*s{taps}):"]
    lines += [format_term(o) for o in hc.outputs]
    lines += ["", f"result ({oh}x{ow}):", format_matrix(hc.result)]
    return "\n".join(lines) + "\n"
