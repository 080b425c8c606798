"""Deploying BPMN files as process versions and looking versions up."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from app.auth import ROLES, Actor, require
from app.engine import Catalogue, DecisionTable, ProcessDefinition, ProcessDefinitionError, get_engine, now
from app.engine.parser import element_line, process_id_of, source_text
from app.errors import InvalidDataError, NotFoundError
from app.extensions import db
from app.forms import FormRegistry
from app.processes.models import (
    ELEMENT_ID_LENGTH,
    ELEMENT_NAME_LENGTH,
    FORM_KEY_LENGTH,
    ROLE_LENGTH,
    TIMER_KIND_LENGTH,
    ProcessVersion,
)
from app.timers.schedules import sync_schedule

MAX_BPMN_BYTES = 2_000_000
MAX_DMN_BYTES = 1_000_000

@dataclass(frozen=True)
class Deployment:
    """The outcome of deploying one file: the version, and whether it is new."""

    version: ProcessVersion
    created: bool


@dataclass(frozen=True)
class _Checked:
    filename: str
    source: bytes
    text: str
    sha256: str
    definition: ProcessDefinition
    decisions: dict[str, str]  # {decision id: DMN XML} of the tables the process runs


def case_prefix(version: ProcessVersion) -> str:
    """The prefix of a version's case numbers: its process's ``case_prefix`` setting (FH for fault handling),
    else the initials of the process id's words."""
    prefix = Catalogue.from_dict(version.catalogue).case_prefix
    return prefix or "".join(w[0] for w in version.process_id.split("_") if w).upper()[:4]


def _limit(column: Any) -> int:
    """The length of a string column of the version's own table."""
    length = getattr(column.type, "length", None)
    if not isinstance(length, int):
        raise TypeError(f"column {column} has no length")
    return length


def _too_long(what: str, value: str | None, limit: int, *, source: bytes, filename: str,
              element_id: str | None, where: str = "") -> None:
    """Refuse a value longer than ``limit`` (the column that copies it), naming the element and its line."""
    if value is not None and len(value) > limit:
        raise ProcessDefinitionError(
            f"the {what} {value[:40]!r}... is {len(value)} characters long{where}; at most {limit} are allowed",
            filename=filename, element_id=element_id,
            line=element_line(source, element_id) if element_id else None)


def _check_catalogue(catalogue: Catalogue, *, source: bytes, filename: str, forms: FormRegistry) -> None:
    """Refuse what the parser accepts but a case could not store: values longer than their columns, forms
    that do not exist. Checked at deploy so that no case of the file ever fails on them."""
    def check(what: str, value: str | None, limit: int, element_id: str | None, where: str = "") -> None:
        _too_long(what, value, limit, source=source, filename=filename, element_id=element_id, where=where)

    check("process id", catalogue.process_id, _limit(ProcessVersion.__table__.c.process_id), catalogue.process_id)
    check("process name", catalogue.name, _limit(ProcessVersion.__table__.c.name), catalogue.process_id)
    for task in catalogue.human_tasks.values():
        check("task id", task.id, ELEMENT_ID_LENGTH, task.id)
        check("task name", task.name, ELEMENT_NAME_LENGTH, task.id)
        for role in task.roles:
            check("role", role, ROLE_LENGTH, task.id, " (from camunda:candidateGroups or the task's lane)")
            if role not in ROLES:
                raise ProcessDefinitionError(
                    f"the role {role!r} (from camunda:candidateGroups or the task's lane) is not a role of this "
                    f"system; the roles are {', '.join(sorted(ROLES))}",
                    filename=filename, element_id=task.id, line=element_line(source, task.id))
        check("formKey", task.form_key, FORM_KEY_LENGTH, task.id)
        if task.form_key and task.form_key not in forms:
            known = ", ".join(forms.keys()) or "none"
            raise ProcessDefinitionError(
                f"camunda:formKey '{task.form_key}' names no record form (loaded forms: {known})",
                filename=filename, element_id=task.id, line=element_line(source, task.id))
    for timer in catalogue.timers.values():
        check("timer id", timer.id, ELEMENT_ID_LENGTH, timer.id)
        check("timer name", timer.name, ELEMENT_NAME_LENGTH, timer.id)
        check("timer kind", timer.kind, TIMER_KIND_LENGTH, timer.id)


def _forms() -> FormRegistry:
    """The record forms the app loaded at start-up: a user task's formKey must name one of them."""
    registry: FormRegistry = current_app.extensions["servicecase.forms"]
    return registry


def _content_hash(source: bytes, tables: list[DecisionTable], called: dict[str, bytes] | None = None) -> str:
    """The version's content hash: of the BPMN bytes alone when it runs no decision table and calls no process
    (so versions deployed before either keep their hash), else of the bytes, each table it runs and each
    process it calls (a changed called process makes a new version of every caller)."""
    if not tables and not called:
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256(source)
    for table in sorted(tables, key=lambda t: t.decision_id):
        digest.update(b"\0decision\0" + table.decision_id.encode() + b"\0" + table.sha256.encode())
    for process_id, called_source in sorted((called or {}).items()):
        digest.update(b"\0process\0" + process_id.encode() + b"\0" + hashlib.sha256(called_source).hexdigest().encode())
    return digest.hexdigest()


