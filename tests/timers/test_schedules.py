"""Calendar-aware schedules: reading cycles, occurrence arithmetic, the schedule a deployment creates, and
starting every occurrence exactly once (on time, after downtime, and with workers racing each other)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import func, select

from app.auth import SYSTEM
from app.cases.models import Case
from app.engine import ManualClock, ProcessDefinitionError, now
from app.errors import ProcessFailedError
from app.extensions import db
from app.flows import schedules as schedule_flow
from app.flows.schedules import start_due_occurrences
from app.processes.models import ProcessVersion
from app.processes.service import deploy_path, deploy_sources
from app.tasks.models import WorkItem
from app.timers import schedules
from app.timers.models import Schedule, ScheduleOccurrence
from app.timers.schedules import MAX_CATCH_UP, arm_schedules, first_index, occurrence, occurrence_label, parse_cycle
from app.timers.scheduling import wall_time_for

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
MONTHLY = '"R/2026-01-01T01:00:00+08:00/P1M"'
CST = datetime.fromisoformat("2026-01-01T00:00:00+08:00").tzinfo  # China Standard Time, the anchors' offset


def cst(year: int, month: int, day: int = 1, hour: int = 1) -> datetime:
    """A moment written in +08:00, as the BPMN anchors are, returned in UTC."""
    return datetime(year, month, day, hour, tzinfo=CST).astimezone(UTC)


APRIL = cst(2026, 4)  # 2026-03-31T17:00Z: the first monthly and quarterly occurrence after T0 (2 March)


# -- fixtures and helpers --------------------------------------------------------------------------
@pytest.fixture
def scheduled(clock: ManualClock, ctx: Flask) -> Flask:
    """Every process of workflows/ deployed at T0 (2 March 2026 08:00 UTC)."""
    deploy_path(WORKFLOWS, actor=SYSTEM)
    db.session.commit()
    return ctx


def schedule_of(process_id: str) -> Schedule:
    """The process's schedule, read afresh."""
    found = db.session.scalar(select(Schedule).where(Schedule.process_id == process_id)
                              .execution_options(populate_existing=True))
    assert found is not None, f"no schedule for {process_id}"
    return found


def cases_of(process_id: str) -> list[Case]:
    """The process's cases, oldest occurrence first."""
    return list(db.session.scalars(select(Case).where(Case.process_id == process_id)
                                   .order_by(Case.reported_at, Case.id)))


def occurrences_of(process_id: str) -> list[ScheduleOccurrence]:
    """The started occurrences of the process's schedule, oldest first."""
    return list(db.session.scalars(
        select(ScheduleOccurrence).join(Schedule, Schedule.id == ScheduleOccurrence.schedule_id)
        .where(Schedule.process_id == process_id).order_by(ScheduleOccurrence.occurrence_at)))


def deploy_variant(process_id: str, *replacements: tuple[str, str]) -> ProcessVersion:
    """Deploy workflows/<process_id>.bpmn with text replaced (each replacement must apply)."""
    source = (WORKFLOWS / f"{process_id}.bpmn").read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in source, old
        source = source.replace(old, new)
    (deployment,) = deploy_sources([(f"{process_id}.bpmn", source.encode())], actor=SYSTEM)
    db.session.commit()
    return deployment.version


def snapshot(schedule: Schedule) -> dict[str, Any]:
    """Every column of a schedule."""
    return {c.name: getattr(schedule, c.key) for c in Schedule.__table__.columns}


