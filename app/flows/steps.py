"""The steps of a case: opening it, and storing what each run of its process changed (work items, timers,
history, status). Orchestration lives here, above the domain services it combines."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select

from app.audit.service import record_event
from app.auth import SYSTEM, TIMER, Actor, require
from app.cases.models import Case
from app.cases.service import new_case
from app.documents.service import make_documents
from app.engine import Instance, ScriptError, WaitingTimer, get_engine, now
from app.errors import ProcessFailedError
from app.extensions import db
from app.flows.context import acting_for
from app.processes.service import case_prefix, definition_for, definition_of, latest_version
from app.stock.service import release_parts
from app.tasks.models import WorkItem, WorkItemRole
from app.tasks.service import forms
from app.timers.models import Timer
from app.timers.scheduling import note_timer_changes


@dataclass
class StoreResult:
    """What one store changed: new work items and timers, the ones that ended."""

    ready: list[WorkItem] = field(default_factory=list)  # work items that became ready
    new_timers: list[Timer] = field(default_factory=list)  # timers that started waiting
    ended_timers: list[Timer] = field(default_factory=list)  # timers that fired or were cancelled
    open_items: list[WorkItem] = field(default_factory=list)  # every ready work item afterwards
    waiting_timers: list[Timer] = field(default_factory=list)  # every waiting timer afterwards


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def open_case(*, actor: Actor, process_id: str, reported_at: datetime, channel: str, description: str,
              title: str | None = None, priority: str = "normal", customer_id: int | None = None,
              equipment_id: int | None = None, data: dict[str, Any] | None = None) -> CaseDetail:
    """Open a case on the latest version of a process and run it to its first wait (cases.open; the
    system opens the cases of recurring processes)."""
    require(actor, "cases.open")
    version = latest_version(process_id)
    added = new_case(actor=actor, version=version, process_id=process_id,
                     case_prefix=case_prefix(version) if version else "", reported_at=reported_at, channel=channel,
                     description=description, title=title, priority=priority, customer_id=customer_id,
                     equipment_id=equipment_id, data=data)
    try:
        with acting_for(actor, added.case):
            instance = get_engine().start(definition_of(added.version), added.start_data)
    except ScriptError as exc:
        raise ProcessFailedError(f"the process could not start: {exc}") from exc
    stored = store_instance(added.case, instance, actor=actor, leading_events=[added.opened], new=True)
    return _detail(added.case, stored)


def load_instance(case: Case) -> Instance:
    """Restore the engine instance of a case (the caller holds the case's lock)."""
    return get_engine().load(definition_for(case.process_version_id), case.state_json)


def store_instance(case: Case, instance: Instance, *, actor: Actor, completed: WorkItem | None = None,
                   leading_events: list[tuple[str, dict[str, Any]]] | None = None, new: bool = False) -> StoreResult:
    """Store the instance and bring work items, timers, status and history in line with it.

    Reads first, then one flush for new work items and timers (their ids go into the events), then the
    case row and the events are left for the commit: two round trips of writes, the case updated once.
    ``leading_events`` (type, payload) are appended first, e.g. the task completion that caused this.
    ``new`` says the case was just created, so it has no rows to read yet.

    Every timer gets its row, even one that was already due when the engine reached it (a case entered
    after its deadline, a deadline passing during a request): it is stored as fired at once, with its
    lateness. What a timer did is recorded with the actor ``timer``, whoever's request ran it.
    """
    current = now()
    # A case entered late: its overdue deadlines fired at entry, so that is when their lateness counts.
    fired_at = case.opened_at if new and case.opened_at is not None else current
    result = StoreResult()
    timers = instance.timer_events()
    ready = {t.id: t for t in instance.ready_human_tasks(timers)}
    waiting = {t.task_id: t for t in timers if t.state == "WAITING"}
    fired = {t.task_id: t for t in timers if t.fired}
    items: dict[str, WorkItem] = {}
    rows: dict[str, Timer] = {}  # the case's timer rows still open: waiting, or failed (retried by admins)
    known: set[str] = set()  # task ids of fired timers that have a row already
    if not new:
        with db.session.no_autoflush:
            items = {w.task_id: w for w in db.session.scalars(
                select(WorkItem).where(WorkItem.case_id == case.id, WorkItem.state == "ready"))}
            open_row = Timer.state.in_(("waiting", "failed"))
            for row in db.session.scalars(select(Timer).where(
                    Timer.case_id == case.id, or_(open_row, Timer.task_id.in_(list(fired))) if fired else open_row)):
                if row.state in ("waiting", "failed"):
                    rows[row.task_id] = row
                known.add(row.task_id)
    user = actor.username
    events: list[tuple[str, dict[str, Any], str]] = [(type_, payload, user) for type_, payload in leading_events or []]
    for task_id, item in items.items():
        if task_id in ready:
            item.due_at = ready[task_id].due_at
            result.open_items.append(item)
        elif completed is None or item.id != completed.id:
            item.state, item.completed_at = "cancelled", current
            events.append(("task_cancelled", {"work_item_id": item.id, "task_id": task_id,
                                              "task_spec": item.task_spec, "name": item.name}, user))
    for task_id, row in rows.items():
        if task_id in waiting:
            if row.state == "waiting":  # a failed one stays failed until an admin retries it
                result.waiting_timers.append(row)
            continue
        has_fired = instance.task_state(task_id) == "COMPLETED"
        row.state, row.ended_at = ("fired" if has_fired else "cancelled"), current
        if has_fired:
            row.fired_late_by_ms = _late_by_ms(current, row.due_at)
        result.ended_timers.append(row)
        events.append(("timer_fired" if has_fired else "timer_cancelled", {
            "timer_id": row.id, "task_id": task_id, "task_spec": row.task_spec, "name": row.name,
            "due_at": _iso(row.due_at), **({"late_by_ms": row.fired_late_by_ms} if has_fired else {})},
            TIMER.username if has_fired else user))
    for task_id, task in ready.items():
        if task_id not in items:
            result.ready.append(WorkItem(
                case_id=case.id, task_id=task_id, task_spec=task.spec_id, name=task.name, role=task.role,
                form_key=task.form_key, state="ready", due_at=task.due_at, created_at=current,
                other_roles=[WorkItemRole(role=role, position=n) for n, role in enumerate(task.roles[1:], 1)]))
    for task_id, timer in waiting.items():
        if task_id not in rows:
            result.new_timers.append(_timer_row(case, timer, created_at=current))
    # Timers that came due within this very run never waited: their row is born fired.
    fired_at_once = [_timer_row(case, timer, created_at=fired_at, fired_at=fired_at)
                     for task_id, timer in fired.items() if task_id not in known and task_id not in rows]
    if result.ready or result.new_timers or fired_at_once:
        db.session.add_all([*fired_at_once, *result.ready, *result.new_timers])
        db.session.flush()  # ids for the events; the case row is untouched so far
    for row in fired_at_once:
        events.append(("timer_scheduled", _scheduled_payload(row), user))
        events.append(("timer_fired", {"timer_id": row.id, "task_id": row.task_id, "task_spec": row.task_spec,
                                       "name": row.name, "due_at": _iso(row.due_at),
                                       "late_by_ms": row.fired_late_by_ms}, TIMER.username))
    result.ended_timers.extend(fired_at_once)
    for item in result.ready:
        events.append(("task_ready", {"work_item_id": item.id, "task_id": item.task_id,
                                      "task_spec": item.task_spec, "name": item.name, "role": item.role,
                                      **({"roles": list(item.roles)} if len(item.roles) > 1 else {}),
                                      "form_key": item.form_key, "due_at": _iso(item.due_at)}, user))
    for row in result.new_timers:
        events.append(("timer_scheduled", _scheduled_payload(row), user))
    result.open_items.extend(result.ready)
    result.waiting_timers.extend(result.new_timers)
    data = instance.data
    if instance.is_completed and case.status == "open":
        case.status, case.closed_at = "closed", current
        events.append(("case_closed", {"outcome": data.get("outcome")}, user))
        closing = True
    else:
        closing = False
    for type_, payload, who in events:
        record_event(case=case, type=type_, actor=who, payload=payload)
    case.state_json = instance.dump()
    case.updated_at = current
    case.summary = {**{k: data[k] for k in instance.definition.catalogue.summary_fields if k in data},
                    "open_tasks": sorted(t.name for t in ready.values())}
    note_timer_changes(new=result.new_timers, ended=result.ended_timers)
    if closing:  # parts a path that ended without using them still holds go back on the shelf
        release_parts(actor=SYSTEM, case=case, reason="the case closed")
        # Then the documents the process names (the processing report), showing the case as it closed.
        if kinds := instance.definition.catalogue.documents:
            make_documents(actor=SYSTEM, case=case, kinds=kinds, forms=forms())
    return result


def _late_by_ms(fired_at: datetime, due_at: datetime) -> int:
    return int((fired_at - due_at).total_seconds() * 1000)


def _timer_row(case: Case, timer: WaitingTimer, *, created_at: datetime, fired_at: datetime | None = None) -> Timer:
    """A timer row for an engine timer: waiting, or (``fired_at``) fired already."""
    return Timer(case_id=case.id, task_id=timer.task_id, task_spec=timer.spec_id, name=timer.name, kind=timer.kind,
                 interrupting=timer.interrupting, attached_task_id=timer.attached_task_id, due_at=timer.due_at,
                 state="fired" if fired_at else "waiting", created_at=created_at, ended_at=fired_at,
                 fired_late_by_ms=_late_by_ms(fired_at, timer.due_at) if fired_at else None)


def _scheduled_payload(row: Timer) -> dict[str, Any]:
    return {"timer_id": row.id, "task_id": row.task_id, "task_spec": row.task_spec, "name": row.name,
            "due_at": _iso(row.due_at), "interrupting": row.interrupting}


class CaseDetail:
    """A case together with its ready work items and waiting deadlines, for display."""

    def __init__(self, case: Case, open_tasks: list[WorkItem], deadlines: list[Timer]) -> None:
        self.case = case
        self.open_tasks = open_tasks
        self.deadlines = deadlines

    def __getattr__(self, name: str) -> Any:
        return getattr(self.case, name)


def _urgency(item: WorkItem) -> tuple[bool, Any, int]:
    return (item.due_at is None, item.due_at or now(), item.id or 0)


def case_detail(case: Case, *, actor: Actor, stored: StoreResult | None = None) -> CaseDetail:
    """The case with its ready work items (most urgent first) and waiting deadlines (cases.read); after a
    store, straight from what the store already holds."""
    require(actor, "cases.read")
    return _detail(case, stored)


def _detail(case: Case, stored: StoreResult | None) -> CaseDetail:
    """case_detail without the permission check: for the services that just stored the case for the actor."""
    if stored is not None:
        return CaseDetail(case, sorted(stored.open_items, key=_urgency),
                          sorted(stored.waiting_timers, key=lambda t: t.due_at))
    items = list(db.session.scalars(select(WorkItem).where(WorkItem.case_id == case.id, WorkItem.state == "ready")
                                    .order_by(WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.id)))
    return CaseDetail(case, items, _waiting_timers(case))


def open_deadlines(case: Case, *, actor: Actor) -> list[Timer]:
    """The case's waiting timers, soonest first (cases.read)."""
    require(actor, "cases.read")
    return _waiting_timers(case)


def _waiting_timers(case: Case) -> list[Timer]:
    return list(db.session.scalars(select(Timer).where(Timer.case_id == case.id, Timer.state == "waiting")
                                   .order_by(Timer.due_at)))


__all__ = ["CaseDetail", "StoreResult", "case_detail", "load_instance", "open_case", "open_deadlines",
           "store_instance"]
