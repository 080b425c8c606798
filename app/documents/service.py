"""Making, listing and reading a case's documents: when a case closes, each document its process names (the
``documents`` setting) is rendered from its template as HTML and as PDF, written under a temporary name, and
moved into place only once the transaction commits; a transaction that does not commit leaves no file."""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import force_locale, lazy_gettext
from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from app.audit.models import CaseEvent
from app.audit.service import record_event
from app.auth import Actor, require
from app.cases.models import Case
from app.cases.service import get_case
from app.documents.models import Document
from app.documents.rendering import html_to_pdf, local_time, render_html
from app.engine import now
from app.errors import NotFoundError, ServiceError
from app.extensions import db
from app.forms import FormRegistry, localized_title, render_form_readonly
from app.inputs import MAX_ID
from app.uow import after_commit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DocumentKind:
    """A document a process may name in its ``documents`` setting: its title and its template."""

    name: Any  # its title, in the document's language (lazy)
    template: str  # under app/documents/templates; one template gives the HTML and the PDF


# The documents the system can make. A process naming another is made nothing for (and says so in the log).
DOCUMENT_KINDS: dict[str, DocumentKind] = {
    "processing_report": DocumentKind(lazy_gettext("Processing report"), "processing_report.html"),
    "emergency_maintenance_record": DocumentKind(lazy_gettext("User equipment emergency maintenance record"),
                                                 "emergency_maintenance_record.html"),
}
# Each document is made in these forms, in this order: (media type, file name extension).
MEDIA_TYPES = (("application/pdf", ".pdf"), ("text/html", ".html"))
PART_SUFFIX = ".part"  # a file written in a transaction that has not committed yet
_PENDING_KEY = "servicecase.documents.pending"  # temporary files written in the session's open transaction


class DocumentRenderError(ServiceError):
    """A document could not be rendered or printed (WeasyPrint without pango, a broken template): the close is
    refused and nothing of it is saved, so no case closes without its documents."""

    status = 503


@dataclass(frozen=True)
class StoredDocument:
    """A document ready to be sent: its facts and where its bytes are."""

    document: Document
    path: Path


def storage_dir() -> Path:
    """Where document files live: the instance folder's ``documents``, never under the web root."""
    return Path(current_app.config["INSTANCE_DIR"]) / "documents"


def _path_of(storage_key: str) -> Path:
    # Fanned out by the key's first two characters, as attachments are.
    return storage_dir() / storage_key[:2] / storage_key


def department() -> dict[str, Any]:
    """Who the documents speak for: the department's name (SERVICECASE_DEPARTMENT_NAME) and its emergency
    contact (SERVICECASE_EMERGENCY_NAME, _PHONE, _EMAIL)."""
    contact = current_app.config.get("EMERGENCY_CONTACT") or {}
    return {"name": current_app.config["DEPARTMENT_NAME"],
            "emergency": {key: str(contact.get(key) or "") for key in ("name", "phone", "email")}}


def document_context(case: Case, *, kind: str, forms: FormRegistry) -> dict[str, Any]:
    """What a document's template shows: the case, its customer and equipment, the records its tasks submitted
    (with the record forms' labels), the department and its emergency contact."""
    zone = current_app.config["TIME_ZONE"]
    records = []
    for ev in db.session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id,
                                                        CaseEvent.type == "task_completed").order_by(CaseEvent.seq)):
        payload = ev.payload or {}
        data, key = payload.get("data"), payload.get("form_key")
        if not isinstance(data, dict) or not isinstance(key, str) or key not in forms:
            continue
        form = forms.get(key)
        records.append({"title": localized_title(form), "task": str(payload.get("name") or ""),
                        "by": ev.actor, "at": local_time(ev.occurred_at, zone),
                        "fields": render_form_readonly(form, data)})
    closed = db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.type == "case_closed")
                               .order_by(CaseEvent.seq.desc()).limit(1))
    return {"kind": kind, "title": str(DOCUMENT_KINDS[kind].name), "case": case, "customer": case.customer,
            "equipment": case.equipment, "records": records, "department": department(),
            "outcome": str(((closed.payload or {}).get("outcome") if closed else None) or "").replace("_", " "),
            "reported_at": local_time(case.reported_at, zone), "opened_at": local_time(case.opened_at, zone),
            "closed_at": local_time(case.closed_at, zone), "made_at": local_time(now(), zone),
            "warranty_ends_on": case.equipment.warranty_ends_on.isoformat()
            if case.equipment and case.equipment.warranty_ends_on else "—"}


