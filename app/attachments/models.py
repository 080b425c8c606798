"""Attachments: one file added to a case, its bytes on disk under a random key, its facts here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import UTCDateTime, db


class Attachment(db.Model):  # type: ignore[name-defined,misc]
    """A file added to a case; the bytes live at ``storage_key`` under the instance's attachments folder."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key used in URLs
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # the case it belongs to
    storage_key: Mapped[str] = mapped_column(String(32), unique=True)  # random hex: the file's name on disk
    filename: Mapped[str] = mapped_column(String(255))  # the uploader's file name, sanitised, for display
    content_type: Mapped[str] = mapped_column(String(100))  # sniffed from the bytes, never the client's word
    size_bytes: Mapped[int] = mapped_column()  # length of the stored file
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored bytes, to spot a duplicate or damage
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was added
    uploaded_by: Mapped[str] = mapped_column(String(100))  # who added it
