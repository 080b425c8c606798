"""How each event of a case's history reads on the case page: one presenter per event type.

A presenter says what happened as a sentence naming who did it ("Fault diagnosis recorded by 王磊"), the
few payload facts worth a line, and what the event lets one open (the attachment it added). A new event
type gets a presenter here; one without a presenter still reads ("Parts counted by wang"), from its type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import url_for
from flask_babel import gettext, lazy_gettext

from app.attachments import service as attachments
from app.audit.models import CaseEvent
from app.documents import service as documents
from app.web.filters import (
    ATTACHMENT_TYPE_WORDS,
    CHANNEL_WORDS,
    PRIORITY_WORDS,
    deadline_outcome,
    format_duration,
    format_utc,
    humanize,
    role_name,
)

# The reserved actors, as the history names them.
ACTOR_WORDS = {"system": lazy_gettext("the system"), "timer": lazy_gettext("the timer")}
Rows = list[tuple[str, str]]


def actor_words(actor: str | None) -> str:
    """Who acted, in words: a user's name, or what the system's own actors are."""
    return str(ACTOR_WORDS.get(actor or "", actor or gettext("someone unknown")))


@dataclass(frozen=True)
class Shown:
    """One event as its presenter sees it."""

    event: CaseEvent
    payload: dict[str, Any]
    who: str  # the actor in words
    name: str  # the task's or deadline's name, if the event has one
    record_title: str | None  # the title of the record a completed task submitted


@dataclass(frozen=True)
class Presenter:
    """How one event type reads: its sentence, its detail rows, and what it lets one open."""

    sentence: Callable[[Shown], str]
    details: Callable[[Shown], Rows] = lambda shown: []
    link: Callable[[Shown, int], tuple[str, str] | None] = lambda shown, case_id: None


PRESENTERS: dict[str, Presenter] = {}


def presents(*event_types: str, details: Callable[[Shown], Rows] | None = None,
             link: Callable[[Shown, int], tuple[str, str] | None] | None = None
             ) -> Callable[[Callable[[Shown], str]], Callable[[Shown], str]]:
    """Register the decorated sentence (and ``details``, ``link``) as the presenter of ``event_types``."""
    def register(sentence: Callable[[Shown], str]) -> Callable[[Shown], str]:
        for event_type in event_types:
            PRESENTERS[event_type] = Presenter(sentence=sentence, details=details or (lambda shown: []),
                                               link=link or (lambda shown, case_id: None))
        return sentence
    return register


def _shown(event: CaseEvent, record_title: str | None = None) -> Shown:
    payload = event.payload or {}
    return Shown(event=event, payload=payload, who=actor_words(event.actor),
                 name=str(payload.get("name") or payload.get("task_spec") or ""), record_title=record_title)


def event_sentence(event: CaseEvent, record_title: str | None = None) -> str:
    """One event as a sentence saying what happened and who did it, with labels rather than codes."""
    shown = _shown(event, record_title)
    presenter = PRESENTERS.get(event.type)
    if presenter is not None:
        return presenter.sentence(shown)
    words = event.type.replace("_", " ").capitalize()
    if shown.name:
        return gettext("%(what)s (%(name)s) by %(who)s", what=words, name=shown.name, who=shown.who)
    return gettext("%(what)s by %(who)s", what=words, who=shown.who)


def event_details(event: CaseEvent) -> Rows:
    """The few payload facts of an event worth a line in the history, in words."""
    presenter = PRESENTERS.get(event.type)
    return presenter.details(_shown(event)) if presenter is not None else []


def event_link(event: CaseEvent, case_id: int) -> tuple[str, str] | None:
    """What an event lets one open from the history, as (text, address)."""
    presenter = PRESENTERS.get(event.type)
    return presenter.link(_shown(event), case_id) if presenter is not None else None


def _task_row(shown: Shown) -> Rows:
    return [(gettext("Task"), str(shown.payload.get("name", "")))]


# -- the case --------------------------------------------------------------------------------------------
def _opened_details(shown: Shown) -> Rows:
    p = shown.payload
    return [(gettext("Number"), str(p.get("number", ""))),
            (gettext("Process"), f"{p.get('process_id', '')} v{p.get('process_version', '')}"),
            (gettext("Customer's notice"), format_utc(p.get("reported_at"))),
            (gettext("Channel"), str(CHANNEL_WORDS.get(str(p.get("channel")), str(p.get("channel", ""))))),
            (gettext("Priority"), str(PRIORITY_WORDS.get(str(p.get("priority")), humanize(p.get("priority")))))]


@presents("case_opened", details=_opened_details)
def _case_opened(shown: Shown) -> str:
    p = shown.payload
    channel = str(CHANNEL_WORDS.get(str(p.get("channel")), humanize(p.get("channel")))).lower()
    return gettext("Case %(number)s opened by %(who)s from a report by %(channel)s", number=p.get("number", ""),
                   who=shown.who, channel=channel).replace("  ", " ")


@presents("case_closed", details=lambda shown: [(gettext("Outcome"), humanize(shown.payload.get("outcome")))])
def _case_closed(shown: Shown) -> str:
    if shown.payload.get("outcome"):
        return gettext("Case closed: %(outcome)s", outcome=humanize(shown.payload.get("outcome")))
    return gettext("Case closed")


def _link_to_other(shown: Shown, case_id: int) -> tuple[str, str] | None:
    other = shown.payload.get("case_id")
    if not isinstance(other, int):
        return None
    return (gettext("Open %(number)s", number=shown.payload.get("number") or other),
            url_for("cases.detail", case_id=other))


@presents("case_linked", link=_link_to_other)
def _case_linked(shown: Shown) -> str:
    p = shown.payload
    if p.get("direction") == "opened_from":
        return gettext("Opened from case %(number)s (%(kind)s)", number=p.get("number", ""),
                       kind=humanize(p.get("kind")))
    return gettext("Case %(number)s opened from this one by %(who)s (%(kind)s)", number=p.get("number", ""),
                   who=shown.who, kind=humanize(p.get("kind")))


@presents("case_cancelled")
def _case_cancelled(shown: Shown) -> str:
    return gettext("Case cancelled by %(who)s", who=shown.who)


# -- tasks -----------------------------------------------------------------------------------------------
def _ready_details(shown: Shown) -> Rows:
    rows = [*_task_row(shown), (gettext("Role"), role_name(shown.payload.get("roles") or shown.payload.get("role")))]
    if shown.payload.get("due_at"):
        rows.append((gettext("Due"), format_utc(shown.payload.get("due_at"))))
    return rows


@presents("task_ready", details=_ready_details)
def _task_ready(shown: Shown) -> str:
    role = role_name(shown.payload.get("roles") or shown.payload.get("role")).lower()
    return gettext("Task '%(task)s' ready for the %(role)s", task=shown.name, role=role)


def _claimed_details(shown: Shown) -> Rows:
    rows = _task_row(shown)
    if shown.payload.get("previous"):
        rows.append((gettext("Taken over from"), str(shown.payload["previous"])))
    return rows


@presents("task_claimed", details=_claimed_details)
def _task_claimed(shown: Shown) -> str:
    if shown.payload.get("previous"):
        return gettext("Task '%(task)s' claimed by %(who)s, taking it over from %(previous)s", task=shown.name,
                       who=shown.who, previous=shown.payload["previous"])
    return gettext("Task '%(task)s' claimed by %(who)s", task=shown.name, who=shown.who)


def _assignment_details(shown: Shown) -> Rows:
    p = shown.payload
    return [*_task_row(shown), (gettext("Previous assignee"), str(p.get("previous") or "—")),
            (gettext("Assigned to"), str(p.get("assignee") or gettext("— (back in the queue)")))]


@presents("task_released", details=_assignment_details)
def _task_released(shown: Shown) -> str:
    return gettext("Task '%(task)s' released by %(who)s: back in the queue", task=shown.name, who=shown.who)


@presents("task_assigned", details=_assignment_details)
def _task_assigned(shown: Shown) -> str:
    return gettext("Task '%(task)s' assigned to %(assignee)s by %(who)s", task=shown.name,
                   assignee=actor_words(shown.payload.get("assignee")), who=shown.who)


def _completed_details(shown: Shown) -> Rows:
    kept = deadline_outcome(shown.payload.get("deadline"))
    return [*_task_row(shown), (gettext("Deadline"), kept)] if kept else _task_row(shown)


@presents("task_completed", details=_completed_details)
def _task_completed(shown: Shown) -> str:
    if shown.record_title:
        return gettext("%(record)s recorded by %(who)s (task '%(task)s')", record=shown.record_title, who=shown.who,
                       task=shown.name)
    return gettext("Task '%(task)s' completed by %(who)s", task=shown.name, who=shown.who)


@presents("task_cancelled", details=_task_row)
def _task_cancelled(shown: Shown) -> str:
    return gettext("Task '%(task)s' cancelled by the process (a deadline or another path ended it)", task=shown.name)


# -- deadlines -------------------------------------------------------------------------------------------
def _deadline_details(shown: Shown) -> Rows:
    return [(gettext("Deadline"), str(shown.payload.get("name", ""))),
            (gettext("Due"), format_utc(shown.payload.get("due_at")))]


def _late_words(late_by_ms: Any) -> str:
    """``, 5 min after it was due`` for a deadline that fired late (a stopped worker, a late entry)."""
    if not isinstance(late_by_ms, int) or late_by_ms < 60_000:
        return ""
    return gettext(", %(span)s after it was due", span=format_duration(timedelta(milliseconds=late_by_ms)))


@presents("timer_scheduled", details=_deadline_details)
def _timer_scheduled(shown: Shown) -> str:
    return gettext("Deadline '%(deadline)s' scheduled, due %(time)s", deadline=shown.name,
                   time=format_utc(shown.payload.get("due_at")))


@presents("timer_fired", details=_deadline_details)
def _timer_fired(shown: Shown) -> str:
    late = _late_words(shown.payload.get("late_by_ms"))
    return gettext("Deadline '%(deadline)s' reached", deadline=shown.name) + late


@presents("timer_cancelled", details=_deadline_details)
def _timer_cancelled(shown: Shown) -> str:
    return gettext("Deadline '%(deadline)s' cleared: the work it guarded ended before it was due", deadline=shown.name)


@presents("timer_failed", details=lambda shown: [*_deadline_details(shown),
                                                 (gettext("Reason"), str(shown.payload.get("error", "")))])
def _timer_failed(shown: Shown) -> str:
    return gettext("Deadline '%(deadline)s' could not fire; an administrator can retry it", deadline=shown.name)


@presents("timer_retried", details=_deadline_details)
def _timer_retried(shown: Shown) -> str:
    return gettext("Deadline '%(deadline)s' retried by %(who)s", deadline=shown.name, who=shown.who)


# -- attachments -----------------------------------------------------------------------------------------
def _attachment_details(shown: Shown) -> Rows:
    p = shown.payload
    return [(gettext("File"), str(p.get("filename", ""))),
            (gettext("Type"), str(ATTACHMENT_TYPE_WORDS.get(str(p.get("content_type")),
                                                            str(p.get("content_type", ""))))),
            (gettext("Size"), attachments.size_words(int(p.get("size_bytes") or 0)))]


def _attachment_link(shown: Shown, case_id: int) -> tuple[str, str] | None:
    p = shown.payload
    if not isinstance(p.get("attachment_id"), int):
        return None
    return (gettext("Download %(file)s", file=p.get("filename") or gettext("the file")),
            url_for("cases.download_attachment", case_id=case_id, attachment_id=p["attachment_id"]))


@presents("attachment_added", details=_attachment_details, link=_attachment_link)
def _attachment_added(shown: Shown) -> str:
    return gettext("Attachment '%(file)s' added by %(who)s", file=shown.payload.get("filename", ""), who=shown.who)


# -- documents -------------------------------------------------------------------------------------------
# The forms a document is kept in, as the pages name them.
DOCUMENT_FORMAT_WORDS = {"application/pdf": "PDF", "text/html": "HTML"}


def _document_name(payload: dict[str, Any]) -> str:
    kind = documents.known_kinds().get(str(payload.get("kind")))
    return str(kind.name) if kind else str(payload.get("name", ""))


def _document_details(shown: Shown) -> Rows:
    p = shown.payload
    return [(gettext("Document"), _document_name(p)), (gettext("File"), str(p.get("filename", ""))),
            (gettext("Size"), attachments.size_words(int(p.get("size_bytes") or 0)))]


def _document_link(shown: Shown, case_id: int) -> tuple[str, str] | None:
    p = shown.payload
    if not isinstance(p.get("document_id"), int):
        return None
    return (gettext("Download %(file)s", file=p.get("filename") or gettext("the file")),
            url_for("cases.download_document", case_id=case_id, document_id=p["document_id"]))


@presents("document_created", details=_document_details, link=_document_link)
def _document_created(shown: Shown) -> str:
    p = shown.payload
    return gettext("Document '%(name)s' (%(format)s) made by %(who)s", name=_document_name(p),
                   format=DOCUMENT_FORMAT_WORDS.get(str(p.get("media_type")), str(p.get("media_type", ""))),
                   who=shown.who)


# -- return visits --------------------------------------------------------------------------------------
def _regions(payload: dict[str, Any]) -> dict[str, Any]:
    """The sample's users drawn per region ({} when the payload has none)."""
    regions = payload.get("regions")
    return regions if isinstance(regions, dict) else {}