def render_document(case: Case, *, kind: str, forms: FormRegistry) -> dict[str, bytes]:
    """The document ``kind`` of the case in each media type (bytes by media type), in the department's
    language (SERVICECASE_DEFAULT_LOCALE), whoever's request closed the case; DocumentRenderError when the
    template or the PDF printer fails."""
    locale = current_app.config["DEFAULT_LOCALE"]
    with force_locale(locale):
        # Reading the case's history flushes what the step wrote so far: a failure there is the step's own and
        # keeps its type; only the rendering itself is this module's to explain.
        context = {**document_context(case, kind=kind, forms=forms), "lang": "zh-Hans" if locale == "zh" else locale}
        try:
            html = render_html(DOCUMENT_KINDS[kind].template, context)
            return {"application/pdf": html_to_pdf(html), "text/html": html.encode("utf-8")}
        except Exception as exc:
            log.exception("case %s: the %s could not be made", case.id, kind)
            raise DocumentRenderError(
                f"the case cannot close: its {kind.replace('_', ' ')} could not be made ({type(exc).__name__}: "
                f"{exc}); tell an administrator (PDFs need WeasyPrint with pango 1.44+, see the README)") from exc


def make_documents(*, actor: Actor, case: Case, kinds: tuple[str, ...], forms: FormRegistry) -> list[Document]:
    """Make the documents ``kinds`` of a closing case (documents.make; the caller holds the case's lock): each
    rendered as PDF and HTML, its rows flushed and a ``document_created`` event per file. The files carry
    their final names only once the transaction commits; otherwise they are removed."""
    require(actor, "documents.make")
    made: list[Document] = []
    current = now()
    for kind in kinds:
        if kind not in DOCUMENT_KINDS:
            log.warning("case %s: the process names the document %r, which the system cannot make", case.id, kind)
            continue
        started = time.perf_counter()
        rendered = render_document(case, kind=kind, forms=forms)
        log.info("case %s: %s rendered in %.0f ms", case.id, kind, (time.perf_counter() - started) * 1000)
        with force_locale("en"):  # the row keeps the English name, as the API speaks English
            name = str(DOCUMENT_KINDS[kind].name)
        for media_type, extension in MEDIA_TYPES:
            data = rendered[media_type]
            key = secrets.token_hex(16)
            _write_pending(_path_of(key), data)
            made.append(Document(case_id=case.id, kind=kind, name=name, media_type=media_type,
                                 filename=f"{case.number or case.id}-{kind}{extension}", storage_key=key,
                                 size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                 created_at=current, created_by=actor.username))
    if made:
        db.session.add_all(made)
        db.session.flush()  # ids for the events
    for document in made:
        record_event(case=case, type="document_created", actor=actor.username, payload={
            "document_id": document.id, "kind": document.kind, "name": document.name,
            "media_type": document.media_type, "filename": document.filename, "size_bytes": document.size_bytes})
    return made


def list_documents(*, actor: Actor, case_id: int) -> list[Document]:
    """The case's documents, oldest first (cases.read; NotFoundError for an unknown case)."""
    require(actor, "cases.read")
    case = get_case(_checked_id(case_id, "case"), actor=actor)
    return list(db.session.scalars(select(Document).where(Document.case_id == case.id)
                                   .order_by(Document.created_at, Document.id)))


def document_file(*, actor: Actor, case_id: int, document_id: int) -> StoredDocument:
    """One document of a case and the path of its bytes (cases.read; NotFoundError if it is not this case's,
    or its file is missing)."""
    require(actor, "cases.read")
    found = (db.session.get(Document, document_id)
             if 1 <= case_id <= MAX_ID and 1 <= document_id <= MAX_ID else None)
    if found is None or found.case_id != case_id:
        raise NotFoundError(f"case {case_id} has no document {document_id}")
    path = _path_of(found.storage_key)
    if not path.is_file():
        raise NotFoundError(f"the file of document {document_id} ({found.filename}) is missing from the document "
                            f"store {storage_dir()}; tell an administrator")
    return StoredDocument(found, path)