# -- parse_cycle -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "anchor", "period", "months", "span", "repetitions"), [
    ("R/2026-01-01T01:00:00+08:00/P1M", "2026-01-01T01:00:00+08:00", "P1M", 1, timedelta(0), None),
    ("  R12/2026-01-31T00:00:00Z/P1M ", "2026-01-31T00:00:00+00:00", "P1M", 1, timedelta(0), 12),
    ("R/2026-01-01T00:00:00+00:00/P3M", "2026-01-01T00:00:00+00:00", "P3M", 3, timedelta(0), None),
    ("R4/2026-01-01T00:00:00-05:00/P1Y", "2026-01-01T00:00:00-05:00", "P1Y", 12, timedelta(0), 4),
    ("R/2026-03-02T08:00:00Z/P1D", "2026-03-02T08:00:00+00:00", "P1D", 0, timedelta(days=1), None),
    ("R/2026-03-02T08:00:00Z/PT12H", "2026-03-02T08:00:00+00:00", "PT12H", 0, timedelta(hours=12), None),
    ("R/2026-03-02T08:00:00Z/P2W", "2026-03-02T08:00:00+00:00", "P2W", 0, timedelta(weeks=2), None),
    ("R2/2026-03-02T08:00:00Z/P1Y2M10DT2H30M5S", "2026-03-02T08:00:00+00:00", "P1Y2M10DT2H30M5S", 14,
     timedelta(days=10, hours=2, minutes=30, seconds=5), 2),
])
def test_parse_cycle_reads_iso_repeating_intervals(text: str, anchor: str, period: str, months: int,
                                                   span: timedelta, repetitions: int | None) -> None:
    cycle = parse_cycle(text)
    assert cycle.anchor == datetime.fromisoformat(anchor)
    assert cycle.anchor.utcoffset() == datetime.fromisoformat(anchor).utcoffset()  # its own offset is kept
    assert (cycle.period, cycle.months, cycle.span, cycle.repetitions) == (period, months, span, repetitions)
    assert cycle.text == text.strip()


@pytest.mark.parametrize(("text", "message"), [
    ("", "three parts"),
    ("P1M", "three parts"),
    ("R/P1M", "three parts"),
    ("R/2026-01-01T00:00:00+08:00/P1M/P1M", "three parts"),
    ("X/2026-01-01T00:00:00+08:00/P1M", "must begin with R"),
    ("R-1/2026-01-01T00:00:00+08:00/P1M", "must begin with R"),
    ("R0/2026-01-01T00:00:00+08:00/P1M", "R0"),
    ("R/P1M/2026-01-01T00:00:00+08:00", "needs a start"),
    ("R/2026-01-01T00:00:00/P1M", "no UTC offset"),
    ("R/2026-01-01/P1M", "no UTC offset"),
    ("R/first of January/P1M", "not an ISO-8601 date"),
    ("R/2026-01-01T00:00:00Z/2026-02-01T00:00:00Z", "must end with a period"),
    ("R/2026-01-01T00:00:00Z/P", "not an ISO-8601 period"),
    ("R/2026-01-01T00:00:00Z/PT", "not an ISO-8601 period"),
    ("R/2026-01-01T00:00:00Z/P1DT", "not an ISO-8601 period"),
    ("R/2026-01-01T00:00:00Z/P1.5M", "whole numbers"),
    ("R/2026-01-01T00:00:00Z/PM1", "not an ISO-8601 period"),
    ("R/2026-01-01T00:00:00Z/P0D", "is zero"),
    ("R/2026-01-01T00:00:00Z/PT0S", "is zero"),
])
def test_parse_cycle_refuses_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cycle(text)


def test_parse_cycle_refuses_what_is_not_text() -> None:
    with pytest.raises(ValueError, match="must be text"):
        parse_cycle(42)  # type: ignore[arg-type]


