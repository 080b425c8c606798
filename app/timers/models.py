"""Timers: every waiting timer event of every case; the database is their source of truth."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import UTCDateTime, db
from app.processes.models import ELEMENT_ID_LENGTH, ELEMENT_NAME_LENGTH, TIMER_KIND_LENGTH

if TYPE_CHECKING:
    from app.cases.models import Case

TIMER_STATES = ("waiting", "fired", "cancelled", "failed")


class Timer(db.Model):  # type: ignore[name-defined,misc]
    """One timer event of a case: when it is due and whether it fired."""

    __tablename__ = "timers"
    __table_args__ = (
        UniqueConstraint("case_id", "task_id", name="uq_timers_case_id_task_id"),
        Index("ix_timers_state_due_at", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # owning case
    task_id: Mapped[str] = mapped_column(String(36))  # engine task uuid of the timer event
    task_spec: Mapped[str] = mapped_column(String(ELEMENT_ID_LENGTH))  # BPMN element id of the timer event
    name: Mapped[str] = mapped_column(String(ELEMENT_NAME_LENGTH))  # BPMN element name, shown as the deadline's name
    kind: Mapped[str] = mapped_column(String(TIMER_KIND_LENGTH))  # date | duration | cycle
    interrupting: Mapped[bool] = mapped_column(default=True)  # cancels its activity when it fires
    attached_task_id: Mapped[str | None] = mapped_column(String(36))  # activity a boundary timer guards
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it is due (fixed by the engine)
    state: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting | fired | cancelled | failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it started waiting
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # when it fired or was cancelled
    # fire time minus due time, for the SLA record; 64-bit: an outage of 25 days is 2^31 ms
    fired_late_by_ms: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(default=0)  # firing attempts that failed
    last_error: Mapped[str | None] = mapped_column(Text)  # why the last attempt failed

    case: Mapped[Case] = relationship("Case", viewonly=True)


class Schedule(db.Model):  # type: ignore[name-defined,misc]
    """A calendar schedule that starts a new case of a process at every occurrence."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    process_id: Mapped[str] = mapped_column(String(100), unique=True)  # process started by it
    process_version_id: Mapped[int] = mapped_column(ForeignKey("process_versions.id"))  # version declaring it
    timer_spec: Mapped[str] = mapped_column(String(100))  # BPMN id of the timer start event
    expression: Mapped[str] = mapped_column(String(200))  # the timeCycle as written (R/start/P1M)
    anchor_at: Mapped[datetime] = mapped_column(UTCDateTime)  # first occurrence; every other is anchor + n periods
    period: Mapped[str] = mapped_column(String(50))  # ISO-8601 period, calendar-aware (P1M, P3M)
    repetitions: Mapped[int | None] = mapped_column()  # None: forever
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)  # next occurrence to start
    active: Mapped[bool] = mapped_column(default=True)  # false once repetitions are used up or replaced
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # last change


class ScheduleOccurrence(db.Model):  # type: ignore[name-defined,misc]
    """One occurrence of a schedule that was started: the unique key makes every occurrence start once."""

    __tablename__ = "schedule_occurrences"
    __table_args__ = (UniqueConstraint("schedule_id", "occurrence_at",
                                       name="uq_schedule_occurrences_schedule_id_occurrence_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"), index=True)  # the schedule
    sequence: Mapped[int] = mapped_column()  # n: occurrence_at = anchor + n periods
    occurrence_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was due
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))  # the case it started
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was started (late after downtime)


class SimulatedClock(db.Model):  # type: ignore[name-defined,misc]
    """The simulated clock's offset from the wall clock: one row (id 1), none meaning zero.

    It lives in the database beside the history it dates, so losing Redis cannot move the clock."""

    __tablename__ = "simulated_clock"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    offset_seconds: Mapped[float] = mapped_column(Float)  # how far the system clock is ahead of the wall clock
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)  # wall-clock time of the last move
    updated_by: Mapped[str] = mapped_column(String(100))  # who moved it
