"""Case pages: the list and one case with its diagram, attachments and history (opening a case is
app/web/intake.py, on this blueprint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from markupsafe import Markup

from app.attachments import service as attachments
from app.audit.models import CaseEvent
from app.audit.service import list_events
from app.cases import service as cases
from app.cases.models import CASE_STATUSES
from app.documents import service as documents
from app.engine import Catalogue, now
from app.flows import steps
from app.flows.diagram import STATE_WORDS
from app.forms import localized_title, render_form_readonly
from app.forms.rendering import component_label
from app.processes.service import list_processes
from app.tasks.service import forms
from app.uow import unit_of_work
from app.web import vendor
from app.web.common import Pagination, current_actor, load_query, page_blueprint
from app.web.filters import (
    ATTACHMENT_TYPE_WORDS,
    CHANNEL_WORDS,
    DIAGRAM_STATE_WORDS,
    PRIORITY_WORDS,
    SUMMARY_LABELS,
    deadline_outcome,
    format_duration,
    format_utc,
    humanize,
    role_name,
)
from app.web.schemas import CaseListQuerySchema

bp = page_blueprint("cases", __name__, url_prefix="/cases")

__all__ = ["CHANNEL_WORDS", "PRIORITY_WORDS", "bp"]  # the words are app.web.filters', in the page's language


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


@dataclass
class HistoryEntry:
    """One event of the case history as shown: what happened, its details and any record submitted."""

    event: CaseEvent
    details: list[tuple[str, str]] = field(default_factory=list)
    record: Markup | None = None
    record_title: str | None = None
    sentence: str = ""  # what happened and who did it, in words ("Fault diagnosis recorded by 王磊")
    link: tuple[str, str] | None = None  # (text, address) of what the event made, e.g. an attachment


def _details(event: CaseEvent) -> list[tuple[str, str]]:
    """The few payload facts worth a line in the history, in words."""
    p = event.payload or {}
    if event.type == "case_opened":
        return [(gettext("Number"), str(p.get("number", ""))),
                (gettext("Process"), f"{p.get('process_id', '')} v{p.get('process_version', '')}"),
                (gettext("Customer's notice"), format_utc(p.get("reported_at"))),
                (gettext("Channel"), str(CHANNEL_WORDS.get(str(p.get("channel")), str(p.get("channel", ""))))),
                (gettext("Priority"), str(PRIORITY_WORDS.get(str(p.get("priority")), humanize(p.get("priority")))))]
    if event.type == "task_ready":
        rows = [(gettext("Task"), str(p.get("name", ""))), (gettext("Role"), role_name(p.get("role")))]
        if p.get("due_at"):
            rows.append((gettext("Due"), format_utc(p.get("due_at"))))
        return rows
    if event.type == "task_claimed":
        rows = [(gettext("Task"), str(p.get("name", "")))]
        if p.get("previous"):
            rows.append((gettext("Taken over from"), str(p["previous"])))
        return rows
    if event.type in ("task_released", "task_assigned"):
        return [(gettext("Task"), str(p.get("name", ""))),
                (gettext("Previous assignee"), str(p.get("previous") or "—")),
                (gettext("Assigned to"), str(p.get("assignee") or gettext("— (back in the queue)")))]
    if event.type == "task_completed" and (kept := deadline_outcome(p.get("deadline"))):
        return [(gettext("Task"), str(p.get("name", ""))), (gettext("Deadline"), kept)]
    if event.type in ("task_completed", "task_cancelled"):
        return [(gettext("Task"), str(p.get("name", "")))]
    if event.type.startswith("timer_"):
        return [(gettext("Deadline"), str(p.get("name", ""))), (gettext("Due"), format_utc(p.get("due_at")))]
    if event.type == "case_closed":
        return [(gettext("Outcome"), humanize(p.get("outcome")))]
    if event.type == "attachment_added":
        return [(gettext("File"), str(p.get("filename", ""))),
                (gettext("Type"), str(ATTACHMENT_TYPE_WORDS.get(str(p.get("content_type")),
                                                                str(p.get("content_type", ""))))),
                (gettext("Size"), attachments.size_words(int(p.get("size_bytes") or 0)))]
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
        return render_form_readonly(form, data), localized_title(form)
    if not data:
        return None, None
    rows = Markup("").join(Markup("<dt>{}</dt><dd>{}</dd>").format(k, humanize(v)) for k, v in data.items())
    return Markup('<dl class="form-readonly">{}</dl>').format(rows), key or gettext("Submitted data")


# The reserved actors, as the history names them.
ACTOR_WORDS = {"system": lazy_gettext("the system"), "timer": lazy_gettext("the timer")}


def actor_words(actor: str | None) -> str:
    """Who acted, in words: a user's name, or what the system's own actors are."""
    return str(ACTOR_WORDS.get(actor or "", actor or gettext("someone unknown")))


def _late_words(late_by_ms: Any) -> str:
    """``, 5 min late`` for a deadline that fired after its due time (a stopped worker, a late entry)."""
    if not isinstance(late_by_ms, int) or late_by_ms < 60_000:
        return ""
    return gettext(", %(span)s after it was due", span=format_duration(timedelta(milliseconds=late_by_ms)))


def event_sentence(event: CaseEvent, record_title: str | None = None) -> str:
    """One event as a sentence saying what happened and who did it, with labels rather than codes:
    "Fault diagnosis recorded by 王磊", "Deadline '24 h diagnosis deadline' scheduled"."""
    p = event.payload or {}
    who = actor_words(event.actor)
    name = str(p.get("name") or p.get("task_spec") or "")
    if event.type == "case_opened":
        channel = str(CHANNEL_WORDS.get(str(p.get("channel")), humanize(p.get("channel")))).lower()
        return gettext("Case %(number)s opened by %(who)s from a report by %(channel)s", number=p.get("number", ""),
                       who=who, channel=channel).replace("  ", " ")
    if event.type == "task_ready":
        return gettext("Task '%(task)s' ready for the %(role)s", task=name, role=role_name(p.get("role")).lower())
    if event.type == "task_claimed":
        if p.get("previous"):
            return gettext("Task '%(task)s' claimed by %(who)s, taking it over from %(previous)s", task=name,
                           who=who, previous=p["previous"])
        return gettext("Task '%(task)s' claimed by %(who)s", task=name, who=who)
    if event.type == "task_released":
        return gettext("Task '%(task)s' released by %(who)s: back in the queue", task=name, who=who)
    if event.type == "task_assigned":
        return gettext("Task '%(task)s' assigned to %(assignee)s by %(who)s", task=name,
                       assignee=actor_words(p.get("assignee")), who=who)
    if event.type == "task_completed":
        if record_title:
            return gettext("%(record)s recorded by %(who)s (task '%(task)s')", record=record_title, who=who, task=name)
        return gettext("Task '%(task)s' completed by %(who)s", task=name, who=who)
    if event.type == "task_cancelled":
        return gettext("Task '%(task)s' cancelled by the process (a deadline or another path ended it)", task=name)
    if event.type == "timer_scheduled":
        return gettext("Deadline '%(deadline)s' scheduled, due %(time)s", deadline=name,
                       time=format_utc(p.get("due_at")))
    if event.type == "timer_fired":
        return gettext("Deadline '%(deadline)s' reached", deadline=name) + _late_words(p.get("late_by_ms"))
    if event.type == "timer_cancelled":
        return gettext("Deadline '%(deadline)s' cleared: the work it guarded ended before it was due", deadline=name)
    if event.type == "case_closed":
        if p.get("outcome"):
            return gettext("Case closed: %(outcome)s", outcome=humanize(p.get("outcome")))
        return gettext("Case closed")
    if event.type == "attachment_added":
        return gettext("Attachment '%(file)s' added by %(who)s", file=p.get("filename", ""), who=who)
    if event.type == "document_created":
        kind = documents.known_kinds().get(str(p.get("kind")))
        return gettext("Document '%(name)s' (%(format)s) made by %(who)s",
                       name=str(kind.name) if kind else p.get("name", ""),
                       format=DOCUMENT_FORMAT_WORDS.get(str(p.get("media_type")), p.get("media_type", "")), who=who)
    words = str(EVENT_SENTENCE_FALLBACK.get(event.type) or event.type.replace("_", " ").capitalize())
    if name:
        return gettext("%(what)s (%(name)s) by %(who)s", what=words, name=name, who=who)
    return gettext("%(what)s by %(who)s", what=words, who=who)


# Events other parts of the system may write that have no sentence of their own yet.
EVENT_SENTENCE_FALLBACK = {"case_cancelled": lazy_gettext("Case cancelled")}


def _link(case_id: int, event: CaseEvent) -> tuple[str, str] | None:
    """What an event lets one open from the history: the attachment it added."""
    p = event.payload or {}
    if event.type == "attachment_added" and isinstance(p.get("attachment_id"), int):
        return (f"Download {p.get('filename', 'the file')}",
                url_for("cases.download_attachment", case_id=case_id, attachment_id=p["attachment_id"]))
    if event.type == "document_created" and isinstance(p.get("document_id"), int):
        return (f"Download {p.get('filename', 'the document')}",
                url_for("cases.download_document", case_id=case_id, document_id=p["document_id"]))
    return None


def history(case_id: int) -> list[HistoryEntry]:
    """Every event of the case, in order, ready for the page."""
    entries = []
    for event in list_events(actor=current_actor(), case_id=case_id):
        record, title = _record(event)
        entries.append(HistoryEntry(event=event, details=_details(event), record=record, record_title=title,
                                    sentence=event_sentence(event, title), link=_link(case_id, event)))
    return entries


@dataclass(frozen=True)
class EarlierRecord:
    """A record an earlier task of the case submitted, as a task page shows it (read-only)."""

    title: str  # the form's title, e.g. Fault diagnosis
    task: str  # the task that recorded it
    by: str  # who submitted it
    at: Any  # when
    record: Markup  # the values with the form's labels


@bp.app_template_global("earlier_records")
def earlier_records(case_id: int, work_item_id: int) -> list[EarlierRecord]:
    """The records the case's earlier tasks submitted, oldest first, for a task page: what the warehouse
    keeper and the report writer need (the diagnosis, the parts list). A completed task's page shows only
    those recorded before it."""
    found: list[EarlierRecord] = []
    for event in list_events(actor=current_actor(), case_id=case_id):
        if event.type != "task_completed":
            continue
        if (event.payload or {}).get("work_item_id") == work_item_id:
            break  # this task's own record: it is shown in its own section, and what came after is later
        record, title = _record(event)
        if record is not None:
            found.append(EarlierRecord(title=title or gettext("Record"), task=str(event.payload.get("name", "")),
                                       by=actor_words(event.actor), at=event.occurred_at, record=record))
    return found


def _field_labels() -> dict[str, str]:
    """Each data name of the record forms with its label in the page's language (the first form's wins)."""
    labels: dict[str, str] = {}

    def walk(components: Any) -> None:
        for component in components:
            if component.name and component.name not in labels and component.label:
                labels[component.name] = component_label(component)
            walk(component.children)

    for form in forms():
        walk(form.components)
    return labels


def summary_rows(case: Any) -> list[tuple[str, str]]:
    """The process facts the case summary holds, in the order its process's ``summary_fields`` setting names
    them, in words: the label the page keeps for a computed fact (outcome, free of charge…), else the label
    of the record form field it came from, else the name itself."""
    summary = case.summary or {}
    fields = Catalogue.from_dict(case.process_version.catalogue).summary_fields if case.process_version else ()
    labels = _field_labels() if any(key not in SUMMARY_LABELS for key in fields) else {}
    return [(str(SUMMARY_LABELS.get(key) or labels.get(key) or key.replace("_", " ")), humanize(summary[key]))
            for key in fields if key in summary]


@bp.get("/<id:case_id>")
def detail(case_id: int) -> str:
    """A case: its details, open tasks, deadlines and complete history."""
    actor = current_actor()
    case = steps.case_detail(cases.get_case(case_id, actor=actor), actor=actor)
    equipment = case.equipment
    warranty_open = bool(equipment and equipment.warranty_ends_on
                         and equipment.warranty_ends_on >= now().astimezone(UTC).date())
    return render_template("cases/detail.html", case=case, history=history(case.id),
                           summary=summary_rows(case), warranty_open=warranty_open,
                           channel_words=CHANNEL_WORDS, priority_words=PRIORITY_WORDS,
                           entry_delay=case.opened_at - case.reported_at, **case_page_parts(case.id))


# The forms a document is kept in, as the case page names them.
DOCUMENT_FORMAT_WORDS = {"application/pdf": "PDF", "text/html": "HTML"}


def case_page_parts(case_id: int) -> dict[str, Any]:
    """What the case page shows beyond the case itself: its documents, attachments and whether the diagram viewer is
    installed (the diagram itself is fetched by the page's script)."""
    actor = current_actor()
    return {"attachments": attachments.list_attachments(actor=actor, case_id=case_id),
            "documents": documents.list_documents(actor=actor, case_id=case_id),
            "document_names": {kind: str(words.name) for kind, words in documents.known_kinds().items()},
            "document_formats": DOCUMENT_FORMAT_WORDS,
            "can_attach": actor.can("cases.attach"),
            "attachment_limit": attachments.size_words(attachments.max_bytes()),
            "attachment_types": gettext(", ").join(str(ATTACHMENT_TYPE_WORDS.get(kind, words))
                                                   for kind, words in attachments.ALLOWED_TYPES.items()),
            "attachment_type_words": {kind: str(ATTACHMENT_TYPE_WORDS.get(kind, words))
                                      for kind, words in attachments.ALLOWED_TYPES.items()},
            "diagram_viewer": vendor.viewer_installed(),
            "diagram_states": {state: str(DIAGRAM_STATE_WORDS.get(state, words))
                               for state, words in STATE_WORDS.items()}}


bp.add_app_template_filter(attachments.size_words, "size_words")
bp.add_app_template_filter(actor_words, "actor_words")

UPLOAD_SLACK_BYTES = 64 * 1024  # room for the multipart framing and the CSRF field around the file


def _allow_attachment_uploads() -> None:
    """Before the blueprint's form checks read the body: an attachment upload may be as large as the
    attachment limit (the app's request limit is far smaller), and one beyond it is refused naming the limit."""
    if request.endpoint != "cases.upload_attachment" or request.method != "POST":
        return
    limit = attachments.max_bytes() + UPLOAD_SLACK_BYTES
    if request.content_length is not None and request.content_length > limit:
        limit_bytes = attachments.max_bytes()
        abort(413, description=gettext("The file is larger than the limit of %(limit)s (%(bytes)s bytes) per "
                                       "attachment; scan at a lower resolution or split the document.",
                                       limit=attachments.size_words(limit_bytes), bytes=limit_bytes))
    request.max_content_length = limit


# First of the blueprint's checks: they read the form (CSRF token, text checks), which parses the upload.
bp.before_request_funcs.setdefault(None, []).insert(0, _allow_attachment_uploads)


@bp.post("/<id:case_id>/attachments")
def upload_attachment(case_id: int) -> ResponseReturnValue:
    """Attach a file (fax scan, photo) to the case from the page's upload form."""
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        abort(422, description=gettext("Choose a file to attach first."))
    with unit_of_work():
        attachment = attachments.add_attachment(actor=current_actor(), case_id=case_id,
                                                filename=upload.filename, content=upload.stream)
    flash(gettext("“%(file)s” attached.", file=attachment.filename), "success")
    return redirect(url_for("cases.detail", case_id=case_id, _anchor="attachments"))


@bp.get("/<id:case_id>/attachments/<id:attachment_id>")
def download_attachment(case_id: int, attachment_id: int) -> Response:
    """An attachment's bytes, always as a download (app.attachments.download_headers)."""
    stored = attachments.attachment_file(actor=current_actor(), case_id=case_id, attachment_id=attachment_id)
    response = send_file(stored.path, mimetype=stored.attachment.content_type, conditional=True,
                         etag=stored.attachment.sha256, max_age=0)
    response.headers.update(attachments.download_headers(stored.attachment))
    return response


@bp.get("/<id:case_id>/documents/<id:document_id>")
def download_document(case_id: int, document_id: int) -> Response:
    """A document of the case (the processing report as PDF or HTML), always as a download."""
    stored = documents.document_file(actor=current_actor(), case_id=case_id, document_id=document_id)
    response = send_file(stored.path, mimetype=stored.document.media_type, conditional=True,
                         etag=stored.document.sha256, max_age=0)
    response.headers.update(documents.download_headers(stored.document))
    return response
