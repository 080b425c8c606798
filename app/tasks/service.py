"""Worklists, claiming and completing human tasks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import selectinload

from app.audit.service import record_event
from app.auth import STAFF_ROLES, SYSTEM, Actor, require
from app.cases.models import Case
from app.cases.service import lock_case
from app.choices import CHANNELS, PRIORITIES, ROLES, WORK_ITEM_STATES
from app.engine import now
from app.errors import (
    ConflictError,
    InvalidDataError,
    NotFoundError,
    PermissionDeniedError,
)
from app.extensions import db
from app.forms import FormDefinition, FormRegistry, FormValidationError
from app.inputs import MAX_ID
from app.processes.service import definition_for
from app.registry.models import Customer
from app.tasks.models import WorkItem, WorkItemRole
from app.timers.models import Timer
from app.users.service import actor_for, get_user


def forms() -> FormRegistry:
    """The record forms loaded at start-up."""
    return current_app.extensions["servicecase.forms"]


def form_of(item: WorkItem, *, actor: Actor) -> FormDefinition | None:
    """The record form of a work item, or None for a task without one (tasks.read)."""
    require(actor, "tasks.read")
    return form_definition(item)


def form_definition(item: WorkItem) -> FormDefinition | None:
    """The record form of a work item, without a permission check: for the flows that checked already."""
    return forms().get(item.form_key) if item.form_key else None


@dataclass(frozen=True)
class WorkFilters:
    """The worklist's filters beyond role and assignee: what the case is about and how urgent it is."""

    process_id: str | None = None  # the case's process (fault_handling…)
    region: str | None = None  # the customer's region
    priority: str | None = None  # one of PRIORITIES
    channel: str | None = None  # one of CHANNELS
    overdue: bool | None = None  # True: deadline passed; False: not passed or none; None: either


