"""Deployed process versions: the BPMN source and its parsed spec, stored once per version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column

from app.extensions import JSONData, UTCDateTime, db

# The longest element ids, names, roles and form keys a version's elements may carry: the work items and
# timers that copy them (app.tasks.models, app.timers.models) have columns this long, and deploy refuses more.
ELEMENT_ID_LENGTH = 100
ELEMENT_NAME_LENGTH = 200
ROLE_LENGTH = 50
FORM_KEY_LENGTH = 100
TIMER_KIND_LENGTH = 20

class ProcessVersion(db.Model):  # type: ignore[name-defined,misc]
    """One immutable deployed version of a BPMN process."""

    __tablename__ = "process_versions"
    __table_args__ = (
        UniqueConstraint("process_id", "version", name="uq_process_versions_process_id_version"),
        Index("ix_process_versions_process_id_version", "process_id", "version"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key that cases point at
    process_id: Mapped[str] = mapped_column(String(100))  # the BPMN process id, also the file stem
    version: Mapped[int] = mapped_column()  # 1, 2, 3... per process id
    name: Mapped[str] = mapped_column(String(200))  # the process's human name
    filename: Mapped[str] = mapped_column(String(300))  # the file it was deployed from
    sha256: Mapped[str] = mapped_column(String(64))  # of the BPMN and the tables it runs; equal to latest: no deploy
    bpmn_source: Mapped[str] = deferred(mapped_column(Text))  # the BPMN XML as deployed, decoded by its BOM/declaration
    spec_json: Mapped[str] = deferred(mapped_column(Text))  # serialized specs + catalogue, restored per process
    catalogue: Mapped[dict[str, Any]] = mapped_column(JSONData)  # human tasks, timers, lanes, business rule tasks
    decisions: Mapped[dict[str, str]] = deferred(mapped_column(  # {decision id: DMN XML} of the tables it runs
        JSONData, nullable=False, default=dict, server_default="{}"))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was deployed
    deployed_by: Mapped[str] = mapped_column(String(100))  # who deployed it
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("process_versions.id"))  # version it followed
    note: Mapped[str] = mapped_column(String(500), default="")  # deployer's note for this version

    @property
    def label(self) -> str:
        """``process_id v3``."""
        return f"{self.process_id} v{self.version}"