def _sample_details(shown: Shown) -> Rows:
    p = shown.payload
    regions = _regions(p)
    rows = [(gettext("Seed"), str(p.get("seed", ""))), (gettext("Per region"), str(p.get("size", ""))),
            (gettext("Users drawn"), ", ".join(f"{region}: {len(ids)}" for region, ids in sorted(regions.items())))]
    rows += [(gettext("Note"), str(note)) for note in p.get("notes") or []]
    return rows


@presents("visit_sample_drawn", details=_sample_details)
def _visit_sample_drawn(shown: Shown) -> str:
    regions = _regions(shown.payload)
    return gettext("Return-visit sample drawn: %(count)s users in %(regions)s regions",
                   count=sum(len(ids) for ids in regions.values()), regions=len(regions))


# -- spare parts -----------------------------------------------------------------------------------------
def _parts_words(lines: Any, *, consumed: bool = False) -> str:
    if not isinstance(lines, list):
        return ""
    parts = []
    for line in lines:
        if isinstance(line, dict):
            quantity = line.get("consumed") if consumed else line.get("quantity")
            parts.append(f"{line.get('part_number', '?')} × {quantity}")
    return ", ".join(parts)


def _parts_details(shown: Shown) -> Rows:
    p = shown.payload
    rows = [(gettext("Parts"), _parts_words(p.get("lines")))]
    if p.get("warehouse"):
        rows.append((gettext("Warehouse"), f"{p.get('warehouse')} ({p.get('region', '')})"))
    if p.get("reason"):
        rows.append((gettext("Reason"), str(p.get("reason"))))
    return rows


