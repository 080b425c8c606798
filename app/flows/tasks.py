"""Working a task: what it shows while ready, and completing it (the record stored, the process run on)."""

from __future__ import annotations

from typing import Any

from app.auth import Actor, require
from app.engine import ScriptError, TaskNotReadyError, UnknownTaskError, now
from app.errors import ConflictError, ProcessFailedError
from app.flows.context import acting_for
from app.flows.steps import CaseDetail, case_detail, load_instance, store_instance
from app.tasks.models import WorkItem
from app.tasks.service import (
    check_can_work,
    check_ready,
    completion_deadline,
    form_definition,
    lock_case_for_work_item,
    validate_task_data,
)


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
    form = form_definition(item)
    data = load_instance(item.case).task_data(item.task_id) if item.state == "ready" else {}
    return WorkItemDetail(item, form.to_json() if form else None, data)


def complete_work_item(*, work_item_id: int, actor: Actor, data: Any) -> CaseDetail:
    """Lock the case, check the task, validate the form, then complete → run → store (tasks.work, on a
    task of one of the actor's roles)."""
    require(actor, "tasks.work")
    case, item = lock_case_for_work_item(work_item_id)
    check_ready(item)  # a finished task answers 409 whatever the data
    check_can_work(item, actor)
    if item.assignee and item.assignee != actor.username and not actor.has_role("supervisor"):
        raise ConflictError(f"task {item.id} is claimed by {item.assignee}")
    cleaned = validate_task_data(item, data)
    instance = load_instance(case)
    try:
        with acting_for(actor, case):
            instance.complete(item.task_id, cleaned)
    except (TaskNotReadyError, UnknownTaskError) as exc:
        raise ConflictError(str(exc)) from None
    except ScriptError as exc:
        raise ProcessFailedError(f"the process could not continue: {exc}") from exc
    item.state, item.completed_at, item.completed_by = "completed", now(), actor.username
    item.assignee = item.assignee or actor.username
    completion = ("task_completed", {"work_item_id": item.id, "task_id": item.task_id, "task_spec": item.task_spec,
                                     "name": item.name, "form_key": item.form_key, "data": cleaned,
                                     **completion_deadline(item)})
    stored = store_instance(case, instance, actor=actor, completed=item, leading_events=[completion])
    return case_detail(case, actor=actor, stored=stored)


__all__ = ["WorkItemDetail", "complete_work_item", "task_detail"]
