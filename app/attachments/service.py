"""Adding, listing and reading a case's attachments: the type is sniffed from the bytes, the size is capped,
the bytes are written under a random key outside the web root, and a failed transaction leaves no file."""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import filetype
from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session, SessionTransaction

from app.attachments.models import Attachment
from app.audit.service import record_event
from app.auth import Actor, require
from app.cases.service import get_case, lock_case
from app.engine import now
from app.errors import InvalidDataError, NotFoundError, ServiceError
from app.extensions import db
from app.inputs import MAX_ID

# The kinds of file a case takes (fax scans, photos, documents), by the type sniffed from their bytes.
ALLOWED_TYPES = {
    "application/pdf": "PDF",
    "image/png": "PNG image",
    "image/jpeg": "JPEG image",
    "image/tiff": "TIFF image",
    "image/gif": "GIF image",
    "image/webp": "WebP image",
    "text/plain": "plain text",
}
EXTENSIONS = {"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/tiff": ".tif",
              "image/gif": ".gif", "image/webp": ".webp", "text/plain": ".txt"}
MAX_FILENAME = 255  # characters kept of the uploader's file name
_PENDING_KEY = "servicecase.attachments.written"  # files written in the session's open transaction
# Characters no file name keeps: path separators, characters Windows refuses, and every control character.
_UNSAFE_NAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f-\x9f]')
# Text that plain text may hold besides printable characters: tab, line feed, carriage return, form feed.
_TEXT_CONTROLS = frozenset("\t\n\r\f")


class AttachmentTooLargeError(ServiceError):
    """The file is larger than the setting SERVICECASE_ATTACHMENT_MAX_BYTES allows."""

    status = 413


class UnsupportedAttachmentError(ServiceError):
    """The file's bytes are of a kind the case does not take (an executable, an archive, HTML…)."""

    status = 415


@dataclass(frozen=True)
class StoredFile:
    """An attachment ready to be sent: its facts and where its bytes are."""

    attachment: Attachment
    path: Path


def max_bytes() -> int:
    """The largest attachment accepted, in bytes (setting SERVICECASE_ATTACHMENT_MAX_BYTES)."""
    return int(current_app.config["ATTACHMENT_MAX_BYTES"])


def size_words(size: int) -> str:
    """A size for people: 20 MB, 512 KB, 900 bytes."""
    for unit, name in ((1_000_000, "MB"), (1_000, "KB")):
        if size >= unit:
            return f"{size / unit:.1f}".removesuffix(".0") + f" {name}"
    return f"{size} bytes"


def too_large_message(limit: int | None = None) -> str:
    """The refusal of a file over the limit, naming the limit."""
    limit = max_bytes() if limit is None else limit
    return (f"the file is larger than the limit of {size_words(limit)} ({limit} bytes) per attachment; "
            "scan at a lower resolution or split the document")


def storage_dir() -> Path:
    """Where attachment files live: the instance folder's ``attachments``, never under the web root."""
    return Path(current_app.config["INSTANCE_DIR"]) / "attachments"


def _path_of(storage_key: str) -> Path:
    # Fanned out by the key's first two characters so no folder grows to millions of entries.
    return storage_dir() / storage_key[:2] / storage_key