@presents("parts_reserved", details=_parts_details)
def _parts_reserved(shown: Shown) -> str:
    return gettext("Spare parts reserved by %(who)s: %(parts)s", who=shown.who,
                   parts=_parts_words(shown.payload.get("lines")))


@presents("parts_used", details=_parts_details)
def _parts_used(shown: Shown) -> str:
    return gettext("Spare parts used, booked by %(who)s: %(parts)s; the rest went back on the shelf", who=shown.who,
                   parts=_parts_words(shown.payload.get("lines"), consumed=True))


@presents("parts_released", details=_parts_details)
def _parts_released(shown: Shown) -> str:
    return gettext("Spare parts released by %(who)s: %(parts)s", who=shown.who,
                   parts=_parts_words(shown.payload.get("lines")))


# -- equipment ---------------------------------------------------------------------------------------------
def _replacement_details(shown: Shown) -> Rows:
    p = shown.payload
    return [(gettext("Retired unit"), str(p.get("old_serial_number", ""))),
            (gettext("Replacement"), f"{p.get('new_serial_number', '')} ({p.get('model', '')})"),
            (gettext("Installed"), format_utc(p.get("installed_at"))),
            (gettext("Warranty ends"), str(p.get("warranty_ends_on") or "—"))]


@presents("equipment_replaced", details=_replacement_details)
def _equipment_replaced(shown: Shown) -> str:
    return gettext("Equipment %(old)s replaced by %(new)s, recorded by %(who)s",
                   old=shown.payload.get("old_serial_number", ""), new=shown.payload.get("new_serial_number", ""),
                   who=shown.who)
