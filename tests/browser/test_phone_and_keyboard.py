"""The engineer on a customer's site with a phone, and the agent who works from the keyboard: the pages fit a
phone screen without sideways scrolling, every field has a label, and the work can be done with Tab and Enter."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from playwright.sync_api import Page, expect
from sqlalchemy import select

from app.auth import SYSTEM
from app.engine import now
from app.extensions import db
from app.flows.steps import open_case
from app.processes.service import deploy_path
from app.tasks.models import WorkItem
from tests.browser.people import People
from tests.browser.test_journeys import ROOT

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3, "is_mobile": True, "has_touch": True}

# Form controls a person fills in that no label, aria-label or aria-labelledby names.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML.slice(0, 120))"""
# Elements wider than the screen (what makes a page scroll sideways).
TOO_WIDE = """() => document.documentElement.scrollWidth > window.innerWidth
  ? [...document.querySelectorAll('body *')].filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 5).map(el => el.tagName + '.' + el.className)
  : []"""


@pytest.fixture
def diagnosis_task(app: Flask) -> tuple[int, int]:
    """(case id, diagnosis work item id) of a fault case the hotline opened an hour ago."""
    with app.app_context():
        deploy_path(ROOT / "workflows", actor=SYSTEM)
        case = open_case(actor=SYSTEM, process_id="fault_handling", reported_at=now() - timedelta(hours=1),
                         channel="phone", description="UPS alarm: battery fault, load on bypass; site in the "
                         "basement of building 7, ask for the facilities manager at the gate")
        db.session.commit()
        task_id = db.session.scalar(select(WorkItem.id).where(WorkItem.case_id == case.id,
                                                              WorkItem.task_spec == "diagnose_fault"))
        assert task_id is not None
        return case.id, task_id


def _fits_and_is_labelled(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    assert page.evaluate(TOO_WIDE) == [], f"{path} scrolls sideways on a phone"
    assert page.evaluate(UNLABELLED) == [], f"{path} has fields without a label"


def test_on_a_phone_every_page_fits_the_screen_and_every_field_is_labelled(
        people: People, diagnosis_task: tuple[int, int]) -> None:
    case_id, task_id = diagnosis_task
    people.context_args = {**people.context_args, **PHONE}
    engineer = people("wang.lei", "engineer")
    for path in ("/", f"/tasks/{task_id}", f"/cases/{case_id}", "/cases", "/cases/new"):
        _fits_and_is_labelled(engineer, path)
    engineer.goto(f"/tasks/{task_id}")
    engineer.get_by_role("button", name=re.compile("^Claim")).tap()
    expect(engineer.get_by_text("You claimed")).to_be_visible()
    _fits_and_is_labelled(engineer, f"/tasks/{task_id}")  # now with the record form open to fill in
    admin = people("zhou", "admin")
    for path in ("/admin/timers", "/admin/users"):
        _fits_and_is_labelled(admin, path)


def _tab_to(page: Page, name: re.Pattern[str], limit: int = 80) -> None:
    """Press Tab until the focused element's text or label matches ``name``; each stop must show its focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("""() => {
          const el = document.activeElement, style = getComputedStyle(el);
          const label = (el.labels && el.labels[0] && el.labels[0].innerText) || el.getAttribute('aria-label') || '';
          return {text: (el.innerText || el.value || '') + ' ' + label,
                  ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0
                        || style.boxShadow !== 'none'};
        }""")
        if name.search(focused["text"]):
            assert focused["ring"], f"{focused['text']!r} shows no focus indicator"
            return
    raise AssertionError(f"Tab never reached {name.pattern}")


def test_the_diagnosis_can_be_claimed_and_recorded_with_the_keyboard_alone(
        people: People, diagnosis_task: tuple[int, int]) -> None:
    _, task_id = diagnosis_task
    page = people("li.qiang", "engineer")
    page.goto(f"/tasks/{task_id}")
    _tab_to(page, re.compile(r"^Claim"))
    page.keyboard.press("Enter")
    expect(page.get_by_text("You claimed")).to_be_visible()

    _tab_to(page, re.compile(r"Diagnosis"))
    page.keyboard.type("Battery string 2 open circuit; cabinet fuse replaced by phone guidance.")
    _tab_to(page, re.compile(r"Common fault"))
    page.keyboard.press("Space")
    _tab_to(page, re.compile(r"Cause of the fault"))
    page.keyboard.type("Product")  # type-ahead selects "Product quality problem"
    _tab_to(page, re.compile(r"Remote \("))
    page.keyboard.press("Space")
    _tab_to(page, re.compile(r"^Complete"))
    page.keyboard.press("Enter")
    expect(page.get_by_text("“Diagnose fault” completed.")).to_be_visible()
    expect(page.get_by_role("region", name="History")).to_contain_text("Battery string 2 open circuit")
