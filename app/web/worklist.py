"""The worklist: my tasks and my roles' queues, overdue work first; claim, release and assign from it."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from marshmallow import ValidationError

from app.auth import ROLE_NAMES
from app.choices import CHANNELS, PRIORITIES, labelled
from app.errors import InvalidDataError
from app.processes.service import list_processes
from app.tasks import service as tasks
from app.tasks.models import WorkItem
from app.uow import unit_of_work
from app.web.common import Pagination, current_actor, load_query, page_blueprint
from app.web.filters import CHANNEL_WORDS, OVERDUE_WORDS, PRIORITY_WORDS, duration_words, role_name, zone_note
from app.web.schemas import AssignFormSchema, WorklistQuerySchema

bp = page_blueprint("worklist", __name__)


@bp.app_context_processor
def _deadline_context() -> dict[str, Any]:
    """What every page's deadline partials and footer use: the zone note and the deadline helpers."""
    return {"time_zone_note": zone_note(), "missed_deadlines_of": _missed_deadlines_of,
            "deadline_kept_of": _deadline_kept_of, "duration_words": duration_words()}


def _missed_deadlines_of(items: list[WorkItem]) -> dict[int, tasks.MissedDeadline]:
    """For the partials: which of ``items`` are escalations, and the deadline each says was missed."""
    return tasks.missed_deadlines(list(items), actor=current_actor()) if items else {}


def _deadline_kept_of(item: WorkItem) -> dict[str, Any] | None:
    """For the partials: whether a completed task kept its deadline, and by what margin."""
    return tasks.deadline_kept(item, actor=current_actor())

FILTER_NAMES = ("process", "region", "priority", "channel", "overdue")


def _filters(args: dict[str, Any]) -> tasks.WorkFilters:
    """The case filters of the worklist's address, for the service."""
    return tasks.WorkFilters(process_id=args["process"], region=args["region"], priority=args["priority"],
                             channel=args["channel"], overdue=args["overdue"])


def _view_title(args: dict[str, Any]) -> str:
    """What the list shows, as its heading says it."""
    if args["mine"]:
        return gettext("My tasks")
    if args["role"]:
        return gettext("Queue: %(role)s", role=role_name(args["role"]))
    return gettext("All ready tasks")


@bp.get("/")
def index() -> str:
    """Ready work items, overdue first and then by deadline: my tasks, one role's queue, or all of them."""
    args = load_query(WorklistQuerySchema())
    actor = current_actor()
    items, total = tasks.list_work_items(actor=actor, role=args["role"],
                                         assignee=actor.username if args["mine"] else None, state="ready",
                                         filters=_filters(args), page=args["page"], per_page=args["per_page"])
    page = Pagination(items, total, args["page"], args["per_page"])
    filtered = any(args[name] is not None for name in FILTER_NAMES)
    return render_template(
        "worklist/index.html", page=page, args=args, filtered=filtered, title=_view_title(args),
        counts=tasks.worklist_counts(actor=actor), missed=tasks.missed_deadlines(items, actor=actor),
        roles=list(ROLE_NAMES.items()), processes=list_processes(actor=actor),
        regions=tasks.worklist_regions(actor=actor),
        priorities=labelled(PRIORITIES, _texts(PRIORITY_WORDS)), channels=labelled(CHANNELS, _texts(CHANNEL_WORDS)),
        overdue_choices=list(_texts(OVERDUE_WORDS).items()), back=request.full_path.rstrip("?"))


def _texts(words: dict[str, Any]) -> dict[str, str]:
    """A table of lazily translated words as text in the page's language."""
    return {key: str(value) for key, value in words.items()}


def _back(default: str) -> str:
    """Where to return after an action: the page the form came from when it is a path of this site."""
    target = request.form.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


@bp.post("/worklist/<id:task_id>/claim")
def claim(task_id: int) -> ResponseReturnValue:
    """Take the task from its queue (refusals are error pages: 403, 404, 409)."""
    with unit_of_work():
        item = tasks.claim_work_item(work_item_id=task_id, actor=current_actor())
    flash(gettext("You claimed “%(task)s” of case %(number)s.", task=item.name, number=item.case.number), "success")
    return redirect(_back(url_for("tasks.detail", task_id=task_id)))


@bp.post("/worklist/<id:task_id>/release")
def release(task_id: int) -> ResponseReturnValue:
    """Put a claimed task back in its role's queue (its assignee, or a supervisor)."""
    with unit_of_work():
        item = tasks.release_work_item(work_item_id=task_id, actor=current_actor())
    flash(gettext("“%(task)s” of case %(number)s is back in the queue.", task=item.name, number=item.case.number),
          "success")
    return redirect(_back(url_for("tasks.detail", task_id=task_id)))


@bp.post("/worklist/<id:task_id>/assign")
def assign(task_id: int) -> ResponseReturnValue:
    """Give the task to a named user holding its role (supervisors); a wrong name is a 422 page saying why."""
    try:
        args = AssignFormSchema().load(request.form)
    except ValidationError as exc:
        raise InvalidDataError(gettext("The task was not assigned: enter the name of the user to assign it to."),
                               errors=exc.messages_dict) from None
    with unit_of_work():
        item = tasks.assign_work_item(work_item_id=task_id, assignee=args["assignee"], actor=current_actor())
    flash(gettext("“%(task)s” of case %(number)s is assigned to %(who)s.", task=item.name, number=item.case.number,
                  who=item.assignee), "success")
    return redirect(_back(url_for("tasks.detail", task_id=task_id)))
