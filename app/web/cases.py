"""Case pages: the list, opening a case as the customer reported it, and one case with its history."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from marshmallow import ValidationError

from app.audit.models import CaseEvent
from app.audit.service import list_events
from app.cases import service as cases
from app.cases.models import CASE_STATUSES, CHANNELS, PRIORITIES
from app.engine import now
from app.errors import InvalidDataError, ProcessFailedError
from app.forms import render_form_readonly
from app.processes.service import list_processes
from app.registry.service import list_equipment
from app.tasks.service import forms
from app.uow import unit_of_work
from app.web.common import Pagination, current_actor, load_query, page_blueprint
from app.web.filters import SUMMARY_LABELS, deadline_outcome, format_utc, humanize, role_name
from app.web.schemas import CaseListQuerySchema, NewCaseSchema

bp = page_blueprint("cases", __name__, url_prefix="/cases")

CHANNEL_WORDS = {"phone": "Telephone", "email": "E-mail", "fax": "Fax", "web": "Web"}
PRIORITY_WORDS = {"normal": "Normal", "high": "High", "emergency": "Emergency (first-level fault)"}


@bp.get("")
def index() -> str:
    """Cases, newest first, filtered by status, process and text."""
    args = load_query(CaseListQuerySchema())
    actor = current_actor()
    items, total = cases.list_cases(actor=actor,
                                    status=args["status"], process_id=args["process"], text=args["text"],
                                    page=args["page"], per_page=args["per_page"])
    return render_template("cases/index.html", page=Pagination(items, total, args["page"], args["per_page"]),
                           statuses=CASE_STATUSES, processes=list_processes(actor=actor), filters=args)


def _new_case_form(values: dict[str, Any], errors: dict[str, Any], status: int = 200) -> ResponseReturnValue:
    """The new-case form with ``values`` kept and ``errors`` shown at their fields."""
    actor = current_actor()
    return render_template(
        "cases/new.html", values=values, errors=errors, processes=list_processes(actor=actor),
        equipment=list_equipment(actor=actor), channels=[(c, CHANNEL_WORDS.get(c, c)) for c in CHANNELS],
        priorities=[(p, PRIORITY_WORDS.get(p, p)) for p in PRIORITIES],
    ), status


@bp.route("/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    """Open a case: the customer's report, with the notice time deadlines run from."""
    if request.method == "GET":
        values = {"process": request.args.get("process", "fault_handling"), "channel": "phone",
                  "priority": "normal", "reported_at": now().strftime("%Y-%m-%dT%H:%M")}
        return _new_case_form(values, {})
    values = {key: request.form.get(key, "") for key in NewCaseSchema().fields}
    try:
        args = NewCaseSchema().load(request.form)
        with unit_of_work():
            case = cases.open_case(actor=current_actor(), process_id=args["process"],
                                   reported_at=args["reported_at"], channel=args["channel"],
                                   description=args["description"], title=args["title"],
                                   priority=args["priority"], equipment_id=args["equipment_id"])
    except ValidationError as exc:
        return _new_case_form(values, _field_errors(exc.messages), 422)
    except (InvalidDataError, ProcessFailedError) as exc:
        return _new_case_form(values, _field_errors(exc.errors or {"_schema": [exc.message]}), 422)
    flash(f"Case {case.number} opened.", "success")
    return redirect(url_for("cases.detail", case_id=case.id))


def _field_errors(messages: Any) -> dict[str, list[str]]:
    """Errors per form field as lists of text (service and schema errors alike)."""
    if not isinstance(messages, dict):
        return {"_schema": [str(messages)]}
    result: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = "equipment_id" if key == "customer_id" else str(key)
        result.setdefault(name, []).extend(value if isinstance(value, list) else [str(value)])
    return result


@dataclass
class HistoryEntry:
    """One event of the case history as shown: what happened, its details and any record submitted."""

    event: CaseEvent
    details: list[tuple[str, str]] = field(default_factory=list)
    record: Markup | None = None
    record_title: str | None = None


