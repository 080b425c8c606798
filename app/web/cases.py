"""Case pages: the list and one case with its diagram, attachments and history (opening a case is
app/web/intake.py, on this blueprint)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, send_file, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
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
from app.web.events import DOCUMENT_FORMAT_WORDS, actor_words, event_details, event_link, event_sentence
from app.web.filters import (
    ATTACHMENT_TYPE_WORDS,
    CHANNEL_WORDS,
    DIAGRAM_STATE_WORDS,
    PRIORITY_WORDS,
    SUMMARY_LABELS,
    humanize,
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


def history(case_id: int) -> list[HistoryEntry]:
    """Every event of the case, in order, ready for the page."""
    entries = []
    for event in list_events(actor=current_actor(), case_id=case_id):
        record, title = _record(event)
        entries.append(HistoryEntry(event=event, details=event_details(event), record=record, record_title=title,
                                    sentence=event_sentence(event, title), link=event_link(event, case_id)))
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