def _check_decision(source: bytes, filename: str) -> DecisionTable:
    if len(source) > MAX_DMN_BYTES:
        raise ProcessDefinitionError(f"the file is larger than {MAX_DMN_BYTES} bytes", filename=filename)
    return get_engine().parse_decision(source, filename)


def _check(source: bytes, filename: str, tables: list[DecisionTable],
           processes: list[tuple[str, bytes]] | None = None) -> _Checked:
    if len(source) > MAX_BPMN_BYTES:
        raise ProcessDefinitionError(f"the file is larger than {MAX_BPMN_BYTES} bytes", filename=filename)
    name = Path(filename).name
    _too_long("file name", name, _limit(ProcessVersion.__table__.c.filename), source=source, filename=filename,
              element_id=None)
    definition = get_engine().parse(source, filename, tables, processes or [])
    stem = name.removesuffix(".bpmn")
    if stem != definition.process_id:
        raise ProcessDefinitionError(
            f"the process id '{definition.process_id}' must equal the file name '{stem}'",
            filename=filename, element_id=definition.process_id, line=element_line(source, definition.process_id))
    _check_catalogue(definition.catalogue, source=source, filename=filename, forms=_forms())
    # Stored as text in the file's own encoding (its declaration stays); the hash is over the bytes.
    text = source_text(source, filename)
    used = set(definition.catalogue.decisions.values())
    runs = [t for t in tables if t.decision_id in used]
    called = {process_id: other for name, other in processes or [] if name != filename and definition.catalogue.called
              and (process_id := _process_id_or_none(other, name)) in definition.catalogue.called}
    return _Checked(filename, source, text, _content_hash(source, runs, called), definition,
                    {t.decision_id: t.text for t in runs})


def _process_id_or_none(source: bytes, filename: str) -> str | None:
    """The process id of a file, or None when it cannot be read (its own check refuses it)."""
    try:
        return process_id_of(source, filename)
    except ProcessDefinitionError:
        return None


def _store(checked: _Checked, *, actor: Actor, note: str) -> Deployment:
    process_id = checked.definition.process_id
    latest = latest_version(process_id)
    if latest is not None and latest.sha256 == checked.sha256:
        return Deployment(latest, created=False)  # deploying an older version's content again rolls back
    version = ProcessVersion(
        process_id=process_id, version=(latest.version + 1) if latest else 1,
        name=checked.definition.catalogue.name, filename=Path(checked.filename).name, sha256=checked.sha256,
        bpmn_source=checked.text, spec_json=get_engine().dump_definition(checked.definition),
        catalogue=checked.definition.catalogue.to_dict(), decisions=checked.decisions, deployed_at=now(),
        deployed_by=actor.username,
        previous_id=latest.id if latest else None, note=note,
    )
    db.session.add(version)
    db.session.flush()
    # Recurring processes: the timer start event's cycle becomes the process's calendar-aware schedule
    # (an unreadable cycle raises ProcessDefinitionError, before anything is committed).
    try:
        sync_schedule(version)
    except ProcessDefinitionError as exc:
        if exc.line or not exc.element_id:
            raise
        raise ProcessDefinitionError(exc.message, filename=checked.filename, element_id=exc.element_id,
                                     line=element_line(checked.source, exc.element_id)) from None
    except (ArithmeticError, ValueError) as exc:  # a cycle that reads but cannot be computed (P99999999999Y)
        timer = checked.definition.catalogue.start_timer
        element = timer.id if timer else None
        raise ProcessDefinitionError(
            f"the timer start event's cycle cannot be scheduled: {exc}", filename=checked.filename,
            element_id=element, line=element_line(checked.source, element) if element else None) from None
    return Deployment(version, created=True)