def _details(event: CaseEvent) -> list[tuple[str, str]]:
    """The few payload facts worth a line in the history, in words."""
    p = event.payload or {}
    if event.type == "case_opened":
        return [("Number", str(p.get("number", ""))),
                ("Process", f"{p.get('process_id', '')} v{p.get('process_version', '')}"),
                ("Customer's notice", format_utc(p.get("reported_at"))),
                ("Channel", CHANNEL_WORDS.get(str(p.get("channel")), str(p.get("channel", "")))),
                ("Priority", PRIORITY_WORDS.get(str(p.get("priority")), humanize(p.get("priority"))))]
    if event.type == "task_ready":
        rows = [("Task", str(p.get("name", ""))), ("Role", role_name(p.get("role")))]
        if p.get("due_at"):
            rows.append(("Due", format_utc(p.get("due_at"))))
        return rows
    if event.type == "task_claimed":
        rows = [("Task", str(p.get("name", "")))]
        if p.get("previous"):
            rows.append(("Taken over from", str(p["previous"])))
        return rows
    if event.type in ("task_released", "task_assigned"):
        return [("Task", str(p.get("name", ""))), ("Previous assignee", str(p.get("previous") or "—")),
                ("Assigned to", str(p.get("assignee") or "— (back in the queue)"))]
    if event.type == "task_completed" and (kept := deadline_outcome(p.get("deadline"))):
        return [("Task", str(p.get("name", ""))), ("Deadline", kept)]
    if event.type in ("task_completed", "task_cancelled"):
        return [("Task", str(p.get("name", "")))]
    if event.type.startswith("timer_"):
        return [("Deadline", str(p.get("name", ""))), ("Due", format_utc(p.get("due_at")))]
    if event.type == "case_closed":
        return [("Outcome", humanize(p.get("outcome")))]
    return []


def _record(event: CaseEvent) -> tuple[Markup | None, str | None]:
    """A task_completed event's submitted record, read-only, with the form's title."""
    p = event.payload or {}
    data = p.get("data")
    if event.type != "task_completed" or not isinstance(data, dict):
        return None, None
    key = p.get("form_key")
    registry = forms()
    if isinstance(key, str) and key in registry:
        form = registry.get(key)
        return render_form_readonly(form, data), form.title
    if not data:
        return None, None
    rows = Markup("").join(Markup("<dt>{}</dt><dd>{}</dd>").format(k, humanize(v)) for k, v in data.items())
    return Markup('<dl class="form-readonly">{}</dl>').format(rows), key or "Submitted data"


def history(case_id: int) -> list[HistoryEntry]:
    """Every event of the case, in order, ready for the page."""
    entries = []
    for event in list_events(actor=current_actor(), case_id=case_id):
        record, title = _record(event)
        entries.append(HistoryEntry(event=event, details=_details(event), record=record, record_title=title))
    return entries


def summary_rows(summary: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The process facts the case summary holds (outcome, fault class…), in words."""
    summary = summary or {}
    return [(label, humanize(summary[key])) for key, label in SUMMARY_LABELS.items() if key in summary]


@bp.get("/<id:case_id>")
def detail(case_id: int) -> str:
    """A case: its details, open tasks, deadlines and complete history."""
    actor = current_actor()
    case = cases.case_detail(cases.get_case(case_id, actor=actor), actor=actor)
    equipment = case.equipment
    warranty_open = bool(equipment and equipment.warranty_ends_on
                         and equipment.warranty_ends_on >= now().astimezone(UTC).date())
    return render_template("cases/detail.html", case=case, history=history(case.id),
                           summary=summary_rows(case.summary), warranty_open=warranty_open,
                           channel_words=CHANNEL_WORDS, priority_words=PRIORITY_WORDS,
                           entry_delay=case.opened_at - case.reported_at)
