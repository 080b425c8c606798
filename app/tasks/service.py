"""Worklists, claiming and completing human tasks."""

from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.audit.service import record_event
from app.auth import Actor, require
from app.cases.service import (
    CaseDetail,
    case_detail,
    load_instance,
    lock_case_for_work_item,
    store_instance,
)
from app.engine import ScriptError, TaskNotReadyError, UnknownTaskError, now
from app.errors import (
    ConflictError,
    InvalidDataError,
    NotFoundError,
    PermissionDeniedError,
    ProcessFailedError,
)
from app.extensions import db
from app.forms import FormDefinition, FormRegistry, FormValidationError
from app.inputs import MAX_ID
from app.tasks.models import WORK_ITEM_STATES, WorkItem


def forms() -> FormRegistry:
    """The record forms loaded at start-up."""
    return current_app.extensions["servicecase.forms"]


def form_of(item: WorkItem, *, actor: Actor) -> FormDefinition | None:
    """The record form of a work item, or None for a task without one (tasks.read)."""
    require(actor, "tasks.read")
    return _form_of(item)


def _form_of(item: WorkItem) -> FormDefinition | None:
    return forms().get(item.form_key) if item.form_key else None


def list_work_items(*, actor: Actor, role: str | None = None, assignee: str | None = None, case_id: int | None = None,
                    state: str | None = "ready", page: int = 1,
                    per_page: int = 50) -> tuple[list[WorkItem], int]:
    """Work items matching the filters, most urgent first, with the total count (tasks.read)."""
    require(actor, "tasks.read")
    if state is not None and state not in WORK_ITEM_STATES:
        raise InvalidDataError("unknown state", errors={"state": [f"must be one of {', '.join(WORK_ITEM_STATES)}"]})
    query = select(WorkItem)
    if state:
        query = query.where(WorkItem.state == state)
    if role:
        query = query.where(WorkItem.role == role)
    if assignee:
        query = query.where(WorkItem.assignee == assignee)
    if case_id:
        query = query.where(WorkItem.case_id == case_id)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    # Items with a deadline first, soonest first; then oldest first.
    order = (WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.created_at, WorkItem.id)
    items = list(db.session.scalars(query.options(selectinload(WorkItem.case)).order_by(*order)
                                    .offset((page - 1) * per_page).limit(per_page)))
    return items, total


def get_work_item(work_item_id: int, *, actor: Actor) -> WorkItem:
    """A work item by id (tasks.read; NotFoundError if unknown)."""
    require(actor, "tasks.read")
    # An id beyond the id column cannot exist (and PostgreSQL would refuse the query).
    item = db.session.get(WorkItem, work_item_id) if 1 <= work_item_id <= MAX_ID else None
    if item is None:
        raise NotFoundError(f"task {work_item_id} does not exist")
    return item


class WorkItemDetail:
    """A work item with its record form definition and the process data the task sees."""

    def __init__(self, item: WorkItem, form: dict[str, Any] | None, data: dict[str, Any]) -> None:
        self.item = item
        self.form = form
        self.data = data

    def __getattr__(self, name: str) -> Any:
        return getattr(self.item, name)


def task_detail(item: WorkItem, *, actor: Actor) -> WorkItemDetail:
    """The work item with its form and, while it is ready, the data it sees (tasks.read)."""
    require(actor, "tasks.read")
    form = _form_of(item)
    data = load_instance(item.case).task_data(item.task_id) if item.state == "ready" else {}
    return WorkItemDetail(item, form.to_json() if form else None, data)


def _check_role(item: WorkItem, actor: Actor) -> None:
    """Staff work the tasks of their own roles; supervisors may step in on any staff task."""
    if not actor.can_work_on(item.role):
        needed = sorted({item.role, "supervisor"} if item.role else {"supervisor"})
        raise PermissionDeniedError(
            f"{actor.username} may not work on task {item.id}: it is for the role {item.role or 'staff'}, "
            "and only supervisors step in on the tasks of other roles",
            errors={"permission": ["tasks.work"], "roles_needed": needed})


def _check_ready(item: WorkItem) -> None:
    if item.state != "ready":
        raise ConflictError(f"task {item.id} is {item.state}, no longer ready")


def claim_work_item(*, work_item_id: int, actor: Actor) -> WorkItem:
    """Assign a ready task to the actor (tasks.work, on a task of one of the actor's roles; claiming your
    own claimed task again is harmless)."""
    require(actor, "tasks.work")
    case, item = lock_case_for_work_item(work_item_id)
    _check_ready(item)
    _check_role(item, actor)
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


def validate_task_data(item: WorkItem, data: Any) -> dict[str, Any]:
    """Validate submitted data against the task's record form and return the cleaned payload."""
    if not isinstance(data, dict):
        raise InvalidDataError("data must be a JSON object", errors={"data": ["must be an object"]})
    form = _form_of(item)
    if form is None:
        if data:
            raise InvalidDataError("this task takes no data", errors={"data": ["must be empty"]})
        return {}
    try:
        return form.validate(data)
    except FormValidationError as exc:
        raise InvalidDataError("the record form has errors", errors=exc.errors) from None


def complete_work_item(*, work_item_id: int, actor: Actor, data: Any) -> CaseDetail:
    """Lock the case, check the task, validate the form, then complete → run → store (tasks.work, on a
    task of one of the actor's roles)."""
    require(actor, "tasks.work")
    case, item = lock_case_for_work_item(work_item_id)
    _check_ready(item)  # a finished task answers 409 whatever the data
    _check_role(item, actor)
    if item.assignee and item.assignee != actor.username and not actor.has_role("supervisor"):
        raise ConflictError(f"task {item.id} is claimed by {item.assignee}")
    cleaned = validate_task_data(item, data)
    instance = load_instance(case)
    try:
        instance.complete(item.task_id, cleaned)
    except (TaskNotReadyError, UnknownTaskError) as exc:
        raise ConflictError(str(exc)) from None
    except ScriptError as exc:
        raise ProcessFailedError(f"the process could not continue: {exc}") from exc
    item.state, item.completed_at, item.completed_by = "completed", now(), actor.username
    item.assignee = item.assignee or actor.username
    completion = ("task_completed", {"work_item_id": item.id, "task_id": item.task_id, "task_spec": item.task_spec,
                                     "name": item.name, "form_key": item.form_key, "data": cleaned})
    stored = store_instance(case, instance, actor=actor, completed=item, leading_events=[completion])
    return case_detail(case, actor=actor, stored=stored)