# -- occurrence arithmetic -------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "n", "expected"), [
    # the 31st: clamped to the month's length, and back to the 31st when the month has one
    ("R/2026-01-31T09:00:00Z/P1M", 0, "2026-01-31T09:00:00+00:00"),
    ("R/2026-01-31T09:00:00Z/P1M", 1, "2026-02-28T09:00:00+00:00"),
    ("R/2026-01-31T09:00:00Z/P1M", 2, "2026-03-31T09:00:00+00:00"),
    ("R/2026-01-31T09:00:00Z/P1M", 3, "2026-04-30T09:00:00+00:00"),
    ("R/2026-01-31T09:00:00Z/P1M", 13, "2027-02-28T09:00:00+00:00"),
    ("R/2028-01-31T09:00:00Z/P1M", 1, "2028-02-29T09:00:00+00:00"),  # leap year
    ("R/2027-12-31T09:00:00Z/P2M", 1, "2028-02-29T09:00:00+00:00"),
    ("R/2099-12-31T09:00:00Z/P2M", 1, "2100-02-28T09:00:00+00:00"),  # 2100 is not a leap year
    ("R/2399-12-31T09:00:00Z/P2M", 1, "2400-02-29T09:00:00+00:00"),  # 2400 is
    # 29 February, yearly
    ("R/2024-02-29T12:00:00Z/P1Y", 1, "2025-02-28T12:00:00+00:00"),
    ("R/2024-02-29T12:00:00Z/P1Y", 3, "2027-02-28T12:00:00+00:00"),
    ("R/2024-02-29T12:00:00Z/P1Y", 4, "2028-02-29T12:00:00+00:00"),
    # quarters are three calendar months
    ("R/2026-01-01T01:00:00+08:00/P3M", 1, "2026-04-01T01:00:00+08:00"),
    ("R/2026-01-01T01:00:00+08:00/P3M", 2, "2026-07-01T01:00:00+08:00"),
    ("R/2026-01-01T01:00:00+08:00/P3M", 3, "2026-10-01T01:00:00+08:00"),
    ("R/2026-01-01T01:00:00+08:00/P3M", 4, "2027-01-01T01:00:00+08:00"),
    ("R/2025-11-30T10:00:00Z/P3M", 1, "2026-02-28T10:00:00+00:00"),
    # fixed lengths; months before days
    ("R/2026-03-02T08:00:00Z/P1D", 30, "2026-04-01T08:00:00+00:00"),
    ("R/2026-03-02T00:00:00Z/PT12H", 3, "2026-03-03T12:00:00+00:00"),
    ("R/2026-03-02T08:00:00Z/P2W", 2, "2026-03-30T08:00:00+00:00"),
    ("R/2026-01-31T00:00:00Z/P1M1D", 1, "2026-03-01T00:00:00+00:00"),
])
def test_occurrence_is_anchor_plus_n_calendar_periods(text: str, n: int, expected: str) -> None:
    moment = occurrence(parse_cycle(text), n)
    assert moment == datetime.fromisoformat(expected)
    assert moment.tzinfo is UTC


def test_months_are_added_in_the_anchors_offset_not_in_utc() -> None:
    cycle = parse_cycle("R/2026-01-31T01:00:00+08:00/P1M")
    assert cycle.anchor.astimezone(UTC).date() == date(2026, 1, 30)  # in UTC it is still the 30th
    assert occurrence(cycle, 1) == cst(2026, 2, 28)  # 28 February 01:00 +08:00 = 27 February 17:00 UTC
    # Adding the month in UTC instead (30 Jan 17:00Z -> 28 Feb 17:00Z) would land on 1 March in +08:00.
    assert occurrence(cycle, 1) != datetime(2026, 2, 28, 17, tzinfo=UTC)
    assert occurrence(cycle, 2) == cst(2026, 3, 31)
    first_of_month = parse_cycle(MONTHLY.strip('"'))
    assert first_of_month.anchor.astimezone(UTC) == datetime(2025, 12, 31, 17, tzinfo=UTC)
    for n in range(1, 13):
        local = occurrence(first_of_month, n).astimezone(CST)
        assert (local.day, local.hour) == (1, 1), n