def deploy_sources(sources: list[tuple[str, bytes]], *, actor: Actor, note: str = "") -> list[Deployment]:
    """Deploy several files all or nothing (processes.deploy): every file is checked before any is stored.
    ``*.dmn`` files are the package's decision tables: each is checked, and every process stores the ones
    its business rule tasks call."""
    require(actor, "processes.deploy")
    errors = {field: [f"is {len(value)} characters long; at most {_limit(column)} are allowed"]
              for field, value, column in (("note", note, ProcessVersion.__table__.c.note),
                                           ("deployed by", actor.username, ProcessVersion.__table__.c.deployed_by))
              if len(value) > _limit(column)}
    if errors:
        raise InvalidDataError("; ".join(f"the deployment's {field} {problem[0]}" for field, problem in errors.items()),
                               errors=errors)
    tables = [_check_decision(source, filename) for filename, source in sources if _is_dmn(filename)]
    seen: dict[str, DecisionTable] = {}
    for table in tables:
        if table.decision_id in seen:
            raise ProcessDefinitionError(
                f"decision '{table.decision_id}' is defined in {Path(seen[table.decision_id].filename).name} and "
                f"in {Path(table.filename).name}", filename=table.filename, element_id=table.decision_id)
        seen[table.decision_id] = table
    processes = [(filename, source) for filename, source in sources if not _is_dmn(filename)]
    checked = [_check(source, filename, tables, processes) for filename, source in processes]
    ids = [c.definition.process_id for c in checked]
    duplicated = {i for i in ids if ids.count(i) > 1}
    if duplicated:
        raise ProcessDefinitionError(f"process '{sorted(duplicated)[0]}' appears in more than one file",
                                     filename=", ".join(c.filename for c in checked))
    return [_store(c, actor=actor, note=note) for c in checked]


def _is_dmn(filename: str) -> bool:
    return filename.lower().endswith(".dmn")


def deploy_path(path: Path, *, actor: Actor, note: str = "") -> list[Deployment]:
    """Deploy one .bpmn file, or every .bpmn file of a directory, all or nothing (processes.deploy), with
    the decision tables (.dmn) of that directory."""
    require(actor, "processes.deploy")
    if path.is_dir():
        files = sorted(path.glob("*.bpmn"))
        if not files:
            raise ProcessDefinitionError("no .bpmn files in the directory", filename=str(path))
        files += sorted(path.glob("*.dmn"))
    elif path.is_file() and _is_dmn(path.name):
        raise ProcessDefinitionError("a decision table is deployed with the processes that call it: deploy their "
                                     ".bpmn file or the directory", filename=str(path))
    elif path.is_file():
        files = [path, *sorted(path.parent.glob("*.dmn"))]
    else:
        raise ProcessDefinitionError("no such file or directory", filename=str(path))
    sources = []
    for file in files:
        try:
            sources.append((str(file), file.read_bytes()))
        except OSError as exc:  # unreadable, or a directory named *.bpmn
            raise ProcessDefinitionError(f"cannot be read: {exc.strerror or exc}", filename=str(file)) from None
    return deploy_sources(sources, actor=actor, note=note)


def latest_version(process_id: str) -> ProcessVersion | None:
    """The newest deployed version of a process, or None. For the services only (opening a case, deploying):
    no permission check, so no controller calls it."""
    return db.session.scalar(select(ProcessVersion).where(ProcessVersion.process_id == process_id)
                             .order_by(ProcessVersion.version.desc()).limit(1))


def get_version(version_id: int, *, actor: Actor) -> ProcessVersion:
    """A version by id (processes.read; NotFoundError if unknown)."""
    require(actor, "processes.read")
    version = db.session.get(ProcessVersion, version_id)
    if version is None:
        raise NotFoundError(f"process version {version_id} does not exist")
    return version


def list_processes(*, actor: Actor) -> list[ProcessVersion]:
    """The latest version of every deployed process, by process id (processes.read)."""
    require(actor, "processes.read")
    newest = (select(ProcessVersion.process_id, func.max(ProcessVersion.version).label("v"))
              .group_by(ProcessVersion.process_id).subquery())
    return list(db.session.scalars(
        select(ProcessVersion).join(newest, (ProcessVersion.process_id == newest.c.process_id)
                                    & (ProcessVersion.version == newest.c.v))
        .order_by(ProcessVersion.process_id)))


def startable_processes(*, actor: Actor) -> list[ProcessVersion]:
    """The processes a case can be opened on, for the intake form: the latest versions of those not marked
    ``startable=false`` (a process only called by others) (cases.open)."""
    require(actor, "cases.open")
    return [v for v in list_processes(actor=actor) if Catalogue.from_dict(v.catalogue).startable]


def list_versions(process_id: str, *, actor: Actor) -> list[ProcessVersion]:
    """Every version of a process, newest first (processes.read)."""
    require(actor, "processes.read")
    return list(db.session.scalars(select(ProcessVersion).where(ProcessVersion.process_id == process_id)
                                   .order_by(ProcessVersion.version.desc())))


def definition_of(version: ProcessVersion) -> ProcessDefinition:
    """The engine definition of a version, restored once per process and cached (for the services that
    run cases: no permission check, so no controller calls it)."""
    return definition_for(version.id)


def definition_for(version_id: int) -> ProcessDefinition:
    """The engine definition of a version by id (for the services that run cases: no permission check).
    Versions are immutable and never deleted, so the id alone is a safe cache key and a cache hit reads
    nothing from the database."""
    def stored() -> str:
        spec = db.session.scalar(select(ProcessVersion.spec_json).where(ProcessVersion.id == version_id))
        if spec is None:
            raise NotFoundError(f"process version {version_id} does not exist")
        return spec

    return get_engine().load_definition(version_id, stored)
