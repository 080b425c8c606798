"""Cases: open, list, read, history, diagram, attachments, documents."""

from __future__ import annotations

from typing import Any

from flask import Response, request, send_file
from flask.views import MethodView
from marshmallow import RAISE
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from app.api.common import ApiBlueprint, current_actor
from app.api.guard import takes_uploads
from app.api.schemas import (
    AttachmentListSchema,
    AttachmentSchema,
    CaseCreateSchema,
    CaseDiagramSchema,
    CaseListSchema,
    CaseOpenedSchema,
    CaseQuerySchema,
    CaseSchema,
    DocumentListSchema,
    EventListSchema,
)
from app.attachments import service as attachments
from app.audit.service import list_events
from app.cases import service as cases
from app.documents import service as documents
from app.errors import InvalidDataError
from app.flows import steps
from app.flows.diagram import case_diagram
from app.inputs import printable
from app.uow import unit_of_work

blp = ApiBlueprint("api_cases", __name__, url_prefix="/api/cases", description="Cases")


@blp.route("")
class Cases(MethodView):
    """The case collection."""

    @blp.arguments(CaseQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, CaseListSchema)
    @blp.errors()
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List cases (filters: status, process, text; paginated)."""
        items, total = cases.list_cases(actor=current_actor(),
                                        status=args.get("status"), process_id=args.get("process"),
                                        text=args.get("text"), customer_id=args.get("customer_id"),
                                        equipment_id=args.get("equipment_id"), page=args["page"],
                                        per_page=args["per_page"])
        return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}

    @blp.arguments(CaseCreateSchema)
    @blp.response(201, CaseOpenedSchema)
    @blp.errors(400, 413, 415, e403="The acting user may not open cases",
                e422="Invalid fields, an unknown process or customer, or a notice time out of range")
    def post(self, args: dict[str, Any]) -> Any:
        """Open a case as the customer reported it and run it to its first task; `other_open_cases` names the
        equipment's cases that were already open."""
        actor = current_actor()
        equipment_id = args.get("equipment_id")
        with unit_of_work():
            others = (cases.open_cases_of_equipment(actor=actor, equipment_ids=[equipment_id]).get(equipment_id, [])
                      if equipment_id is not None else [])
            case = steps.open_case(actor=actor, process_id=args["process"],
                                   reported_at=args["reported_at"], channel=args["channel"],
                                   description=args["description"], title=args.get("title"),
                                   priority=args["priority"], customer_id=args.get("customer_id"),
                                   equipment_id=equipment_id)
        return _Opened(case, others)


class _Opened:
    """A case just opened, seen with the cases its equipment already had open."""

    def __init__(self, case: Any, others: list[Any]) -> None:
        self.case = case
        self.other_open_cases = others

    def __getattr__(self, name: str) -> Any:
        return getattr(self.case, name)


@blp.route("/<id:case_id>")
class CaseResource(MethodView):
    """One case."""

    @blp.response(200, CaseSchema)
    @blp.errors(e404="Unknown case")
    def get(self, case_id: int) -> Any:
        """A case with its open tasks and deadlines."""
        actor = current_actor()
        return steps.case_detail(cases.get_case(case_id, actor=actor), actor=actor)


@blp.route("/<id:case_id>/events")
class CaseEvents(MethodView):
    """A case's history."""

    @blp.response(200, EventListSchema)
    @blp.errors(e404="Unknown case")
    def get(self, case_id: int) -> dict[str, Any]:
        """Every event of the case, in order."""
        actor = current_actor()
        case = cases.get_case(case_id, actor=actor)
        return {"case_id": case.id, "number": case.number, "items": list_events(actor=actor, case_id=case.id)}


@blp.route("/<id:case_id>/diagram")
class CaseDiagramResource(MethodView):
    """A case on its process diagram."""

    @blp.response(200, CaseDiagramSchema)
    @blp.errors(e403="The acting user may not read cases", e404="Unknown case")
    def get(self, case_id: int) -> Any:
        """The BPMN XML of the case's pinned process version and the state of every element the case reached
        (done, active, waiting): what the case page's diagram highlights."""
        return case_diagram(actor=current_actor(), case_id=case_id)


UPLOAD_FIELD = "file"
UPLOAD_SLACK_BYTES = 64 * 1024  # room for the multipart framing around the file
UPLOAD_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": [UPLOAD_FIELD], "additionalProperties": False,
    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary", "description": (
        "The file: PDF, PNG, JPEG, TIFF, GIF, WebP or plain UTF-8 text, sniffed from its bytes; at most "
        "SERVICECASE_ATTACHMENT_MAX_BYTES (default 20 MB)")}}}}}}


def _upload_limit() -> int:
    return attachments.max_bytes() + UPLOAD_SLACK_BYTES