def test_no_drift_over_24_months_where_spiffworkflow_freezes_p1m_into_31_days() -> None:
    text = MONTHLY.strip('"')
    cycle = parse_cycle(text)
    cycles, start, duration = TimerEventDefinition.parse_iso_recurring_interval(text)
    assert (cycles, duration) == (-1, timedelta(days=31))  # SpiffWorkflow: January's length, for ever
    spiff = [(start + n * duration).astimezone(CST) for n in range(25)]
    ours = [occurrence(cycle, n).astimezone(CST) for n in range(25)]
    for n, local in enumerate(ours):
        assert (local.year, local.month, local.day, local.hour, local.minute) == (
            2026 + n // 12, n % 12 + 1, 1, 1, 0), n
    assert spiff[1] == ours[1]  # right once, by the luck of January's 31 days...
    assert spiff[2].date() == date(2026, 3, 4)  # ...then 1 February + 31 days = 4 March
    assert spiff[12].date() == date(2027, 1, 8)  # a year of "months" is 372 days
    assert spiff[24] - ours[24] == timedelta(days=14)  # two years on, the "monthly" run is two weeks late
    assert [s.day for s in spiff].count(1) == 2


def test_occurrences_outside_the_cycle_are_refused() -> None:
    limited = parse_cycle("R3/2026-01-01T00:00:00Z/P1M")
    assert occurrence(limited, 2) == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="no occurrence 3"):
        occurrence(limited, 3)
    with pytest.raises(ValueError, match="no occurrence -1"):
        occurrence(parse_cycle(MONTHLY.strip('"')), -1)


