"""marshmallow schemas of the pages: what a browser form or query string sends, checked and typed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask_babel import lazy_gettext
from marshmallow import EXCLUDE, Schema, fields, pre_load, validate

from app.choices import (
    CASE_STATUSES,
    CHANNELS,
    INTAKE_CHANNELS,
    PRIORITIES,
    ROLES,
    choice_field,
    flag_field,
)
from app.inputs import Id, WholeNumber


class BrowserSchema(Schema):
    """Browser input: strings trimmed, empty fields treated as not given, other names ignored."""

    class Meta:
        unknown = EXCLUDE

    @pre_load
    def _drop_empty(self, data: Any, **kwargs: Any) -> dict[str, Any]:
        items = data.items() if isinstance(data, Mapping) else []
        cleaned = {key: value.strip() if isinstance(value, str) else value for key, value in items}
        return {key: value for key, value in cleaned.items() if value != ""}


class UTCDateTimeLocal(fields.Field):
    """A ``datetime-local`` value, read as UTC (the page says so); an explicit offset is honoured."""

    default_error_messages = {"invalid": lazy_gettext("Enter a date and time such as 2026-03-02 08:00.")}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            moment = datetime.fromisoformat(value.replace(" ", "T", 1))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
        except (ValueError, OverflowError):
            raise self.make_error("invalid") from None


class NewCaseSchema(BrowserSchema):
    """The new-case form; the same rules as the API's CaseCreateSchema, in a browser's terms."""

    process = fields.String(required=True, validate=validate.Length(1, 100),
                            error_messages={"required": lazy_gettext("Choose the process.")})
    reported_at = UTCDateTimeLocal(required=True,
                                   error_messages={"required": lazy_gettext("Enter when the customer gave notice.")})
    channel = choice_field(INTAKE_CHANNELS, required=True,
                           error_messages={"required": lazy_gettext("Choose how the customer reported it.")})
    priority = choice_field(PRIORITIES, load_default="normal")
    equipment_id = Id(load_default=None, error_messages={"invalid": lazy_gettext("Choose equipment from the list.")})
    title = fields.String(load_default=None, validate=validate.Length(1, 200))
    description = fields.String(required=True, validate=validate.Length(1, 5000),
                                error_messages={"required": lazy_gettext("Describe what the customer reported.")})


class PageArgsSchema(BrowserSchema):
    """Pagination arguments of a list page."""

    page = WholeNumber(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = WholeNumber(load_default=25, validate=validate.Range(min=1, max=100))


class WorklistQuerySchema(PageArgsSchema):
    """Filters of the worklist: the view (my tasks, one role's queue) and what the cases are about."""

    role = choice_field(ROLES, load_default=None)
    mine = flag_field(load_default=False)
    process = fields.String(load_default=None, validate=validate.Length(1, 100))
    region = fields.String(load_default=None, validate=validate.Length(1, 100))
    priority = choice_field(PRIORITIES, load_default=None)
    channel = choice_field(CHANNELS, load_default=None)
    overdue = flag_field(load_default=None)


class AssignFormSchema(BrowserSchema):
    """The assign form of a task (supervisors): the user to give it to."""

    assignee = fields.String(required=True, validate=validate.Length(1, 100),
                             error_messages={"required": lazy_gettext("Enter the name of the user to assign the task "
                                                                      "to.")})


class CaseListQuerySchema(PageArgsSchema):
    """Filters of the case list."""

    status = choice_field(CASE_STATUSES, load_default=None)
    process = fields.String(load_default=None, validate=validate.Length(1, 100))
    text = fields.String(load_default=None, validate=validate.Length(1, 200))