def download_headers(document: Document) -> dict[str, str]:
    """How every download of a document is served, pages and API alike: as a file to save, under its own
    type, which the browser must not second-guess; an HTML document runs and loads nothing even if opened."""
    media_type = document.media_type if document.media_type in dict(MEDIA_TYPES) else "application/octet-stream"
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in document.filename)
    return {
        "Content-Type": f"{media_type}; charset=utf-8" if media_type == "text/html" else media_type,
        "Content-Disposition": f'attachment; filename="{ascii_name}"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Cache-Control": "private, no-store",
    }


def _checked_id(value: int, what: str) -> int:
    if not 1 <= value <= MAX_ID:
        raise NotFoundError(f"{what} {value} does not exist")
    return value


# -- the file on disk follows the transaction ---------------------------------------------------------
def _write_pending(path: Path, data: bytes) -> None:
    """Write the bytes durably under a temporary name; they take their final name after the commit
    (app.uow.after_commit), and are removed if the transaction (or the savepoint they were written in) ends
    without committing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + PART_SUFFIX)
    _install_hooks()
    pending: list[Path] = db.session.info.setdefault(_PENDING_KEY, [])
    pending.append(partial)
    try:
        with open(partial, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ServiceError(f"the document could not be stored in {storage_dir()}: {exc.strerror}") from exc
    after_commit(lambda: _move_into_place(partial, path))


def _move_into_place(partial: Path, path: Path) -> None:
    os.replace(partial, path)
    pending = db.session.info.get(_PENDING_KEY)
    if pending and partial in pending:
        pending.remove(partial)


def _remove_leftovers(session: Session, transaction: SessionTransaction) -> None:
    # After the root transaction ends (the after-commit moves ran already): whatever is still pending was
    # written in a transaction or savepoint that did not commit.
    if transaction.parent is None:
        for partial in session.info.pop(_PENDING_KEY, []):
            partial.unlink(missing_ok=True)


def _install_hooks() -> None:
    if not event.contains(db.session, "after_transaction_end", _remove_leftovers):
        event.listen(db.session, "after_transaction_end", _remove_leftovers)


# -- files without a row, rows without a file ------------------------------------------------------------
@dataclass
class SweepReport:
    """What a sweep of the documents folder found and did."""

    removed: list[Path] = field(default_factory=list)  # files no document names (or, on a dry run, to be removed)
    completed: list[Path] = field(default_factory=list)  # committed documents whose move into place was cut off
    kept_young: int = 0  # orphans younger than the threshold: their transaction may still commit
    missing: list[Document] = field(default_factory=list)  # documents whose file is gone


def sweep_orphaned_files(*, actor: Actor, older_than: timedelta = timedelta(hours=1),
                         dry_run: bool = False) -> SweepReport:
    """Remove files in the documents folder that no document names and that are older than ``older_than``
    (left by a process killed before its commit), finish the move of committed documents whose process was
    killed between the commit and the move, and list documents whose file is missing (documents.make)."""
    require(actor, "documents.make")
    report = SweepReport()
    root = storage_dir()
    cutoff = time.time() - older_than.total_seconds()
    files = sorted(path for path in root.glob("*/*") if path.is_file()) if root.is_dir() else []
    keys = {path.name.removesuffix(PART_SUFFIX) for path in files}
    known = (set(db.session.scalars(select(Document.storage_key).where(Document.storage_key.in_(keys))))
             if keys else set())
    for path in files:
        key = path.name.removesuffix(PART_SUFFIX)
        if key in known and path.parent.name == key[:2]:
            if path.name.endswith(PART_SUFFIX) and not (final := path.with_name(key)).exists():
                if not dry_run:
                    os.replace(path, final)
                report.completed.append(final)
            continue
        try:
            modified = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if modified > cutoff:
            report.kept_young += 1
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
        report.removed.append(path)
    completed = set(report.completed)
    for document in db.session.scalars(select(Document).order_by(Document.id)):
        path = _path_of(document.storage_key)
        if not path.is_file() and path not in completed:
            report.missing.append(document)
    return report


def install() -> None:
    """Tell the deploy check which documents a process may name (idempotent)."""
    from app.engine.parser import DOCUMENT_KINDS as deployable

    deployable.update(DOCUMENT_KINDS)


def known_kinds() -> Mapping[str, DocumentKind]:
    """The documents the system can make, by the name a process's ``documents`` setting uses."""
    return DOCUMENT_KINDS
