"""The HTML report in a real browser: headless Chromium loads it from disk.

No driver package: Chromium's own ``--dump-dom`` prints the page after its load event,
and a small script injected into a *copy* of the report (ahead of the report's
Content-Security-Policy, which forbids scripts after it) writes what it found into the
DOM: each image's ``naturalWidth``, the tables, the section titles. A second script,
placed after the policy, must be blocked: proof that the policy holds. ``--screenshot``
saves the page as a test artifact: ``test-artifacts/report/*.png`` in the repository
root (git-ignored; CI can keep it).

Needs Debian's ``chromium`` (``apt-get install chromium``); skipped without it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "report"

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-extensions", "--hide-scrollbars", "--mute-audio"]

CHECK = """<script>
// A plot area is blank when none of its pixels (legends inside it and a 4-pixel frame
// left out) is ink: a saturated colour or a dark grey, unlike the white background,
// the light grid and the frame.
function inkPixels(img) {
  const areas = JSON.parse(img.dataset.plotAreas || "[]");
  if (!areas.length) return null;
  const W = img.naturalWidth, H = img.naturalHeight;
  const c = document.createElement("canvas");
  c.width = W; c.height = H;
  const ctx = c.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const px = ctx.getImageData(0, 0, W, H).data;
  const rect = b => [b[0] * W, (1 - b[1] - b[3]) * H, (b[0] + b[2]) * W, (1 - b[1]) * H];
  return areas.map(a => {
    const [x0, y0, x1, y1] = rect(a.box);
    const skips = a.skip.map(rect);
    let ink = 0;
    for (let y = Math.ceil(y0 + 4); y < y1 - 4; y++) {
      for (let x = Math.ceil(x0 + 4); x < x1 - 4; x++) {
        if (skips.some(s => x >= s[0] - 2 && x <= s[2] + 2 && y >= s[1] - 2 && y <= s[3] + 2))
          continue;
        const i = 4 * (y * W + x), r = px[i], g = px[i + 1], b = px[i + 2];
        const chroma = Math.max(r, g, b) - Math.min(r, g, b);
        if (chroma > 60 || (r + g + b) / 3 < 140) ink++;
      }
    }
    return ink;
  });
}
window.addEventListener("load", () => {
  const key = document.querySelector("table.comparison th.key");
  const kr = key ? key.getBoundingClientRect() : null;
  const table = key ? key.closest("table").getBoundingClientRect() : null;
  const out = {
    images: [...document.images].map(i => ({w: i.naturalWidth, h: i.naturalHeight,
                                              complete: i.complete, ink: inkPixels(i)})),
    key: kr ? {left: kr.left, right: kr.right, tableRight: table.right,
               viewport: window.innerWidth} : null,
    pageWidth: document.documentElement.scrollWidth,
    tables: [...document.querySelectorAll("table")].map(t => t.rows.length),
    sections: [...document.querySelectorAll("h2, h3")].map(h => h.textContent),
    findings: document.querySelectorAll("p.finding").length,
    scripts: document.scripts.length,
    title: document.title,
  };
  const pre = document.createElement("pre");
  pre.id = "convlab-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""
BLOCKED = '<script>document.title = "pwned";</script>'


def find_chromium() -> str | None:
    for name in (os.environ.get("CONVLAB_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = find_chromium()
# skipped before the shared runs are trained: no cost where there is no browser
pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason="chromium not installed: apt-get install chromium")


def browse(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra,
           page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def inspect(report_html: Path, tmp_path: Path) -> dict[str, Any]:
    text = report_html.read_text()
    assert text.count("<head>") == 1
    probe = text.replace("<head>", "<head>" + CHECK, 1).replace("</body>", BLOCKED + "</body>")
    copy = tmp_path / "probe.html"
    copy.write_text(probe)
    out = browse(copy, tmp_path, "--dump-dom", "--virtual-time-budget=10000",
                 "--window-size=1280,2000")
    m = re.search(r'<pre id="convlab-check">(.*?)</pre>', out.stdout, flags=re.S)
    assert m, f"no check output from chromium (rc {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


REPORTS = {"multi": "multi_report", "single": "single_report",
           "multi-1-epoch": "short_multi_report", "single-1-epoch": "short_single_report"}


@pytest.mark.parametrize("which", list(REPORTS))
def test_report_renders_in_chromium(which: str, request: pytest.FixtureRequest,
                                    tmp_path: Path) -> None:
    files = request.getfixturevalue(REPORTS[which])
    found = inspect(files.html, tmp_path)
    pngs = [p for p in files.figures if p.suffix == ".png"]
    assert len(found["images"]) == len(pngs) >= 2
    assert all(i["complete"] and i["w"] > 100 and i["h"] > 100 for i in found["images"]), found
    # no figure is blank: every plot area of every figure has something drawn in it
    # (a 1-epoch run's curves are points, its one gradient-norm step a marker)
    inks = [i["ink"] for i in found["images"]]
    assert all(ink is not None for ink in inks), inks  # every figure says where its axes are
    assert all(n >= 30 for ink in inks for n in ink), inks
    # the page fits 1280 px, and the key metric column is in view without scrolling
    assert found["pageWidth"] <= 1280
    if which.startswith("multi"):
        key = found["key"]
        assert key is not None and key["right"] <= min(key["tableRight"], key["viewport"]), key
    md_sections = re.findall(r"^##+ (.+)$", files.markdown.read_text(), flags=re.M)
    assert found["sections"] == md_sections
    assert found["findings"] == len(md_sections)  # one sentence per section
    assert len(found["tables"]) >= 2 and all(n >= 2 for n in found["tables"])
    assert found["scripts"] == 2 and found["title"] != "pwned"  # the policy blocked the 2nd

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"report-{which}.png"
    shot.unlink(missing_ok=True)
    out = browse(files.html, tmp_path, f"--screenshot={shot}", "--window-size=1280,3600")
    assert shot.exists(), out.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 3600)
        colours = im.convert("L").getextrema()
        assert colours[0] < 100 < colours[1]  # text and figures drawn, not a blank page


def test_blank_plot_areas_are_caught(tmp_path: Path) -> None:
    """The ink check itself: an empty panel and a line of one point without a marker
    (matplotlib draws nothing for it) read as blank, a marker as drawn; a legend inside
    the panel is not counted as ink."""
    from matplotlib.figure import Figure

    from convlab.report import plots
    from convlab.report.findings import Finding
    from convlab.report.report import Image, Report, Section, render_html

    fig = Figure(figsize=(9, 3), dpi=plots.DPI, layout="constrained")
    empty, dot, marked = (fig.add_subplot(1, 3, i) for i in (1, 2, 3))
    for ax in (empty, dot, marked):
        ax.grid(True, alpha=0.3)
    dot.plot([1.0], [0.5], color="red", label="one point, no marker")
    dot.legend()
    marked.plot([1.0], [0.5], color="red", marker="o")
    png = tmp_path / "panels.png"
    plots.save(fig, png)
    page = tmp_path / "report.html"
    page.write_text(render_html(Report("t", "s", [Section("x", Finding("y"), [
        Image("panels", "three panels", png)])])))
    found = inspect(page, tmp_path)
    (ink,) = [i["ink"] for i in found["images"]]
    assert ink[0] == 0 and ink[1] < 30 <= ink[2], ink
