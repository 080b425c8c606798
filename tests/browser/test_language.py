"""The pages in Chinese in a real browser: an engineer switches to 中文, works from a Chinese worklist whose
deadline clock ticks in Chinese, and switches back to English."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from flask import Flask
from playwright.sync_api import expect

from app.auth import SYSTEM
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.processes.service import deploy_path
from tests.browser.people import People

ROOT = Path(__file__).resolve().parents[2]


def test_an_engineer_switches_to_chinese_and_back(people: People, app: Flask) -> None:
    with app.app_context():
        deploy_path(ROOT / "workflows", actor=SYSTEM)
        case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now() - timedelta(hours=1),
                         channel="phone", description="UPS alarm: battery fault, load on bypass")
        db.session.commit()
        number = case.number
    page = people("zhang.wei", "engineer")
    page.clock.install()  # the clock script's timers, moved by the test instead of waited for
    page.goto("/")
    expect(page.get_by_role("heading", name="Worklist", exact=True)).to_be_visible()

    page.get_by_role("button", name="中文").click()
    expect(page.get_by_role("heading", name="工作清单", exact=True)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    row = page.locator("tr.work-item", has_text=number)
    clock = row.locator("[data-due]")
    expect(clock).to_have_text(re.compile(r"^还剩 2[23] 小时( \d+ 分钟)?$"))
    before = clock.inner_text()
    page.clock.run_for(2 * 3600_000)  # two hours on: the script rewrites the clock in Chinese
    expect(clock).not_to_have_text(before)
    expect(clock).to_have_text(re.compile(r"^还剩 2[01] 小时( \d+ 分钟)?$"))
    expect(page.locator("main")).not_to_contain_text("due in")

    page.reload()  # the choice is kept (the user's own, and the cookie)
    expect(page.get_by_role("heading", name="工作清单", exact=True)).to_be_visible()
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Worklist", exact=True)).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("tr.work-item", has_text=number).locator("[data-due]")).to_have_text(
        re.compile(r"^due in \d+ h( \d+ min)?$"))
