"""Task pages: a work item with its record form; claim it, complete it, or read what was recorded."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from markupsafe import Markup

from app.audit.service import completed_task_data
from app.errors import ConflictError, InvalidDataError, ProcessFailedError
from app.flows import tasks as task_flow
from app.forms import FormDefinition, render_form_fields, render_form_readonly
from app.tasks import service as tasks
from app.tasks.models import WorkItem
from app.tasks.service import forms
from app.uow import unit_of_work
from app.web.cases import summary_rows
from app.web.common import current_actor, page_blueprint
from app.web.filters import TASK_STATE_WORDS

bp = page_blueprint("tasks", __name__, url_prefix="/tasks")


def _form(item: WorkItem) -> tuple[FormDefinition | None, bool]:
    """The item's record form, and whether the form it names is missing from this installation."""
    if not item.form_key:
        return None, False
    if item.form_key not in forms():
        return None, True
    return tasks.form_of(item, actor=current_actor()), False


def _page(item: WorkItem, *, values: dict[str, Any] | None = None, errors: dict[str, Any] | None = None,
          status: int = 200) -> ResponseReturnValue:
    """The task page: the form while the item is ready, the submitted record once it is done."""
    form, form_missing = _form(item)
    fields: Markup | None = None
    record: Markup | None = None
    if item.state == "ready" and form is not None:
        # The data the task sees fills the fields it already holds (the reserved parts into the repair
        # record) and the variables the form's text shows ({{ charge_reason }}).
        context = task_flow.task_detail(item, actor=current_actor()).data
        fields = render_form_fields(form, form.prefilled(context) if values is None else values, errors,
                                    context=context)
    elif item.state == "completed" and form is not None:
        data = completed_task_data(actor=current_actor(), case_id=item.case_id, work_item_id=item.id)
        record = render_form_readonly(form, data) if data is not None else None
    return render_template("tasks/detail.html", item=item, case=item.case, form=form, fields=fields,
                           record=record, form_missing=form_missing, errors=errors or {},
                           summary=summary_rows(item.case)), status


def _conflict(item: WorkItem, message: str) -> ResponseReturnValue:
    """The 409 page: the task moved on; explain and point to the case."""
    return render_template("tasks/conflict.html", item=item, case=item.case, message=message), 409


@bp.get("/<id:task_id>")
def detail(task_id: int) -> ResponseReturnValue:
    """A task with its record form (or, once done, what was recorded)."""
    return _page(tasks.get_work_item(task_id, actor=current_actor()))


@bp.post("/<id:task_id>")
def complete(task_id: int) -> ResponseReturnValue:
    """Submit the record form; the process runs on and the case page shows where it went."""
    actor = current_actor()
    item = tasks.get_work_item(task_id, actor=actor)
    if item.state != "ready":
        return _conflict(item, gettext("This task was %(state)s already.",
                                       state=str(TASK_STATE_WORDS.get(item.state, item.state)).lower()))
    form, form_missing = _form(item)
    if form_missing:
        return _conflict(item, gettext("The record form '%(form)s' is not installed, so this task cannot be "
                                       "completed here.", form=item.form_key))
    data = form.from_html(request.form) if form is not None else {}
    name, case_id = item.name, item.case_id
    try:
        with unit_of_work():
            task_flow.complete_work_item(work_item_id=item.id, actor=actor, data=data)
    except (InvalidDataError, ProcessFailedError) as exc:
        # Entered values are kept: a form error is fixed at its field, a process failure can be retried.
        errors = exc.errors or {"_schema": [exc.message]}
        return _page(tasks.get_work_item(task_id, actor=actor), values=data, errors=errors, status=422)
    except ConflictError as exc:
        return _conflict(tasks.get_work_item(task_id, actor=actor), exc.message)
    flash(gettext("“%(task)s” completed.", task=name), "success")
    return redirect(url_for("cases.detail", case_id=case_id))


@bp.post("/<id:task_id>/claim")
def claim(task_id: int) -> ResponseReturnValue:
    """Take the task: it is assigned to the acting user."""
    actor = current_actor()
    item = tasks.get_work_item(task_id, actor=actor)
    try:
        with unit_of_work():
            tasks.claim_work_item(work_item_id=item.id, actor=actor)
    except ConflictError as exc:
        return _conflict(tasks.get_work_item(task_id, actor=actor), exc.message)
    flash(gettext("You claimed “%(task)s”.", task=item.name), "success")
    return redirect(url_for("tasks.detail", task_id=task_id))
