"""Browser tests: the app served on a real port, driven by Playwright in Debian's Chromium.

One Chromium per test session (pytest-playwright's ``browser``), a new context per person per test. The live
server runs in a thread of this process on the session's test app, so it shares the database (committed
data only: every request of the server is its own unit of work, and the suite empties the tables after each
test) and the simulated clock. When a test fails, a screenshot and the HTML of every page it opened are
saved under ``test-artifacts/`` and the failure output names the files.

Chromium comes from Debian (``apt-get install -y chromium``), never from ``playwright install``. Without
``/usr/bin/chromium`` these tests are skipped locally with a message saying how to install it; under
``CI=true`` a missing Chromium fails them.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Browser, Page
from werkzeug.serving import BaseWSGIServer, make_server

from tests.browser.people import People

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("SERVICECASE_CHROMIUM", "/usr/bin/chromium"))  # Debian's; another for a try-out
ARTIFACTS = ROOT / "test-artifacts"
INSTALL_HINT = ("install Debian's Chromium with `sudo apt-get install -y chromium` "
                "(never `playwright install`); .ci/run does it when run as root")
_PAGES = pytest.StashKey[list[tuple[str, Page]]]()
_SKIPPED = pytest.StashKey[int]()


def _in_browser_tests(item: pytest.Item) -> bool:
    return Path(str(item.path)).is_relative_to(Path(__file__).parent)


def _on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without Chromium, skip the browser tests locally (with how to install it); under CI=true they run
    and fail in their set-up, since a missing browser there is a broken CI image, not a choice."""
    if CHROMIUM.exists() or _on_ci():
        return
    marker = pytest.mark.skip(reason=f"browser tests need {CHROMIUM}: {INSTALL_HINT}")
    skipped = 0
    for item in items:
        if _in_browser_tests(item):
            item.add_marker(marker)
            skipped += 1
    config.stash[_SKIPPED] = skipped


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Say plainly that the browser tests did not run, and how to make them run."""
    skipped = config.stash.get(_SKIPPED, 0)
    if skipped:
        terminalreporter.write_line(f"{skipped} browser test(s) skipped: {CHROMIUM} is missing; {INSTALL_HINT}.",
                                    yellow=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failed test (or set-up), save a screenshot and the HTML of every page it opened, while the pages
    are still open, and name the files in the failure output."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    pages = item.stash.get(_PAGES, [])
    if not pages or not report.failed or call.when == "teardown":
        return
    saved = save_artifacts(item.nodeid, pages)
    report.sections.append(("browser artifacts", "\n".join(saved)))


def save_artifacts(nodeid: str, pages: list[tuple[str, Page]]) -> list[str]:
    """Write ``<test>/<who>.png`` and ``<who>.html`` for each open page; the lines naming what was saved."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for who, page in pages:
        if page.is_closed():
            continue
        stem = folder / re.sub(r"[^A-Za-z0-9_-]+", "_", who)
        try:
            page.screenshot(path=str(stem.with_suffix(".png")), full_page=True)
            stem.with_suffix(".html").write_text(page.content(), encoding="utf-8")
            lines.append(f"{who} at {page.url}: {stem}.png, {stem}.html")
        except Exception as exc:  # a crashed page must not hide the test's own failure
            lines.append(f"{who} at {page.url}: could not be saved ({exc})")
    return lines


# ------------------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium, headless, without sandbox, GPU or background traffic."""
    if not CHROMIUM.exists():
        pytest.fail(f"CI=true but {CHROMIUM} is missing: {INSTALL_HINT}", pytrace=False)
    args = [*browser_type_launch_args.get("args", []),
            "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": args}


class LiveServer:
    """The test app on 127.0.0.1 at a free port, serving from a thread until the session ends."""

    def __init__(self, app: Flask) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


@pytest.fixture(scope="session")
def live_server(app: Flask) -> Iterator[LiveServer]:
    """The session's test app, served over HTTP for the browser."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture(scope="session")
def base_url(live_server: LiveServer) -> str:
    """Where pages are: relative ``page.goto("/")`` goes to the live server."""
    return live_server.url


@pytest.fixture
def people(request: pytest.FixtureRequest, app: Flask, browser: Browser, live_server: LiveServer,
           browser_context_args: dict[str, Any]) -> Iterator[People]:
    """Pages of signed-in people for this test, each in a context of its own (cookies, session)."""
    pages: list[tuple[str, Page]] = []
    request.node.stash[_PAGES] = pages
    opened = People(app, browser, {**browser_context_args, "base_url": live_server.url}, pages)
    yield opened
    opened.close()
