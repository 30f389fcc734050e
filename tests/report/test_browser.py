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
window.addEventListener("load", () => {
  const out = {
    images: [...document.images].map(i => ({w: i.naturalWidth, h: i.naturalHeight,
                                              complete: i.complete})),
    tables: [...document.querySelectorAll("table")].map(t => t.rows.length),
    sections: [...document.querySelectorAll("h2")].map(h => h.textContent),
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
    out = browse(copy, tmp_path, "--dump-dom", "--virtual-time-budget=10000")
    m = re.search(r'<pre id="convlab-check">(.*?)</pre>', out.stdout, flags=re.S)
    assert m, f"no check output from chromium (rc {out.returncode}): {out.stderr[-2000:]}"
    return json.loads(html.unescape(m.group(1)))


@pytest.mark.parametrize("which", ["multi", "single"])
def test_report_renders_in_chromium(which: str, multi_report: Any, single_report: Any,
                                    tmp_path: Path) -> None:
    files = multi_report if which == "multi" else single_report
    found = inspect(files.html, tmp_path)
    pngs = [p for p in files.figures if p.suffix == ".png"]
    assert len(found["images"]) == len(pngs) >= 2
    assert all(i["complete"] and i["w"] > 100 and i["h"] > 100 for i in found["images"]), found
    md_sections = re.findall(r"^## (.+)$", files.markdown.read_text(), flags=re.M)
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
