"""clock.js in real Chromium: the deadline clock keeps ticking on the server's time, turns to "overdue by"
with the class ``overdue`` when the deadline passes, and leaves a page without clocks alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SCRIPT = (Path(__file__).resolve().parents[2] / "app" / "web" / "static" / "js" / "clock.js").read_text()
CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium (Playwright's own browsers are never downloaded)."""
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": ["--disable-gpu"]}


# The server's clock reads 2026-03-03 06:59:30 UTC; the browser's own clock is years away from it.
PAGE = """<!doctype html><html><body data-now="2026-03-03T06:59:30+00:00">
<span id="clock" class="deadline deadline-soon" data-due="2026-03-03T07:00:00+00:00"
      data-text-due="due in {span}" data-text-overdue="overdue by {span}">due in less than 1 min</span>
<span id="missed" class="deadline missed deadline-overdue overdue" data-due="2026-03-03T05:55:00+00:00"
      data-text-due="24 h diagnosis deadline missed by {span}"
      data-text-overdue="24 h diagnosis deadline missed by {span}">24 h diagnosis deadline missed by 1 h 4 min</span>
</body></html>"""


def test_the_clock_ticks_on_the_server_time_into_overdue(page: Any) -> None:
    page.clock.install(time="2030-01-01T00:00:00Z")
    page.set_content(PAGE)
    page.add_script_tag(content=SCRIPT)
    page.clock.run_for(30_000)  # one tick: the server's clock now reads 07:00:00
    page.clock.run_for(3 * 60_000)  # 07:03:00
    clock = page.locator("#clock")
    assert clock.text_content() == "overdue by 3 min"
    assert set(clock.get_attribute("class").split()) == {"deadline", "deadline-overdue", "overdue"}
    assert page.locator("#missed").text_content() == "24 h diagnosis deadline missed by 1 h 8 min"
    assert "missed" in page.locator("#missed").get_attribute("class").split()
