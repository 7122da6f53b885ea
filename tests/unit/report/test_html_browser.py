"""The HTML report in a real browser: headless Chromium lays it out at 700 and 1400 px wide.

At both widths nothing may stick out sideways (the document is no wider than the viewport: wide
tables scroll inside their card), and the two-up card grid must fold to one column at 700 px and
stay two-up at 1400 px. Skipped, saying why, when no Chromium is installed (`make browser`
installs Debian's).
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from processors.model import Action, SubjectKind
from streams.report.html import render_html
from tests.unit.report.test_report import REMEDIES, build, dead, remedy

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on PATH (`make browser` installs it)")

PROBE = """<script>addEventListener('load', () => {
  const d = document.documentElement, grids = document.querySelectorAll('.grid, .kpis');
  document.body.dataset.probe = [d.scrollWidth, d.clientWidth,
    getComputedStyle(grids[1]).gridTemplateColumns.split(' ').length,
    getComputedStyle(grids[0]).gridTemplateColumns.split(' ').length].join(',');
});</script>"""


def _wide_report():
    """The hand-made report plus what makes pages wide: many services, long ids and errors."""
    services = ["kakaotalk", "emoticon-plus", "melon", "kakaopage", "kakaowebtoon", "kakaotv", "gift",
                "shopping", "daum", "kakao-t", "kakaomap", "kakaopay"]
    extra = [remedy(f"w{i}", Action.PAYOUT, service=s, extend_hours=None, amount_krw=123_456_789,
                    subject_kind=SubjectKind.REPORT, subject_id=f"CASE-{i}") for i, s in enumerate(services)]
    dls = [dead(100 + i, message="unknown service 'kakao-super-long-service-name-" + "x" * 80 + "'")
           for i in range(3)]
    return build(remedies=[(r, 1) for r in REMEDIES + extra], dead_letters=dls, timezone="Asia/Seoul")


def _layout(tmp_path, width: int) -> tuple[int, int, int, int]:
    page = tmp_path / f"report-{width}.html"
    page.write_text(render_html(_wide_report()).replace("</body>", PROBE + "</body>"), encoding="utf-8")
    done = subprocess.run([BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},1000", "--virtual-time-budget=3000", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=180)
    m = re.search(r'data-probe="(\d+),(\d+),(\d+),(\d+)"', done.stdout)
    assert m, f"the page did not lay out in {BROWSER}: {done.stderr[-2000:]}"
    return tuple(int(g) for g in m.groups())


@pytest.mark.parametrize("width,columns", [(700, 1), (1400, 2)])
def test_report_reads_at_700_and_1400_px(tmp_path, width, columns):
    scroll_w, client_w, grid_cols, kpi_cols = _layout(tmp_path, width)
    assert client_w == width
    assert scroll_w <= client_w, f"the page is {scroll_w} px wide in a {client_w} px window"
    assert grid_cols == columns
    assert kpi_cols == (2 if width == 700 else 4)
