"""Intake: opening a case as the customer reported it by phone, fax or e-mail.

The agent finds the equipment by serial number, customer name, contact person or phone as they type
(app/web/static/js/intake.js asks /api/registry/equipment), or, without JavaScript, with the form's own
Search button, which shows the matches on the page and keeps everything typed so far. Each piece of
equipment is shown with its warranty and any case still open for it; opening a second case for the same
equipment takes a tick in a confirmation box.

The page lives at /cases/new as the ``cases.new`` endpoint (on the cases blueprint), as before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext, lazy_gettext
from marshmallow import ValidationError, fields, validate

from app.cases import service as cases
from app.cases.models import INTAKE_CHANNELS, PRIORITIES, Case
from app.engine import now
from app.errors import InvalidDataError, NotFoundError, ProcessFailedError
from app.flows import steps
from app.forms import translate_message
from app.inputs import Id
from app.processes.service import startable_processes
from app.registry import service as registry
from app.registry.models import Equipment, WarrantyStatus
from app.uow import unit_of_work
from app.web.cases import CHANNEL_WORDS, PRIORITY_WORDS, bp
from app.web.common import current_actor
from app.web.filters import department_zone
from app.web.schemas import NewCaseSchema

LOCAL_FORMAT = "%Y-%m-%dT%H:%M"  # what a datetime-local input shows and sends


class DepartmentDateTimeLocal(fields.Field):
    """A ``datetime-local`` value read in the department's time zone and returned in UTC; a time that does
    not exist there (clocks moved forward) is refused rather than guessed."""

    default_error_messages = {"invalid": lazy_gettext("Enter a date and time such as 2026-03-02 08:00.")}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        zone = department_zone()
        try:
            moment = datetime.fromisoformat(value.replace(" ", "T", 1))
            if moment.tzinfo is not None:  # an explicit offset (a hand-made request) is honoured
                return moment.astimezone(UTC)
            local = moment.replace(tzinfo=zone)
            in_utc = local.astimezone(UTC)
        except (ValueError, OverflowError):
            raise self.make_error("invalid") from None
        if in_utc.astimezone(zone).replace(tzinfo=None) != moment:
            raise ValidationError(gettext("%(value)s does not exist in %(zone)s (the clocks moved forward); enter "
                                          "the time shown on a clock then.", value=value.replace("T", " "),
                                          zone=zone.key))
        return in_utc


class IntakeFormSchema(NewCaseSchema):
    """The new-case form: the rules of NewCaseSchema, the channels the API accepts, the notice time in the
    department's zone, and the confirmation that a second case for the same equipment is meant."""

    channel = fields.String(required=True, validate=validate.OneOf(INTAKE_CHANNELS),
                            error_messages={"required": lazy_gettext("Choose how the customer reported it.")})
    reported_at = DepartmentDateTimeLocal(  # type: ignore[assignment]  # the same field, in the department's zone
        required=True, error_messages={"required": lazy_gettext("Enter when the customer gave notice.")})
    customer_id = Id(load_default=None, error_messages={"invalid": lazy_gettext("Choose equipment from the list.")})
    confirm_open_case = fields.Boolean(load_default=False)
    q = fields.String(load_default=None, validate=validate.Length(max=registry.SEARCH_MAX_LENGTH))


FORM_FIELDS = (*IntakeFormSchema().fields, "intent")


class EquipmentChoice:
    """A piece of equipment offered on the page, with its warranty today and its open cases."""

    def __init__(self, equipment: Equipment, warranty: WarrantyStatus, open_cases: list[Case]) -> None:
        self.equipment = equipment
        self.warranty = warranty
        self.open_cases = open_cases

    def __getattr__(self, name: str) -> Any:
        return getattr(self.equipment, name)


def _choices(equipment: list[Equipment]) -> list[EquipmentChoice]:
    """The equipment with warranty and open cases, for the page."""
    open_cases = cases.open_cases_of_equipment(actor=current_actor(), equipment_ids=[e.id for e in equipment])
    today = registry.department_today()
    return [EquipmentChoice(item, item.warranty_on(today), open_cases.get(item.id, [])) for item in equipment]


def _chosen_equipment(value: str | None) -> Equipment | None:
    """The equipment an id in the form names, if it exists (a bad id is reported when the form is sent)."""
    equipment_id = Id().deserialize(value) if value else None
    if equipment_id is None:
        return None
    try:
        return registry.get_equipment(equipment_id, actor=current_actor())
    except NotFoundError:
        return None