def test_first_index_finds_the_next_occurrence_at_or_after_a_moment() -> None:
    cycle = parse_cycle(MONTHLY.strip('"'))
    assert first_index(cycle, datetime(2020, 1, 1, tzinfo=UTC)) == 0
    assert first_index(cycle, APRIL) == 3
    assert first_index(cycle, APRIL, strictly_after=True) == 4
    assert first_index(cycle, APRIL - timedelta(seconds=1)) == 3
    assert first_index(cycle, APRIL + timedelta(seconds=1)) == 4
    assert first_index(cycle, cst(2046, 1)) == 240
    for n in range(0, 300, 7):  # the estimate never overshoots nor stops short
        at = occurrence(cycle, n)
        assert first_index(cycle, at) == n
        assert first_index(cycle, at - timedelta(microseconds=1)) == n
        assert first_index(cycle, at, strictly_after=True) == n + 1
    limited = parse_cycle("R2/2026-01-01T00:00:00Z/P1D")
    assert first_index(limited, datetime(2026, 1, 2, tzinfo=UTC)) == 1
    assert first_index(limited, datetime(2026, 1, 2, 0, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(("text", "n", "label"), [
    (MONTHLY.strip('"'), 0, "January 2026"),
    (MONTHLY.strip('"'), 3, "April 2026"),  # 31 March 17:00 UTC is 1 April in the anchor's offset
    ("R/2026-01-01T01:00:00+08:00/P3M", 1, "2026 Q2"),
    ("R/2026-01-01T01:00:00+08:00/P3M", 4, "2027 Q1"),
    ("R/2026-01-01T00:00:00Z/P1Y", 1, "2027"),
    ("R/2026-03-02T08:00:00+08:00/P1D", 1, "3 March 2026"),
    ("R/2026-03-02T08:00:00Z/PT12H", 1, "2 March 2026 20:00 (UTC+0000)"),
])
def test_occurrences_are_named_as_people_name_them(text: str, n: int, label: str) -> None:
    cycle = parse_cycle(text)
    assert occurrence_label(cycle, occurrence(cycle, n)) == label


# -- deploy time -----------------------------------------------------------------------------------
def test_deploying_workflows_creates_the_two_schedules(scheduled: Flask) -> None:
    rows = {s.process_id: s for s in db.session.scalars(select(Schedule))}
    assert set(rows) == {"monthly_inspection", "return_visit"}  # fault handling has no start timer
    monthly, visits = rows["monthly_inspection"], rows["return_visit"]
    latest = {v.process_id: v.id for v in db.session.scalars(select(ProcessVersion))}
    assert (monthly.timer_spec, monthly.expression, monthly.period, monthly.repetitions) == (
        "monthly_inspection_due", "R/2026-01-01T01:00:00+08:00/P1M", "P1M", None)
    assert (visits.timer_spec, visits.expression, visits.period, visits.repetitions) == (
        "return_visits_due", "R/2026-01-01T01:00:00+08:00/P3M", "P3M", None)
    for schedule in (monthly, visits):
        assert schedule.process_version_id == latest[schedule.process_id]
        assert schedule.anchor_at == datetime(2025, 12, 31, 17, tzinfo=UTC)
        assert schedule.active
        # Deployed on 2 March: the next occurrence of both is 1 April 01:00 +08:00 (May would be wrong,
        # and so would March: a new schedule does not start the period already running).
        assert schedule.next_due_at == APRIL
        assert schedule.updated_at == now()


def test_a_new_schedule_does_not_start_the_period_already_running(scheduled: Flask) -> None:
    assert start_due_occurrences() == 0
    assert db.session.scalar(select(func.count()).select_from(Case)) == 0


def test_redeploying_identical_content_changes_nothing(scheduled: Flask, clock: ManualClock) -> None:
    before = {p: snapshot(schedule_of(p)) for p in ("monthly_inspection", "return_visit")}
    versions = db.session.scalar(select(func.count()).select_from(ProcessVersion))
    clock.advance(timedelta(days=3))
    results = deploy_path(WORKFLOWS, actor=SYSTEM)
    db.session.commit()
    assert not any(r.created for r in results)
    assert db.session.scalar(select(func.count()).select_from(ProcessVersion)) == versions
    assert {p: snapshot(schedule_of(p)) for p in before} == before


def test_a_new_version_keeps_the_place_and_the_started_occurrences(scheduled: Flask, clock: ManualClock) -> None:
    clock.set(APRIL + timedelta(minutes=1))
    assert start_due_occurrences() == 2
    db.session.commit()
    version = deploy_variant("monthly_inspection", ("Inspection closed", "Inspection finished"))
    monthly = schedule_of("monthly_inspection")
    assert monthly.process_version_id == version.id and version.version == 2
    assert monthly.next_due_at == cst(2026, 5)  # strictly after the last started occurrence (April)
    assert [o.occurrence_at for o in occurrences_of("monthly_inspection")] == [APRIL]
    # A changed cycle keeps the place too: the 15th from now on, without inventing owed work.
    deploy_variant("monthly_inspection", (MONTHLY, '"R/2026-01-15T01:00:00+08:00/P1M"'))
    monthly = schedule_of("monthly_inspection")
    assert (monthly.expression, monthly.next_due_at) == ("R/2026-01-15T01:00:00+08:00/P1M", cst(2026, 4, 15))
    assert len(occurrences_of("monthly_inspection")) == 1


def test_a_version_without_a_start_timer_deactivates_and_a_later_one_revives_without_backlog(
        scheduled: Flask, clock: ManualClock) -> None:
    timer = ('<bpmn:timerEventDefinition id="monthly_inspection_due_timer">\n'
             f'        <bpmn:timeCycle xsi:type="bpmn:tFormalExpression">{MONTHLY}</bpmn:timeCycle>\n'
             '      </bpmn:timerEventDefinition>')
    deploy_variant("monthly_inspection", (timer, ""))
    monthly = schedule_of("monthly_inspection")
    assert (monthly.active, monthly.next_due_at) == (False, None)
    clock.set(cst(2026, 6, 15))
    assert start_due_occurrences() == 1  # the quarterly visits (Q2) only: the monthly schedule is off
    db.session.commit()
    assert cases_of("monthly_inspection") == []
    deploy_variant("monthly_inspection", ("Inspection closed", "Inspection finished"))
    monthly = schedule_of("monthly_inspection")
    assert (monthly.active, monthly.next_due_at) == (True, cst(2026, 7))  # April to June were never owed
    assert start_due_occurrences() == 0


@pytest.mark.parametrize(("expression", "message"), [
    ('"R/2026-01-01T01:00:00/P1M"', "no UTC offset"),
    ('"R/2026-01-01T01:00:00+08:00/P1.5M"', "whole numbers"),
    ('"R/P1M"', "three parts"),
    ("inspection_cycle", "no process data before a process starts"),
    ("42", "gives int"),
    ('"R/2026-01-01T01:00:00+08:00/" + "P1M" * 100', "longer than 200"),
])
def test_an_unreadable_cycle_refuses_the_whole_deployment(scheduled: Flask, expression: str,
                                                          message: str) -> None:
    before = snapshot(schedule_of("monthly_inspection"))
    versions = db.session.scalar(select(func.count()).select_from(ProcessVersion))
    visits = (WORKFLOWS / "return_visit.bpmn").read_text().replace("Return visits closed", "Visits closed")
    monthly = (WORKFLOWS / "monthly_inspection.bpmn").read_text().replace(MONTHLY, expression)
    with pytest.raises(ProcessDefinitionError, match=message) as caught:
        deploy_sources([("return_visit.bpmn", visits.encode()), ("monthly_inspection.bpmn", monthly.encode()),
                        ("quality_judgement.bpmn", (WORKFLOWS / "quality_judgement.bpmn").read_bytes())],
                       actor=SYSTEM)
    assert (caught.value.filename, caught.value.element_id) == ("monthly_inspection.bpmn", "monthly_inspection_due")
    db.session.rollback()  # as every deploying caller does: nothing of the deployment is kept
    assert db.session.scalar(select(func.count()).select_from(ProcessVersion)) == versions
    assert snapshot(schedule_of("monthly_inspection")) == before


def test_a_start_timer_must_be_a_cycle(scheduled: Flask) -> None:
    cycle = f'<bpmn:timeCycle xsi:type="bpmn:tFormalExpression">{MONTHLY}</bpmn:timeCycle>'
    date_timer = '<bpmn:timeDate xsi:type="bpmn:tFormalExpression">"2026-04-01T01:00:00+08:00"</bpmn:timeDate>'
    with pytest.raises(ProcessDefinitionError, match="must use timeCycle"):
        deploy_variant("monthly_inspection", (cycle, date_timer))


def test_a_cycle_with_repetitions_ends(scheduled: Flask, clock: ManualClock) -> None:
    deploy_variant("monthly_inspection", (MONTHLY, '"R2/2026-04-01T01:00:00+08:00/P1M"'))
    assert schedule_of("monthly_inspection").next_due_at == APRIL
    clock.set(cst(2026, 8, 15))
    start_due_occurrences()
    db.session.commit()
    assert [c.reported_at for c in cases_of("monthly_inspection")] == [APRIL, cst(2026, 5)]
    monthly = schedule_of("monthly_inspection")
    assert (monthly.active, monthly.next_due_at) == (False, None)


# -- starting occurrences --------------------------------------------------------------------------
def test_at_the_occurrence_one_case_is_opened_per_schedule_and_only_once(scheduled: Flask,
                                                                         clock: ManualClock) -> None:
    clock.set(APRIL - timedelta(seconds=1))
    assert start_due_occurrences() == 0
    clock.set(APRIL)
    assert start_due_occurrences() == 2
    db.session.commit()
    (inspection,) = cases_of("monthly_inspection")
    (visits,) = cases_of("return_visit")
    assert inspection.title == "Monthly inspection — April 2026"
    assert visits.title == "Quarterly return visits — 2026 Q2"
    for case in (inspection, visits):
        assert (case.reported_at, case.channel, case.opened_by, case.status) == (APRIL, "schedule", "system", "open")
    items = db.session.scalars(select(WorkItem.task_spec).where(WorkItem.case_id == inspection.id)).all()
    assert items == ["inspect_operating_data"]
    (row,) = occurrences_of("monthly_inspection")
    assert (row.sequence, row.occurrence_at, row.case_id, row.started_at) == (3, APRIL, inspection.id, APRIL)
    assert schedule_of("monthly_inspection").next_due_at == cst(2026, 5)
    assert schedule_of("return_visit").next_due_at == cst(2026, 7)
    assert start_due_occurrences() == 0
    clock.advance(timedelta(days=7))
    assert start_due_occurrences() == 0
    assert db.session.scalar(select(func.count()).select_from(Case)) == 2


def test_after_a_four_month_outage_every_missed_occurrence_starts_once_at_most_three_per_call(
        scheduled: Flask, clock: ManualClock) -> None:
    assert MAX_CATCH_UP == 3
    clock.set(cst(2026, 7, 20))  # down from 2 March: April, May, June and July inspections, Q2 and Q3 visits
    owed = [cst(2026, 4), cst(2026, 5), cst(2026, 6), cst(2026, 7)]
    assert start_due_occurrences() == MAX_CATCH_UP + 2
    db.session.commit()
    assert [c.reported_at for c in cases_of("monthly_inspection")] == owed[:MAX_CATCH_UP]
    assert [c.reported_at for c in cases_of("return_visit")] == [cst(2026, 4), cst(2026, 7)]
    assert schedule_of("monthly_inspection").next_due_at == owed[MAX_CATCH_UP]
    assert start_due_occurrences() == 1
    db.session.commit()
    assert start_due_occurrences() == 0
    db.session.commit()
    inspections = cases_of("monthly_inspection")
    assert [c.reported_at for c in inspections] == owed
    months = ("April", "May", "June", "July")
    assert [c.title for c in inspections] == [f"Monthly inspection — {m} 2026" for m in months]
    assert "Started late" in inspections[0].description
    rows = occurrences_of("monthly_inspection")
    assert [(r.occurrence_at, r.case_id) for r in rows] == [(c.reported_at, c.id) for c in inspections]
    assert schedule_of("monthly_inspection").next_due_at == cst(2026, 8)
    assert schedule_of("return_visit").next_due_at == cst(2026, 10)


def test_limit_caps_one_call_across_schedules(scheduled: Flask, clock: ManualClock) -> None:
    clock.set(cst(2026, 7, 20))
    assert start_due_occurrences(limit=1) == 1
    assert start_due_occurrences(limit=4) == 4
    assert start_due_occurrences(limit=50) == 1
    assert start_due_occurrences() == 0


def test_an_occurrence_started_elsewhere_is_skipped_not_duplicated(scheduled: Flask, clock: ManualClock) -> None:
    """Another worker started April and committed, but its move of next_due_at was lost (or not yet seen)."""
    monthly = schedule_of("monthly_inspection")
    db.session.add(ScheduleOccurrence(schedule_id=monthly.id, sequence=3, occurrence_at=APRIL, case_id=None,
                                      started_at=APRIL))
    db.session.commit()
    clock.set(cst(2026, 5, 2))
    assert start_due_occurrences() == 2  # May inspection and the Q2 visits; April is not started again
    db.session.commit()
    assert [c.reported_at for c in cases_of("monthly_inspection")] == [cst(2026, 5)]
    assert [r.occurrence_at for r in occurrences_of("monthly_inspection")] == [APRIL, cst(2026, 5)]


def test_a_worker_losing_the_race_for_an_occurrence_skips_it(app: Flask, scheduled: Flask,
                                                           clock: ManualClock) -> None:
    """A rival worker has inserted (not yet committed) the April occurrence when this one reaches it: this
    one waits for the rival's transaction, gets the unique-key violation and skips April."""
    clock.set(APRIL + timedelta(minutes=1))
    schedule_id = schedule_of("monthly_inspection").id
    db.session.commit()
    inserted, release = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def rival() -> None:
        try:
            with app.app_context():
                db.session.add(ScheduleOccurrence(schedule_id=schedule_id, sequence=3, occurrence_at=APRIL,
                                                  case_id=None, started_at=now()))
                db.session.flush()
                inserted.set()
                release.wait(10)
                db.session.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
            inserted.set()

    thread = threading.Thread(target=rival)
    thread.start()
    assert inserted.wait(10)
    releaser = threading.Timer(0.5, release.set)
    releaser.start()
    try:
        started = start_due_occurrences()
        db.session.commit()
    finally:
        release.set()
        thread.join(10)
        releaser.cancel()
    assert not failures
    assert started == 1  # only the quarterly visits
    assert cases_of("monthly_inspection") == []
    assert len(occurrences_of("monthly_inspection")) == 1  # the rival's
    # This worker did handle the schedule (it was not merely skipped as locked): it moved on to May.
    assert schedule_of("monthly_inspection").next_due_at == cst(2026, 5)


def test_concurrent_sweeps_start_every_occurrence_exactly_once(app: Flask, scheduled: Flask,
                                                               clock: ManualClock) -> None:
    clock.set(cst(2026, 12, 20))  # April to December inspections (9), Q2 to Q4 visits (3)
    db.session.commit()
    workers = 3
    started: list[int] = []
    failures: list[BaseException] = []
    for _ in range(6):
        barrier = threading.Barrier(workers)

        def sweep(barrier: threading.Barrier = barrier) -> None:
            try:
                with app.app_context():
                    barrier.wait(10)
                    count = start_due_occurrences()
                    db.session.commit()
                    started.append(count)
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failures.append(exc)

        threads = [threading.Thread(target=sweep) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert not failures
    assert sum(started) == 12
    inspections = cases_of("monthly_inspection")
    assert [c.reported_at for c in inspections] == [cst(2026, m) for m in range(4, 13)]
    assert [c.reported_at for c in cases_of("return_visit")] == [cst(2026, 4), cst(2026, 7), cst(2026, 10)]
    rows = occurrences_of("monthly_inspection") + occurrences_of("return_visit")
    assert len(rows) == 12 and all(r.case_id is not None for r in rows)
    assert start_due_occurrences() == 0


def test_a_failing_start_is_retried_and_does_not_block_other_schedules(
        scheduled: Flask, clock: ManualClock, monkeypatch: pytest.MonkeyPatch) -> None:
    real_open_case = schedule_flow.open_case

    def open_case(**kwargs: Any) -> Case:
        if kwargs["process_id"] == "monthly_inspection":
            raise ProcessFailedError("the process could not start: boom")
        return real_open_case(**kwargs)

    monkeypatch.setattr(schedule_flow, "open_case", open_case)
    clock.set(APRIL + timedelta(minutes=1))
    assert start_due_occurrences() == 1
    db.session.commit()
    assert occurrences_of("monthly_inspection") == []  # the claim was rolled back with the case
    assert schedule_of("monthly_inspection").next_due_at == APRIL
    monkeypatch.setattr(schedule_flow, "open_case", real_open_case)
    assert start_due_occurrences() == 1
    db.session.commit()
    assert [c.reported_at for c in cases_of("monthly_inspection")] == [APRIL]


# -- arming RQ -------------------------------------------------------------------------------------
@pytest.fixture
def queue() -> Iterator[Queue]:
    """A throw-away RQ queue on the local Redis."""
    connection = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        connection.ping()
    except RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    fresh = Queue(f"test-schedules-{uuid4().hex}", connection=connection)
    yield fresh
    registry = ScheduledJobRegistry(queue=fresh)
    for job_id in registry.get_job_ids():
        registry.remove(job_id, delete_job=True)
    fresh.delete(delete_jobs=True)


def test_arm_schedules_enqueues_a_sweep_at_every_next_occurrence(scheduled: Flask, clock: ManualClock,
                                                                 queue: Queue) -> None:
    monthly, visits = schedule_of("monthly_inspection"), schedule_of("return_visit")
    assert arm_schedules(queue) == 2
    registry = ScheduledJobRegistry(queue=queue)
    ids = {f"schedule-{monthly.id}-3", f"schedule-{visits.id}-1"}
    assert set(registry.get_job_ids()) == ids
    job = Job.fetch(f"schedule-{monthly.id}-3", connection=queue.connection)
    assert job.func_name == schedules.SWEEP_JOB
    assert callable(job.func)  # the job function exists where the constant says
    assert abs(registry.get_scheduled_time(job) - wall_time_for(APRIL)) <= timedelta(seconds=1)
    assert arm_schedules(queue) == 2  # again: the same jobs, not more
    assert set(registry.get_job_ids()) == ids
    clock.set(APRIL)
    assert arm_schedules(queue) == 0  # due now: the running sweep starts them, not a new job
    start_due_occurrences()
    db.session.commit()
    assert arm_schedules(queue) == 2
    assert {f"schedule-{monthly.id}-4", f"schedule-{visits.id}-2"} <= set(registry.get_job_ids())