def sanitise_filename(name: str | None, content_type: str) -> str:
    """The uploader's file name made safe to keep and show: no folders, no control or reserved characters,
    no leading dots, at most MAX_FILENAME characters with the extension kept; a neutral name if nothing is
    left. It is for display and the download's suggested name only: the file is stored under a random key."""
    text = unicodedata.normalize("NFC", name or "")
    text = re.split(r"[\\/]", text)[-1]  # a browser may send C:\fakepath\scan.pdf
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cs", "Co", "Cn", "Cf"))
    text = _UNSAFE_NAME.sub("_", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    if not text:
        return "attachment" + EXTENSIONS.get(content_type, "")
    if len(text) > MAX_FILENAME:
        stem, dot, ext = text.rpartition(".")
        ext = f".{ext}" if dot and 0 < len(ext) <= 10 else ""
        text = (stem if ext else text)[: MAX_FILENAME - len(ext)].rstrip(" .") + ext
    return text


def _is_plain_text(content: bytes) -> bool:
    """UTF-8 text of printable characters and ordinary line controls (a NUL or an escape is binary)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch in _TEXT_CONTROLS or unicodedata.category(ch) != "Cc" for ch in text)


def sniff_type(content: bytes) -> str:
    """The content type of ``content`` read from its bytes (the client's declared type and file name are
    not trusted); UnsupportedAttachmentError naming the detected type when it is not one we take."""
    kind = filetype.guess(content)
    if kind is not None and kind.mime in ALLOWED_TYPES:
        return str(kind.mime)
    allowed = ", ".join(ALLOWED_TYPES.values())
    if kind is not None:
        raise UnsupportedAttachmentError(
            f"the file is {kind.mime} (.{kind.extension}), which a case does not take; allowed: {allowed}",
            errors={"file": [f"detected type {kind.mime} is not allowed"], "detected_type": [str(kind.mime)]})
    if _is_plain_text(content):
        return "text/plain"
    raise UnsupportedAttachmentError(
        f"the file is binary data of no recognised type (application/octet-stream); allowed: {allowed}",
        errors={"file": ["detected type application/octet-stream is not allowed"],
                "detected_type": ["application/octet-stream"]})


def _read_bounded(content: IO[bytes] | bytes, limit: int) -> bytes:
    """At most ``limit`` bytes of the upload (AttachmentTooLargeError beyond), never the whole of a huge one."""
    data = content if isinstance(content, bytes) else content.read(limit + 1)
    if len(data) > limit:
        raise AttachmentTooLargeError(too_large_message(limit),
                                      errors={"file": [f"larger than {limit} bytes"]})
    return data


def add_attachment(*, actor: Actor, case_id: int, filename: str | None, content: IO[bytes] | bytes) -> Attachment:
    """Add a file to a case: sniffed, size-checked, written to disk, then its row and an ``attachment_added``
    event flushed. If the transaction does not commit, the file is removed again."""
    require(actor, "cases.attach")
    case = lock_case(_checked_id(case_id, "case"))
    limit = max_bytes()
    data = _read_bounded(content, limit)
    if not data:
        raise InvalidDataError("the file is empty", errors={"file": ["the file has no content"]})
    content_type = sniff_type(data)
    name = sanitise_filename(filename, content_type)
    key = secrets.token_hex(16)
    path = _path_of(key)
    _write_file(path, data)
    attachment = Attachment(case_id=case.id, storage_key=key, filename=name, content_type=content_type,
                            size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                            uploaded_at=now(), uploaded_by=actor.username)
    db.session.add(attachment)
    db.session.flush()
    record_event(case=case, type="attachment_added", actor=actor.username, payload={
        "attachment_id": attachment.id, "filename": name, "content_type": content_type,
        "size_bytes": len(data)})
    return attachment


def list_attachments(*, actor: Actor, case_id: int) -> list[Attachment]:
    """The case's attachments, oldest first (NotFoundError for an unknown case)."""
    require(actor, "cases.read")
    case = get_case(_checked_id(case_id, "case"), actor=actor)
    return list(db.session.scalars(select(Attachment).where(Attachment.case_id == case.id)
                                   .order_by(Attachment.uploaded_at, Attachment.id)))


def attachment_file(*, actor: Actor, case_id: int, attachment_id: int) -> StoredFile:
    """One attachment of a case and the path of its bytes (NotFoundError if it is not this case's, or its
    file is missing from the disk)."""
    require(actor, "cases.read")
    found = (db.session.get(Attachment, attachment_id)
             if 1 <= case_id <= MAX_ID and 1 <= attachment_id <= MAX_ID else None)
    if found is None or found.case_id != case_id:
        raise NotFoundError(f"case {case_id} has no attachment {attachment_id}")
    path = _path_of(found.storage_key)
    if not path.is_file():
        raise NotFoundError(f"the file of attachment {attachment_id} ({found.filename}) is missing from the "
                            f"attachment store {storage_dir()}; tell an administrator")
    return StoredFile(found, path)


def _ascii_fallback(name: str) -> str:
    """The file name for clients that do not read ``filename*``: ASCII letters kept, the extension too."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""

    def ascii_only(text: str) -> str:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        return re.sub(r"[^A-Za-z0-9._ -]", "_", text).strip(" ._")

    stem, ext = ascii_only(stem) or "attachment", ascii_only(ext)
    return f"{stem}.{ext}" if ext else stem


def download_headers(attachment: Attachment) -> dict[str, str]:
    """How every download of an attachment is served, pages and API alike: as a file to save (never shown
    inline), under its own sniffed type (never text/html), which the browser must not second-guess."""
    ascii_name = _ascii_fallback(attachment.filename)
    content_type = attachment.content_type
    if content_type not in ALLOWED_TYPES:  # a row from outside this service: send opaque bytes
        content_type = "application/octet-stream"
    return {
        "Content-Type": f"{content_type}; charset=utf-8" if content_type == "text/plain" else content_type,
        "Content-Disposition": f'attachment; filename="{ascii_name}"; filename*=UTF-8\'\'{quote(attachment.filename)}',
        "X-Content-Type-Options": "nosniff",
        # Even if opened directly, the file runs nothing and loads nothing.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-store",
    }


def _checked_id(value: int, what: str) -> int:
    if not 1 <= value <= MAX_ID:
        raise NotFoundError(f"{what} {value} does not exist")
    return value


# -- files without a row, rows without a file ------------------------------------------------------------
@dataclass
class SweepReport:
    """What a sweep of the attachment folder found: files no attachment names (left by a process killed between
    writing a file and committing its row), half-written ``.part`` files, and attachments whose file is gone."""

    removed: list[Path] = field(default_factory=list)  # removed (or, on a dry run, to be removed)
    removed_bytes: int = 0
    kept_young: int = 0  # orphans younger than the threshold: their transaction may still commit
    missing: list[Attachment] = field(default_factory=list)


SWEEP_BATCH = 500  # storage keys looked up per query


def sweep_orphaned_files(*, actor: Actor, older_than: timedelta = timedelta(hours=1),
                         dry_run: bool = False) -> SweepReport:
    """Remove files in the attachment folder that no attachment names and that are older than ``older_than``
    (by their modification time on disk, the wall clock), and list the attachments whose file is missing
    (attachments.manage). A file younger than the threshold is kept: its upload may not have committed yet."""
    require(actor, "attachments.manage")
    report = SweepReport()
    root = storage_dir()
    cutoff = time.time() - older_than.total_seconds()
    files = [path for path in root.glob("*/*") if path.is_file()] if root.is_dir() else []
    known: set[str] = set()
    keys = [path.name for path in files if not path.name.endswith(".part")]
    for start in range(0, len(keys), SWEEP_BATCH):
        batch = keys[start:start + SWEEP_BATCH]
        known.update(db.session.scalars(select(Attachment.storage_key).where(Attachment.storage_key.in_(batch))))
    for path in sorted(files):
        if path.name in known and path.parent.name == path.name[:2]:
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # removed meanwhile
            continue
        if stat.st_mtime > cutoff:
            report.kept_young += 1
            continue
        if not dry_run:
            path.unlink(missing_ok=True)
        report.removed.append(path)
        report.removed_bytes += stat.st_size
    for attachment in db.session.scalars(select(Attachment).order_by(Attachment.id)):
        if not _path_of(attachment.storage_key).is_file():
            report.missing.append(attachment)
    return report


# -- the file on disk follows the transaction ---------------------------------------------------------
def _write_file(path: Path, data: bytes) -> None:
    """Write the bytes durably (a partial file never carries the final name), and have them removed
    again unless the session's transaction commits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    _install_hooks()
    pending: list[Path] = db.session.info.setdefault(_PENDING_KEY, [])
    pending.append(path)
    try:
        with open(partial, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ServiceError(f"the attachment could not be stored in {storage_dir()}: {exc.strerror}") from exc


def _keep_files(session: Session) -> None:
    if not session.in_nested_transaction():  # committed for good: the files stay
        session.info.pop(_PENDING_KEY, None)


def _remove_files(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction ended without a commit: its files go
        for path in session.info.pop(_PENDING_KEY, []):
            path.unlink(missing_ok=True)


def _install_hooks() -> None:
    hooks: list[tuple[str, Any]] = [("after_commit", _keep_files), ("after_transaction_end", _remove_files)]
    for name, hook in hooks:
        if not event.contains(db.session, name, hook):
            event.listen(db.session, name, hook)
