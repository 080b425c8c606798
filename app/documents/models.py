"""Documents: a file the system made for a case (a processing report as PDF or HTML), its bytes on disk."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import UTCDateTime, db


class Document(db.Model):  # type: ignore[name-defined,misc]
    """A document made for a case; the bytes live at ``storage_key`` under the instance's documents folder."""

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key used in URLs
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)  # the case it was made for
    kind: Mapped[str] = mapped_column(String(100))  # which document: processing_report, emergency_maintenance_record
    name: Mapped[str] = mapped_column(String(200))  # its title for people, "Processing report"
    media_type: Mapped[str] = mapped_column(String(100))  # application/pdf or text/html
    filename: Mapped[str] = mapped_column(String(255))  # the download's name: FH-2026-000001-processing_report.pdf
    storage_key: Mapped[str] = mapped_column(String(32), unique=True)  # random hex: the file's name on disk
    size_bytes: Mapped[int] = mapped_column()  # length of the stored file
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored bytes, to spot damage
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was made
    created_by: Mapped[str] = mapped_column(String(100))  # whose step made it (the user who closed the case)
