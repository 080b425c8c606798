"""Every choice list of the system, defined once: the pages, the JSON API and the services all check a
value against the same tuple, so a choice the page offers is one the API accepts, and the other way round.

Roles are defined with the permissions in ``app.auth`` and re-exported here, so that this module is the
one place to look for what a field may hold. Labels are the words a page shows for each value.
"""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from app.auth import ROLE_NAMES, ROLES, STAFF_ROLES

CASE_STATUSES = ("open", "closed", "cancelled")
INTAKE_CHANNELS = ("phone", "email", "fax", "web")  # how a customer can reach the department: what intake accepts
# every channel a case can carry: plus cases started by a schedule, and cases another case opened (an
# inspection's anomaly)
CHANNELS = (*INTAKE_CHANNELS, "schedule", "case")
PRIORITIES = ("normal", "high", "emergency")
WORK_ITEM_STATES = ("ready", "completed", "cancelled")
# A yes/no filter (the worklist's "overdue"), written the same way in an address and in the API.
FLAG_TRUE = ("true", "yes", "1")
FLAG_FALSE = ("false", "no", "0")

CASE_STATUS_LABELS = {"open": "Open", "closed": "Closed", "cancelled": "Cancelled"}
CHANNEL_LABELS = {"phone": "Telephone", "email": "E-mail", "fax": "Fax", "web": "Web",
                  "schedule": "Recurring schedule", "case": "Another case"}
PRIORITY_LABELS = {"normal": "Normal", "high": "High", "emergency": "Emergency (first-level fault)"}
WORK_ITEM_STATE_LABELS = {"ready": "Ready", "completed": "Completed", "cancelled": "Cancelled"}
OVERDUE_LABELS = {"true": "Overdue only", "false": "Not overdue"}

__all__ = [
    "CASE_STATUSES", "CASE_STATUS_LABELS", "CHANNELS", "CHANNEL_LABELS", "FLAG_FALSE", "FLAG_TRUE",
    "INTAKE_CHANNELS", "OVERDUE_LABELS", "PRIORITIES", "PRIORITY_LABELS", "ROLES", "ROLE_NAMES", "STAFF_ROLES",
    "WORK_ITEM_STATES", "WORK_ITEM_STATE_LABELS", "choice_field", "flag_field", "labelled",
]


def choice_field(choices: tuple[str, ...], **kwargs: Any) -> fields.String:
    """A string field that must be one of ``choices`` (the same rule on every edge that uses it)."""
    return fields.String(validate=validate.OneOf(choices), **kwargs)


def flag_field(**kwargs: Any) -> fields.Boolean:
    """A yes/no field: ``true``/``yes``/``1`` or ``false``/``no``/``0``, nothing else."""
    return fields.Boolean(truthy=set(FLAG_TRUE), falsy=set(FLAG_FALSE),
                          error_messages={"invalid": f"must be one of {', '.join(FLAG_TRUE + FLAG_FALSE)}"},
                          **kwargs)


def labelled(choices: tuple[str, ...], labels: dict[str, str]) -> list[tuple[str, str]]:
    """(value, label) pairs for a select, in the list's order; a value without a label shows as itself."""
    return [(value, labels.get(value, value)) for value in choices]