def uploaded_file() -> FileStorage:
    """The one file of a multipart upload in the field ``file``; errors name the limit, the field, the type."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(f"send the file as multipart/form-data in the field '{UPLOAD_FIELD}', "
                                   f"not {request.mimetype or 'without a Content-Type'}")
    if request.content_length is not None and request.content_length > _upload_limit():
        raise attachments.AttachmentTooLargeError(attachments.too_large_message())
    try:
        files, form = request.files, request.form
    except RequestEntityTooLarge:
        raise attachments.AttachmentTooLargeError(attachments.too_large_message()) from None
    unknown = sorted({*files, *form} - {UPLOAD_FIELD})
    errors: dict[str, list[str]] = {printable(name): ["unknown field"] for name in unknown}
    upload = files.get(UPLOAD_FIELD)
    if upload is None:
        errors[UPLOAD_FIELD] = [("send the file itself, not text, in this field" if UPLOAD_FIELD in form
                                 else "missing: send the file in this multipart field")]
    if errors:
        raise InvalidDataError("the upload has invalid fields", errors=errors)
    assert upload is not None
    return upload


def send_attachment(stored: attachments.StoredFile) -> Response:
    """The attachment's bytes with the headers every download carries (app.attachments.download_headers)."""
    response = send_file(stored.path, mimetype=stored.attachment.content_type, conditional=True,
                         etag=stored.attachment.sha256, max_age=0)
    response.headers.update(attachments.download_headers(stored.attachment))
    return response


takes_uploads("api_cases.CaseAttachments", _upload_limit)


@blp.route("/<id:case_id>/attachments")
class CaseAttachments(MethodView):
    """A case's attachments: fax scans, photos, documents."""

    @blp.response(200, AttachmentListSchema)
    @blp.errors(e403="The acting user may not read cases", e404="Unknown case")
    def get(self, case_id: int) -> dict[str, Any]:
        """The case's attachments, oldest first."""
        items = attachments.list_attachments(actor=current_actor(), case_id=case_id)
        return {"case_id": case_id, "items": items}

    @blp.doc(requestBody=UPLOAD_BODY)
    @blp.response(201, AttachmentSchema)
    @blp.errors(400, e403="The acting user may not add attachments to cases", e404="Unknown case",
                e413="The file is larger than the limit (named in the message)",
                e415="Not multipart/form-data, or a file of a type a case does not take (the detected type is "
                     "named)",
                e422="No file in the field 'file', an empty file, or unknown fields")
    def post(self, case_id: int) -> Any:
        """Attach a file to the case (multipart/form-data, field ``file``); its type is sniffed from its bytes
        and it is recorded in the history as attachment_added."""
        upload = uploaded_file()
        with unit_of_work():
            attachment = attachments.add_attachment(actor=current_actor(), case_id=case_id,
                                                    filename=upload.filename, content=upload.stream)
        return attachment


@blp.route("/<id:case_id>/attachments/<id:attachment_id>/download")
class CaseAttachmentDownload(MethodView):
    """One attachment's bytes."""

    @blp.doc(responses={"200": {"description": (
        "The file, with its sniffed content type, Content-Disposition: attachment and "
        "X-Content-Type-Options: nosniff"), "content": {"application/octet-stream": {
            "schema": {"type": "string", "format": "binary"}}}}})
    @blp.errors(e403="The acting user may not read cases", e404="Unknown case or attachment, or its file is missing")
    def get(self, case_id: int, attachment_id: int) -> Any:
        """Download an attachment: always as a download, never shown inline."""
        stored = attachments.attachment_file(actor=current_actor(), case_id=case_id, attachment_id=attachment_id)
        return send_attachment(stored)


@blp.route("/<id:case_id>/documents")
class CaseDocuments(MethodView):
    """The documents made when the case closed: the processing report as PDF and HTML."""

    @blp.response(200, DocumentListSchema)
    @blp.errors(e403="The acting user may not read cases", e404="Unknown case")
    def get(self, case_id: int) -> dict[str, Any]:
        """The case's documents, oldest first, each with its name, media type and the url that serves it."""
        items = documents.list_documents(actor=current_actor(), case_id=case_id)
        return {"case_id": case_id, "items": items}


def send_document(stored: documents.StoredDocument) -> Response:
    """The document's bytes with the headers every document download carries (app.documents.download_headers)."""
    response = send_file(stored.path, mimetype=stored.document.media_type, conditional=True,
                         etag=stored.document.sha256, max_age=0)
    response.headers.update(documents.download_headers(stored.document))
    return response


@blp.route("/<id:case_id>/documents/<id:document_id>")
class CaseDocumentFile(MethodView):
    """One document's bytes."""

    @blp.doc(responses={"200": {"description": (
        "The file (application/pdf or text/html), with Content-Disposition: attachment and "
        "X-Content-Type-Options: nosniff"), "content": {"application/pdf": {
            "schema": {"type": "string", "format": "binary"}}, "text/html": {"schema": {"type": "string"}}}}})
    @blp.errors(e403="The acting user may not read cases", e404="Unknown case or document, or its file is missing")
    def get(self, case_id: int, document_id: int) -> Any:
        """Download a document: always as a download, never shown inline."""
        stored = documents.document_file(actor=current_actor(), case_id=case_id, document_id=document_id)
        return send_document(stored)