def _check_choice(errors: dict[str, list[str]], name: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        errors[name] = [f"must be one of {', '.join(choices)}"]


def _filtered(query: Select[Any], filters: WorkFilters, current: datetime) -> Select[Any]:
    """``query`` narrowed to the work items whose case (and customer) match ``filters``."""
    if filters.process_id or filters.priority or filters.channel or filters.region:
        query = query.join(Case, WorkItem.case_id == Case.id)
    if filters.process_id:
        query = query.where(Case.process_id == filters.process_id)
    if filters.priority:
        query = query.where(Case.priority == filters.priority)
    if filters.channel:
        query = query.where(Case.channel == filters.channel)
    if filters.region:
        query = query.join(Customer, Case.customer_id == Customer.id).where(Customer.region == filters.region)
    if filters.overdue is True:
        query = query.where(WorkItem.due_at.is_not(None), WorkItem.due_at <= current)
    elif filters.overdue is False:
        query = query.where(or_(WorkItem.due_at.is_(None), WorkItem.due_at > current))
    return query


def list_work_items(*, actor: Actor, role: str | None = None, assignee: str | None = None,
                    case_id: int | None = None, state: str | None = "ready", filters: WorkFilters | None = None,
                    page: int = 1, per_page: int = 50) -> tuple[list[WorkItem], int]:
    """Work items matching the filters, overdue ones first, then by deadline (soonest first), then oldest;
    with the total count."""
    require(actor, "tasks.read")
    filters = filters or WorkFilters()
    errors: dict[str, list[str]] = {}
    _check_choice(errors, "state", state, WORK_ITEM_STATES)
    _check_choice(errors, "role", role, ROLES)
    _check_choice(errors, "priority", filters.priority, PRIORITIES)
    _check_choice(errors, "channel", filters.channel, CHANNELS)
    if errors:
        raise InvalidDataError(f"unknown {', '.join(errors)}", errors=errors)
    current = now()
    query = select(WorkItem)
    if state:
        query = query.where(WorkItem.state == state)
    if role:
        query = query.where(or_(WorkItem.role == role, WorkItem.id.in_(
            select(WorkItemRole.work_item_id).where(WorkItemRole.role == role))))
    if assignee:
        query = query.where(WorkItem.assignee == assignee)
    if case_id:
        query = query.where(WorkItem.case_id == case_id)
    query = _filtered(query, filters, current)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    # Overdue work first (most overdue first), then the soonest deadline, then work without one, oldest first.
    # Ascending due times put every passed deadline before every future one, so no expression on the clock
    # is needed, and the (state, role, due_at) index can serve the order.
    order = (WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.created_at, WorkItem.id)
    items = list(db.session.scalars(
        query.options(selectinload(WorkItem.case).selectinload(Case.customer),
                      selectinload(WorkItem.case).selectinload(Case.equipment))
        .order_by(*order).offset((page - 1) * per_page).limit(per_page)))
    return items, total


@dataclass(frozen=True)
class QueueCount:
    """How many ready tasks one queue (a role, or the actor's own tasks) holds, and how many are overdue."""

    role: str | None  # None: the actor's own (claimed) tasks
    ready: int
    overdue: int


@dataclass(frozen=True)
class WorklistCounts:
    """The counts shown beside the worklist's views: my tasks, and one queue per role the actor holds."""

    mine: QueueCount
    queues: list[QueueCount]


def worklist_counts(*, actor: Actor) -> WorklistCounts:
    """Ready and overdue counts of the actor's own tasks and of the queue of each staff role they hold."""
    require(actor, "tasks.read")
    current = now()
    overdue = func.sum(sql_case((and_(WorkItem.due_at.is_not(None), WorkItem.due_at <= current), 1), else_=0))
    roles = [role for role in STAFF_ROLES if actor.has_role(role)]
    rows: dict[str, tuple[int, int]] = {}
    if roles:
        first = select(WorkItem.role, func.count(), overdue).where(
            WorkItem.state == "ready", WorkItem.role.in_(roles)).group_by(WorkItem.role)
        further = select(WorkItemRole.role, func.count(), overdue).join(
            WorkItem, WorkItem.id == WorkItemRole.work_item_id).where(
            WorkItem.state == "ready", WorkItemRole.role.in_(roles)).group_by(WorkItemRole.role)
        for query in (first, further):
            for role, ready, late in db.session.execute(query):
                before = rows.get(role, (0, 0))
                rows[role] = (before[0] + ready, before[1] + (late or 0))
    ready, late = db.session.execute(select(func.count(), overdue).where(
        WorkItem.state == "ready", WorkItem.assignee == actor.username)).one()
    return WorklistCounts(mine=QueueCount(None, ready, late or 0),
                          queues=[QueueCount(role, *rows.get(role, (0, 0))) for role in roles])


def worklist_regions(*, actor: Actor) -> list[str]:
    """The customers' regions of the cases that have ready work, for the region filter."""
    require(actor, "tasks.read")
    return list(db.session.scalars(
        select(Customer.region).distinct().join(Case, Case.customer_id == Customer.id)
        .join(WorkItem, WorkItem.case_id == Case.id).where(WorkItem.state == "ready").order_by(Customer.region)))


def get_work_item(work_item_id: int, *, actor: Actor) -> WorkItem:
    """A work item by id (tasks.read; NotFoundError if unknown)."""
    require(actor, "tasks.read")
    # An id beyond the id column cannot exist (and PostgreSQL would refuse the query).
    item = db.session.get(WorkItem, work_item_id) if 1 <= work_item_id <= MAX_ID else None
    if item is None:
        raise NotFoundError(f"task {work_item_id} does not exist")
    return item


def lock_case_for_work_item(work_item_id: int) -> tuple[Case, WorkItem]:
    """Lock the case of a work item, and only then read the work item, fresh.

    The work item must be read after the lock is granted: on PostgreSQL a statement that waited for a
    row lock still sees the other rows as they were when it started, so a claim that waited behind
    another claim (or a completion) would see the task unclaimed (or still ready)."""
    case_id = (db.session.scalar(select(WorkItem.case_id).where(WorkItem.id == work_item_id))
               if 1 <= work_item_id <= MAX_ID else None)  # a work item never moves to another case
    if case_id is None:
        raise NotFoundError(f"task {work_item_id} does not exist")
    case = lock_case(case_id)
    item = db.session.scalar(select(WorkItem).where(WorkItem.id == work_item_id)
                             .execution_options(populate_existing=True))
    if item is None:  # pragma: no cover - work items are never deleted
        raise NotFoundError(f"task {work_item_id} does not exist")
    return case, item


def check_can_work(item: WorkItem, actor: Actor) -> None:
    """Staff work the tasks of their own roles; supervisors may step in on any staff task."""
    if not actor.can_work_on(item.roles):
        needed = sorted({*item.roles, "supervisor"} if item.roles else {"supervisor"})
        raise PermissionDeniedError(
            f"{actor.username} may not work on task {item.id}: it is for {_roles_words(item.roles)}, "
            "and only supervisors step in on the tasks of other roles",
            errors={"permission": ["tasks.work"], "roles_needed": needed})


def _roles_words(roles: tuple[str, ...]) -> str:
    """``the role engineer``, ``the roles engineer or regional_engineer``, ``staff``."""
    if not roles:
        return "staff"
    if len(roles) == 1:
        return f"the role {roles[0]}"
    return f"the roles {', '.join(roles[:-1])} or {roles[-1]}"


def check_ready(item: WorkItem) -> None:
    if item.state != "ready":
        raise ConflictError(f"task {item.id} is {item.state}, no longer ready")


def claim_work_item(*, work_item_id: int, actor: Actor) -> WorkItem:
    """Assign a ready task to the actor (tasks.work, on a task of one of the actor's roles; claiming your
    own claimed task again is harmless)."""
    require(actor, "tasks.work")
    case, item = lock_case_for_work_item(work_item_id)
    check_ready(item)
    check_can_work(item, actor)
    if item.assignee and item.assignee != actor.username and not actor.has_role("supervisor"):
        raise ConflictError(f"task {item.id} is already claimed by {item.assignee}")
    if item.assignee != actor.username:
        previous = item.assignee
        item.assignee, item.claimed_at = actor.username, now()
        case.updated_at = item.claimed_at
        record_event(case=case, type="task_claimed", actor=actor.username, payload={
            "work_item_id": item.id, "task_id": item.task_id, "name": item.name, "previous": previous})
    db.session.flush()
    return item


def release_work_item(*, work_item_id: int, actor: Actor) -> WorkItem:
    """Put a claimed task back in its role's queue (by its assignee, or a supervisor)."""
    require(actor, "tasks.work")
    case, item = lock_case_for_work_item(work_item_id)
    check_ready(item)
    if item.assignee is None:
        raise ConflictError(f"task {item.id} is not claimed by anyone, so there is nothing to release")
    if item.assignee != actor.username and not actor.has_role("supervisor"):
        raise PermissionDeniedError(f"task {item.id} is claimed by {item.assignee}: only they or a supervisor "
                                    "may release it")
    previous = item.assignee
    item.assignee, item.claimed_at = None, None
    case.updated_at = now()
    record_event(case=case, type="task_released", actor=actor.username, payload={
        "work_item_id": item.id, "task_id": item.task_id, "name": item.name, "previous": previous,
        "assignee": None})
    db.session.flush()
    return item


def _assignable(item: WorkItem, assignee: str) -> str:
    """The user name ``assignee`` stands for, if that user exists, is enabled and may work ``item``
    (InvalidDataError at the field ``assignee`` otherwise)."""
    def refuse(message: str) -> InvalidDataError:
        return InvalidDataError(message, errors={"assignee": [message]})

    if not assignee.strip():
        raise refuse("name the user to assign the task to")
    try:
        user = get_user(username=assignee)
    except NotFoundError:
        raise refuse(f"there is no user named {assignee.strip()!r}") from None
    if user.disabled:
        raise refuse(f"user {user.username!r} is disabled")
    if not actor_for(user).can_work_on(item.roles):
        needed = _roles_words(item.roles) if item.roles else "a staff role"
        raise refuse(f"user {user.username!r} does not hold {needed}, which task {item.id} needs")
    return user.username


def assign_work_item(*, work_item_id: int, assignee: str, actor: Actor) -> WorkItem:
    """Give a ready task to a named user who holds its role (supervisors only; assigning it to its
    current assignee changes nothing)."""
    require(actor, "tasks.assign")
    case, item = lock_case_for_work_item(work_item_id)
    check_ready(item)
    name = _assignable(item, assignee)
    if item.assignee != name:
        previous = item.assignee
        item.assignee, item.claimed_at = name, now()
        case.updated_at = item.claimed_at
        record_event(case=case, type="task_assigned", actor=actor.username, payload={
            "work_item_id": item.id, "task_id": item.task_id, "name": item.name, "previous": previous,
            "assignee": name})
    db.session.flush()
    return item


def validate_task_data(item: WorkItem, data: Any) -> dict[str, Any]:
    """Validate submitted data against the task's record form and return the cleaned payload."""
    if not isinstance(data, dict):
        raise InvalidDataError("data must be a JSON object", errors={"data": ["must be an object"]})
    form = form_definition(item)
    if form is None:
        if data:
            raise InvalidDataError("this task takes no data", errors={"data": ["must be empty"]})
        return {}
    try:
        return form.validate(data, now=now())
    except FormValidationError as exc:
        raise InvalidDataError("the record form has errors", errors=exc.errors) from None


def completion_deadline(item: WorkItem) -> dict[str, Any]:
    """The ``deadline`` entry of a task_completed event: present only when the task had a deadline."""
    kept = deadline_kept(item, actor=SYSTEM)  # the caller checked the actor's right to complete it
    return {"deadline": kept} if kept is not None else {}


def deadline_kept(item: WorkItem, *, actor: Actor) -> dict[str, Any] | None:
    """Whether a completed task kept its deadline: ``{"name", "due_at", "margin_ms", "met"}``, the margin
    positive when it was done early, negative when late; None for a task without a deadline or not done."""
    require(actor, "tasks.read")
    if item.due_at is None or item.completed_at is None or item.state != "completed":
        return None
    # The timer that set the task's deadline (the earliest guarding it): same case, same due time.
    # (Once the task is done, its boundary timer is cancelled: its row still names the deadline.)
    own_first = sql_case((Timer.attached_task_id == item.task_id, 0), else_=1)
    name = db.session.scalar(select(Timer.name).where(Timer.case_id == item.case_id, Timer.due_at == item.due_at)
                             .order_by(own_first, Timer.id).limit(1))
    margin_ms = int((item.due_at - item.completed_at).total_seconds() * 1000)
    return {"name": name, "due_at": item.due_at.isoformat(), "margin_ms": margin_ms, "met": margin_ms >= 0}


@dataclass(frozen=True)
class MissedDeadline:
    """The deadline an escalation task is about: its name, when it was due, and when the work it guarded
    was done (None while it is still open: the miss keeps growing)."""

    name: str
    due_at: datetime
    done_at: datetime | None


def missed_deadlines(items: list[WorkItem], *, actor: Actor) -> dict[int, MissedDeadline]:
    """For each escalation task among ``items`` (a task the firing of a deadline timer started), the
    deadline that was missed; keyed by work item id. Two queries for a whole page."""
    require(actor, "tasks.read")
    leading: dict[int, tuple[str, ...]] = {}
    for item in items:
        timers = definition_for(item.case.process_version_id).timers_leading_to(item.task_spec)
        if timers:
            leading[item.id] = timers
    if not leading:
        return {}
    wanted = [item for item in items if item.id in leading]
    fired = list(db.session.scalars(select(Timer).where(
        Timer.case_id.in_({item.case_id for item in wanted}), Timer.state == "fired",
        Timer.task_spec.in_({spec for specs in leading.values() for spec in specs})).order_by(Timer.ended_at)))
    guarded = {(w.case_id, w.task_id): w for w in db.session.scalars(select(WorkItem).where(
        WorkItem.case_id.in_({t.case_id for t in fired}),
        WorkItem.task_id.in_({t.attached_task_id for t in fired if t.attached_task_id})))} if fired else {}
    result: dict[int, MissedDeadline] = {}
    for item in wanted:
        # The latest firing of one of its timers before the task appeared is the one that raised it.
        candidates = [t for t in fired if t.case_id == item.case_id and t.task_spec in leading[item.id]
                      and t.ended_at is not None and t.ended_at <= item.created_at]
        if not candidates:
            continue
        timer = candidates[-1]
        work = guarded.get((item.case_id, timer.attached_task_id or ""))
        done_at = work.completed_at if work is not None and work.state != "ready" else None
        if done_at is None and item.case.closed_at is not None:
            done_at = item.case.closed_at
        result[item.id] = MissedDeadline(name=timer.name, due_at=timer.due_at, done_at=done_at)
    return result