def _search(values: dict[str, Any], errors: dict[str, list[str]]) -> tuple[list[Equipment], int | None]:
    """The equipment matching the form's search text (the page's own search, without JavaScript)."""
    text = (values.get("q") or "").strip()
    if not text:
        return [], None
    try:
        found, total = registry.search_equipment(actor=current_actor(), text=text, per_page=20)
    except InvalidDataError as exc:
        errors.update(_field_errors(exc.errors))
        return [], None
    return found, total


def _intake_form(values: dict[str, Any], errors: dict[str, list[str]], status: int = 200) -> ResponseReturnValue:
    """The new-case form with ``values`` kept, ``errors`` at their fields, and the equipment to choose from:
    the chosen one first, then what the search text finds."""
    found, total = _search(values, errors)
    if errors and status == 200:  # only the search text was wrong (too short, too long): still a 4xx
        status = 422
    try:
        chosen = _chosen_equipment(values.get("equipment_id"))
    except ValidationError:
        chosen = None
    equipment = ([chosen] if chosen else []) + [item for item in found if chosen is None or item.id != chosen.id]
    choices = _choices(equipment)
    zone = department_zone()
    return render_template(
        "cases/new.html", values=values, errors=errors, processes=startable_processes(actor=current_actor()),
        choices=choices,
        searched=total is not None, found_total=total or 0, zone=zone.key,
        needs_confirmation=any(choice.open_cases for choice in choices),
        channels=[(c, str(CHANNEL_WORDS.get(c, c))) for c in INTAKE_CHANNELS],
        priorities=[(p, str(PRIORITY_WORDS.get(p, p))) for p in PRIORITIES],
    ), status


def _field_errors(messages: Any) -> dict[str, list[str]]:
    """Errors per form field as lists of text (service and schema errors alike)."""
    if not isinstance(messages, dict):
        return {"_schema": [translate_message(str(messages))]}
    result: dict[str, list[str]] = {}
    for key, value in messages.items():
        name = "equipment_id" if key == "customer_id" else str(key)
        result.setdefault(name, []).extend(translate_message(str(message))
                                           for message in (value if isinstance(value, list) else [value]))
    return result


def _duplicate_warning(equipment_id: int | None) -> dict[str, list[str]]:
    """An error at the confirmation box when the equipment already has an open case."""
    if equipment_id is None:
        return {}
    open_cases = cases.open_cases_of_equipment(actor=current_actor(), equipment_ids=[equipment_id])
    numbers = [case.number or f"#{case.id}" for case in open_cases.get(equipment_id, [])]
    if not numbers:
        return {}
    if len(numbers) == 1:
        message = gettext("This equipment's case %(number)s is still open. Add to it if the customer is calling "
                          "about the same fault; tick this box to open a new case anyway.", number=numbers[0])
    else:
        message = gettext("This equipment's cases %(numbers)s are still open. Add to it if the customer is calling "
                          "about the same fault; tick this box to open a new case anyway.",
                          numbers=", ".join(numbers))
    return {"confirm_open_case": [message]}


@bp.route("/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    """Open a case: the customer's report, with the notice time deadlines run from."""
    if request.method == "GET":
        values = {"process": request.args.get("process", "fault_handling"), "channel": "phone",
                  "priority": "normal", "reported_at": now().astimezone(department_zone()).strftime(LOCAL_FORMAT),
                  "q": request.args.get("q", ""), "equipment_id": request.args.get("equipment_id", "")}
        return _intake_form(values, {})
    values = {key: request.form.get(key, "") for key in FORM_FIELDS}
    if values["intent"] == "search":  # the page's own search (no JavaScript): show matches, open nothing
        return _intake_form(values, {})
    try:
        args = IntakeFormSchema().load(request.form)
    except ValidationError as exc:
        return _intake_form(values, _field_errors(exc.messages), 422)
    if not args["confirm_open_case"] and (warning := _duplicate_warning(args["equipment_id"])):
        return _intake_form(values, warning, 422)
    try:
        with unit_of_work():
            case = steps.open_case(actor=current_actor(), process_id=args["process"],
                                   reported_at=args["reported_at"], channel=args["channel"],
                                   description=args["description"], title=args["title"],
                                   priority=args["priority"], customer_id=args["customer_id"],
                                   equipment_id=args["equipment_id"])
    except (InvalidDataError, ProcessFailedError) as exc:
        return _intake_form(values, _field_errors(exc.errors or {"_schema": [exc.message]}), 422)
    flash(gettext("Case %(number)s opened.", number=case.number), "success")
    return redirect(url_for("cases.detail", case_id=case.id))
