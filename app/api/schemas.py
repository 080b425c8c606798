"""marshmallow schemas of the JSON API: what comes in is checked, what goes out is documented."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from app.choices import (
    CASE_STATUSES,
    CHANNELS,
    INTAKE_CHANNELS,
    PRIORITIES,
    ROLES,
    WORK_ITEM_STATES,
    choice_field,
    flag_field,
)
from app.inputs import Id, WholeNumber


class StrictSchema(Schema):
    """Unknown fields are an error, not silently dropped."""

    class Meta:
        unknown = RAISE


class CaseCreateSchema(StrictSchema):
    """Opening a case: what the customer reported, and when."""

    process = fields.String(required=True, validate=validate.Length(1, 100),
                            metadata={"description": "Process id, e.g. fault_handling"})
    reported_at = fields.AwareDateTime(required=True, metadata={
        "description": "The customer's notice time (ISO 8601 with offset); deadlines run from it"})
    channel = choice_field(INTAKE_CHANNELS, required=True)
    description = fields.String(required=True, validate=validate.Length(1, 5000))
    title = fields.String(validate=validate.Length(1, 200))
    priority = choice_field(PRIORITIES, load_default="normal")
    customer_id = Id(allow_none=True, strict=True)
    equipment_id = Id(allow_none=True, strict=True)


class PageArgsSchema(StrictSchema):
    """Pagination arguments."""

    page = WholeNumber(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = WholeNumber(load_default=25, validate=validate.Range(min=1, max=100))


class CaseQuerySchema(PageArgsSchema):
    """Filters of the case list."""

    status = choice_field(CASE_STATUSES)
    process = fields.String(validate=validate.Length(1, 100))
    text = fields.String(validate=validate.Length(1, 200))
    customer_id = Id()
    equipment_id = Id()


class TaskQuerySchema(PageArgsSchema):
    """Filters of the task list (worklist)."""

    role = choice_field(ROLES)
    assignee = fields.String(validate=validate.Length(1, 100))
    case_id = Id()
    state = choice_field(WORK_ITEM_STATES, load_default="ready")
    process = fields.String(validate=validate.Length(1, 100), metadata={"description": "The case's process id"})
    region = fields.String(validate=validate.Length(1, 100), metadata={"description": "The customer's region"})
    priority = choice_field(PRIORITIES)
    channel = choice_field(CHANNELS)
    overdue = flag_field(metadata={"description": "true: only tasks whose deadline has passed; false: the others"})


class TaskAssignSchema(StrictSchema):
    """Assigning a task: the user who is to work on it."""

    assignee = fields.String(required=True, validate=validate.Length(1, 100),
                             metadata={"description": "User name of a user holding the task's role"})


class TaskCompleteSchema(StrictSchema):
    """Completing a task: the record form's data."""

    data = fields.Dict(keys=fields.String(), required=True,
                       metadata={"description": "Field values of the task's record form"})


class CustomerBriefSchema(Schema):
    """A customer as shown on a case."""

    id = fields.Integer()
    name = fields.String()
    region = fields.String()
    phone = fields.String()


class EquipmentBriefSchema(Schema):
    """Equipment as shown on a case."""

    id = fields.Integer()
    model = fields.String()
    serial_number = fields.String()
    site = fields.String()
    region = fields.String()
    warranty_ends_on = fields.Date(allow_none=True)
    dealer = fields.String()


class TimerSchema(Schema):
    """A deadline: a timer of the case and when it is due."""

    id = fields.Integer()
    name = fields.String()
    task_spec = fields.String()
    kind = fields.String()
    interrupting = fields.Boolean()
    due_at = fields.AwareDateTime()
    state = fields.String()


class TaskSchema(Schema):
    """A work item: one human task of a case."""

    id = fields.Integer()
    case_id = fields.Integer()
    case_number = fields.Function(lambda item: item.case.number)
    task_id = fields.String()
    task_spec = fields.String()
    name = fields.String()
    role = fields.String(allow_none=True, metadata={"description": "The first of `roles`"})
    roles = fields.List(fields.String(), metadata={
        "description": "Every role that may work the task (its candidate groups, or its lane's role); "
                       "empty: any staff member"})
    form_key = fields.String(allow_none=True)
    assignee = fields.String(allow_none=True)
    state = fields.String()
    due_at = fields.AwareDateTime(allow_none=True)
    created_at = fields.AwareDateTime()
    claimed_at = fields.AwareDateTime(allow_none=True)
    completed_at = fields.AwareDateTime(allow_none=True)
    completed_by = fields.String(allow_none=True)


class TaskDetailSchema(TaskSchema):
    """A work item with its record form and the process data it sees."""

    form = fields.Dict(allow_none=True, metadata={"description": "Camunda Forms JSON definition"})
    data = fields.Dict(metadata={"description": "Current process data visible to the task"})


class CaseBriefSchema(Schema):
    """A case as listed."""

    id = fields.Integer()
    number = fields.String()
    status = fields.String()
    process = fields.String(attribute="process_id")
    process_version = fields.Integer(attribute="process_version_number")
    process_version_id = fields.Integer()
    title = fields.String()
    channel = fields.String()
    priority = fields.String()
    customer = fields.Nested(CustomerBriefSchema, allow_none=True)
    equipment = fields.Nested(EquipmentBriefSchema, allow_none=True)
    reported_at = fields.AwareDateTime()
    opened_at = fields.AwareDateTime()
    opened_by = fields.String()
    closed_at = fields.AwareDateTime(allow_none=True)
    updated_at = fields.AwareDateTime()
    summary = fields.Dict()


class CaseSchema(CaseBriefSchema):
    """A case with its description, open tasks and deadlines."""

    description = fields.String()
    open_tasks = fields.List(fields.Nested(TaskSchema))
    deadlines = fields.List(fields.Nested(TimerSchema))


class CaseRefSchema(Schema):
    """Another case, named."""

    id = fields.Integer()
    number = fields.String()
    status = fields.String()
    opened_at = fields.AwareDateTime()


class CaseOpenedSchema(CaseSchema):
    """A case just opened, with the equipment's cases that were already open (the intake page asks to confirm
    a second case for the same equipment; the API opens it and names them here)."""

    other_open_cases = fields.List(fields.Nested(CaseRefSchema))


class CaseListSchema(Schema):
    """A page of cases."""

    items = fields.List(fields.Nested(CaseBriefSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class TaskListSchema(Schema):
    """A page of tasks."""

    items = fields.List(fields.Nested(TaskSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class EventSchema(Schema):
    """One entry of a case's history."""

    seq = fields.Integer()
    type = fields.String()
    actor = fields.String()
    occurred_at = fields.AwareDateTime()
    payload = fields.Dict()


class EventListSchema(Schema):
    """A case's history."""

    case_id = fields.Integer()
    number = fields.String()
    items = fields.List(fields.Nested(EventSchema))


class ProcessSchema(Schema):
    """A deployed process version."""

    id = fields.Integer()
    process_id = fields.String()
    version = fields.Integer()
    name = fields.String()
    filename = fields.String()
    sha256 = fields.String()
    deployed_at = fields.AwareDateTime()
    deployed_by = fields.String()
    note = fields.String()


class CaseDiagramSchema(Schema):
    """A case on its process diagram: the pinned version's BPMN and the state of each element reached."""

    case_id = fields.Integer()
    number = fields.String(allow_none=True)
    process_id = fields.String()
    process_version = fields.Integer(metadata={"description": "The version the case is pinned to"})
    bpmn_xml = fields.String(metadata={"description": "The BPMN 2.0 XML of that version, as deployed"})
    states = fields.Dict(keys=fields.String(), values=fields.String(validate=validate.OneOf(
        ("done", "active", "waiting"))), metadata={"description": (
            "BPMN element id → done (completed), active (a task ready for someone, a deadline running) or "
            "waiting (reached, waiting for its inside or another branch); elements not reached are absent")})


class AttachmentSchema(Schema):
    """A file attached to a case (its bytes come from ``download``)."""

    id = fields.Integer()
    case_id = fields.Integer()
    filename = fields.String(metadata={"description": "The uploader's file name, sanitised"})
    content_type = fields.String(metadata={"description": "Sniffed from the bytes"})
    size_bytes = fields.Integer()
    sha256 = fields.String()
    uploaded_at = fields.AwareDateTime()
    uploaded_by = fields.String()
    download = fields.Function(lambda a: f"/api/cases/{a.case_id}/attachments/{a.id}/download",
                               metadata={"description": "Where to download the file"})


class AttachmentListSchema(Schema):
    """A case's attachments, oldest first."""

    case_id = fields.Integer()
    items = fields.List(fields.Nested(AttachmentSchema))


class DocumentSchema(Schema):
    """A document the system made for a case when it closed (its bytes come from ``url``)."""

    id = fields.Integer()
    case_id = fields.Integer()
    kind = fields.String(metadata={"description": "Which document: processing_report, emergency_maintenance_record"})
    name = fields.String(metadata={"description": "Its title, e.g. Processing report"})
    media_type = fields.String(validate=validate.OneOf(("application/pdf", "text/html")))
    filename = fields.String(metadata={"description": "The download's file name"})
    size_bytes = fields.Integer()
    sha256 = fields.String()
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    url = fields.Function(lambda d: f"/api/cases/{d.case_id}/documents/{d.id}",
                          metadata={"description": "Where to download the file"})


class DocumentListSchema(Schema):
    """A case's documents, oldest first."""

    case_id = fields.Integer()
    items = fields.List(fields.Nested(DocumentSchema))


class EquipmentSearchQuerySchema(PageArgsSchema):
    """Finding equipment as a customer describes it on the phone."""

    q = fields.String(required=True, validate=validate.Length(2, 100), metadata={
        "description": "Part of a serial number, customer name, contact person or phone number (2 to 100 "
                       "characters, matched literally and case-insensitively; phone numbers ignore separators)"})
    per_page = WholeNumber(load_default=10, validate=validate.Range(min=1, max=50))


class WarrantySchema(Schema):
    """Whether the equipment is under warranty today (the department's calendar day)."""

    state = fields.String(metadata={"description": "in_warranty, out_of_warranty or unknown"})
    text = fields.String(metadata={"description": "In words: 'in warranty until 2027-02-28', 'out of warranty "
                                                  "since 2024-06-15' or 'warranty unknown'"})
    day = fields.Date(allow_none=True, metadata={
        "description": "The last day under warranty, or the first day out of it; null when unknown"})


class CustomerContactSchema(CustomerBriefSchema):
    """A customer as the agent taking a call needs it."""

    contact_name = fields.String()
    email = fields.String()


class OpenCaseBriefSchema(Schema):
    """An open case of the equipment: intake warns before a second one is opened."""

    id = fields.Integer()
    number = fields.String()
    title = fields.String()
    reported_at = fields.AwareDateTime()
    opened_at = fields.AwareDateTime()


class EquipmentMatchSchema(Schema):
    """A piece of equipment found for a search, with its customer, warranty and open cases."""

    id = fields.Integer()
    model = fields.String()
    serial_number = fields.String()
    site = fields.String()
    region = fields.String()
    installed_on = fields.Date(allow_none=True)
    warranty_ends_on = fields.Date(allow_none=True)
    dealer = fields.String()
    warranty = fields.Nested(WarrantySchema)
    customer = fields.Nested(CustomerContactSchema)
    open_cases = fields.List(fields.Nested(OpenCaseBriefSchema))
    status = fields.String(metadata={"description": "in_service, or retired (listed last: open a new case on "
                                                    "the unit that replaced it, `replaced_by`)"})
    replaced_by = fields.Function(lambda e: _unit_ref(e.replaced_by), allow_none=True, metadata={
        "description": "The unit that replaced a retired one: id and serial number"})


def _unit_ref(unit: Any) -> dict[str, Any] | None:
    return None if unit is None else {"id": unit.id, "serial_number": unit.serial_number, "model": unit.model,
                                      "status": unit.status}


class EquipmentEventSchema(Schema):
    """One entry of a unit's file history."""

    id = fields.Integer()
    type = fields.String(metadata={"description": "registered, updated, replaced, retired or "
                                                  "installed_as_replacement"})
    case_id = fields.Integer(allow_none=True)
    occurred_at = fields.AwareDateTime()
    actor = fields.String()
    payload = fields.Dict()


class EquipmentCaseSchema(Schema):
    """A case of the unit, as its file lists it."""

    id = fields.Integer()
    number = fields.String()
    status = fields.String()
    process = fields.String(attribute="process_id")
    title = fields.String()
    reported_at = fields.AwareDateTime()
    closed_at = fields.AwareDateTime(allow_none=True)


class EquipmentFileSchema(Schema):
    """A unit's service file: what it is, whose, its warranty today, what replaced it or what it replaced,
    its history and its cases."""

    id = fields.Integer()
    model = fields.String()
    serial_number = fields.String()
    site = fields.String()
    region = fields.String()
    installed_on = fields.Date(allow_none=True)
    warranty_ends_on = fields.Date(allow_none=True)
    dealer = fields.String()
    monitored = fields.Boolean()
    status = fields.String(metadata={"description": "in_service or retired"})
    retired_at = fields.AwareDateTime(allow_none=True)
    warranty = fields.Nested(WarrantySchema)
    customer = fields.Nested(CustomerContactSchema)
    replaced_by = fields.Function(lambda f: _unit_ref(f.replaced_by), allow_none=True)
    replaces = fields.Function(lambda f: _unit_ref(f.replaces), allow_none=True)
    events = fields.List(fields.Nested(EquipmentEventSchema), metadata={"description": "Oldest first"})
    cases = fields.List(fields.Nested(EquipmentCaseSchema), metadata={
        "description": "Newest first; the cases of the unit itself (a replacement's own cases are in its file)"})
    cases_total = fields.Integer()


class RegistryImportReportSchema(Schema):
    """What a registry or stock import did, and the rows it refused (the others are kept)."""

    created = fields.Integer()
    updated = fields.Integer()
    unchanged = fields.Integer()
    refused_rows = fields.Integer()
    errors = fields.List(fields.Nested(lambda: RowErrorSchema()))


class EquipmentMatchListSchema(Schema):
    """A page of equipment found."""

    items = fields.List(fields.Nested(EquipmentMatchSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


# ------------------------------------------------------------------------------------------ spare parts

def part_number_field(**kwargs: Any) -> fields.String:
    """A part number as the catalogue spells it."""
    return fields.String(validate=validate.Regexp(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,49}$", error=(
        "must be a part number: 1 to 50 letters, digits, '.', '_', '/' or '-', starting with a letter or digit")),
        metadata={"description": "The manufacturer's part number, e.g. FUS-125A"}, **kwargs)


def quantity_field(**kwargs: Any) -> WholeNumber:
    """Units of a part: a JSON whole number from 1 to 100,000."""
    return WholeNumber(strict=True, validate=validate.Range(min=1, max=100_000), **kwargs)


class WarehouseSchema(Schema):
    """The spare-parts store of one service region."""

    id = fields.Integer()
    code = fields.String()
    name = fields.String()
    region = fields.String()
    address = fields.String()


class WarehouseCreateSchema(StrictSchema):
    """Setting up a region's warehouse."""

    code = fields.String(required=True, validate=validate.Regexp(r"^[A-Z0-9][A-Z0-9_-]{0,19}$", error=(
        "must be 1 to 20 capital letters, digits, '_' or '-'")))
    name = fields.String(required=True, validate=validate.Length(1, 200))
    region = fields.String(required=True, validate=validate.Length(1, 100))
    address = fields.String(load_default="", validate=validate.Length(0, 500))


class WarehouseListSchema(Schema):
    """Every warehouse, by region."""

    items = fields.List(fields.Nested(WarehouseSchema))


class PartSchema(Schema):
    """A spare part of the catalogue."""

    id = fields.Integer()
    part_number = fields.String()
    name = fields.String()
    unit = fields.String()


class PartCreateSchema(StrictSchema):
    """Adding a part to the catalogue."""

    part_number = part_number_field(required=True)
    name = fields.String(required=True, validate=validate.Length(1, 200))
    unit = fields.String(load_default="pcs", validate=validate.Length(1, 20))


class PartQuerySchema(PageArgsSchema):
    """Finding parts by number or name."""

    q = fields.String(validate=validate.Length(1, 100), metadata={
        "description": "Part of a part number or name, matched literally and case-insensitively"})


class PartListSchema(Schema):
    """Parts, by part number, one page at a time."""

    items = fields.List(fields.Nested(PartSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class StockLevelSchema(Schema):
    """How many of a part a region's warehouse holds."""

    id = fields.Integer()
    region = fields.Function(lambda level: level.warehouse.region)
    warehouse = fields.Function(lambda level: level.warehouse.code)
    part_number = fields.Function(lambda level: level.part.part_number)
    part_name = fields.Function(lambda level: level.part.name)
    unit = fields.Function(lambda level: level.part.unit)
    on_hand = fields.Integer(metadata={"description": "Units in the warehouse"})
    reserved = fields.Integer(metadata={"description": "Of those, units held for open cases"})
    available = fields.Integer(metadata={"description": "Units that may still be reserved"})
    updated_at = fields.AwareDateTime()


class StockQuerySchema(PageArgsSchema):
    """Filters of the stock list."""

    region = fields.String(validate=validate.Length(1, 100))
    part_number = part_number_field()
    available = flag_field(metadata={"description": "true: only levels with units that may still be reserved"})


class StockListSchema(Schema):
    """Stock levels by region and part number, one page at a time."""

    items = fields.List(fields.Nested(StockLevelSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class StockReceiptSchema(StrictSchema):
    """A delivery booked into a region's warehouse."""

    region = fields.String(required=True, validate=validate.Length(1, 100))
    part_number = part_number_field(required=True)
    quantity = quantity_field(required=True)
    note = fields.String(load_default="", validate=validate.Length(0, 500),
                         metadata={"description": "Delivery note number, supplier"})


class StockCountSchema(StrictSchema):
    """What a stocktake counted; the note says why the stock changes."""

    region = fields.String(required=True, validate=validate.Length(1, 100))
    part_number = part_number_field(required=True)
    on_hand = WholeNumber(required=True, strict=True, validate=validate.Range(min=0, max=100_000))
    note = fields.String(required=True, validate=validate.Length(1, 500))


class StockMovementSchema(Schema):
    """One change of a stock level."""

    id = fields.Integer()
    region = fields.Function(lambda m: m.stock_level.warehouse.region)
    part_number = fields.Function(lambda m: m.stock_level.part.part_number)
    kind = fields.String(metadata={"description": "received, adjusted, reserved, released or consumed"})
    quantity = fields.Integer()
    on_hand_after = fields.Integer()
    reserved_after = fields.Integer()
    case_id = fields.Integer(allow_none=True)
    reservation_id = fields.Integer(allow_none=True)
    actor = fields.String()
    occurred_at = fields.AwareDateTime()
    note = fields.String()


class MovementQuerySchema(PageArgsSchema):
    """Filters of the movement log."""

    region = fields.String(validate=validate.Length(1, 100))
    part_number = part_number_field()
    case_id = Id()


class StockMovementListSchema(Schema):
    """Stock movements, newest first, one page at a time."""

    items = fields.List(fields.Nested(StockMovementSchema))
    total = fields.Integer()
    page = fields.Integer()
    per_page = fields.Integer()


class PartLineSchema(StrictSchema):
    """A part number and a quantity."""

    part_number = part_number_field(required=True)
    quantity = quantity_field(required=True)


class ReservationCreateSchema(StrictSchema):
    """Parts to hold for a case, from its region's warehouse: all lines or none."""

    lines = fields.List(fields.Nested(PartLineSchema), required=True, validate=validate.Length(1, 50))


class PartsUsedSchema(StrictSchema):
    """What the repair used of the parts held for the case; the rest goes back on the shelf."""

    used = fields.List(fields.Nested(PartLineSchema), required=True, validate=validate.Length(0, 50))


class PartsReleaseSchema(StrictSchema):
    """Letting every part held for the case go, and why."""

    reason = fields.String(required=True, validate=validate.Length(1, 500))


class ReservationSchema(Schema):
    """Units of a part held for a case."""

    id = fields.Integer()
    case_id = fields.Integer()
    region = fields.Function(lambda r: r.stock_level.warehouse.region)
    warehouse = fields.Function(lambda r: r.stock_level.warehouse.code)
    part_number = fields.Function(lambda r: r.stock_level.part.part_number)
    quantity = fields.Integer()
    consumed = fields.Integer(metadata={"description": "Units the repair used (once settled)"})
    state = fields.String(metadata={"description": "held, consumed or released"})
    created_at = fields.AwareDateTime()
    created_by = fields.String()
    ended_at = fields.AwareDateTime(allow_none=True)
    ended_by = fields.String(allow_none=True)


class ReservationListSchema(Schema):
    """The reservations of a case, oldest first."""

    case_id = fields.Integer()
    items = fields.List(fields.Nested(ReservationSchema))


# ----------------------------------------------------------------------------------------- operating data

READING_DESCRIPTION = (
    "One day: `day` (YYYY-MM-DD, the department's calendar day, not in the future, at most 400 days ago), "
    "`input_voltage` and `output_voltage` (V, 0-1000), `load_percent` (0-300), `battery_health_percent` "
    "(0-100), `temperature_c` (-50-120), `alarm_codes` (optional list of codes)")


class ReadingsInSchema(StrictSchema):
    """Days of operating data of one piece of monitored equipment."""

    readings = fields.List(fields.Dict(keys=fields.String(), metadata={"description": READING_DESCRIPTION}),
                           required=True, validate=validate.Length(1, 1000))
    correct = fields.Boolean(load_default=False, metadata={
        "description": "true: overwrite days recorded already with other values (a correction)"})


class ReadingSchema(Schema):
    """One day's operating data."""

    day = fields.Date()
    input_voltage = fields.Float()
    output_voltage = fields.Float()
    load_percent = fields.Float()
    battery_health_percent = fields.Float()
    temperature_c = fields.Float()
    alarm_codes = fields.List(fields.String())
    received_at = fields.AwareDateTime()
    received_by = fields.String()
    corrected_at = fields.AwareDateTime(allow_none=True)
    corrected_by = fields.String(allow_none=True)


class ReadingsRecordedSchema(Schema):
    """What a delivery did, day by day."""

    equipment_id = fields.Integer()
    created = fields.List(fields.Date(), metadata={"description": "Days stored for the first time"})
    unchanged = fields.List(fields.Date(), metadata={"description": "Days recorded already with these values"})
    corrected = fields.List(fields.Date(), metadata={"description": "Days overwritten (correct=true)"})


class ReadingQuerySchema(StrictSchema):
    """A span of days."""

    start = fields.Date(data_key="from", metadata={"description": "First day (YYYY-MM-DD), inclusive"})
    end = fields.Date(data_key="to", metadata={"description": "Last day (YYYY-MM-DD), inclusive"})


class ReadingListSchema(Schema):
    """Operating data of one piece of equipment, oldest first."""

    equipment_id = fields.Integer()
    items = fields.List(fields.Nested(ReadingSchema))


class ReadingsImportSchema(StrictSchema):
    """Rows of operating data of many units, by serial number."""

    rows = fields.List(fields.Dict(keys=fields.String(), metadata={
        "description": "serial_number, then the fields of one day: " + READING_DESCRIPTION}),
        required=True, validate=validate.Length(1, 100_000))
    correct = fields.Boolean(load_default=False)


class RowErrorSchema(Schema):
    """One refused row of an import."""

    row = fields.Integer(metadata={"description": "The row's number: its line in a CSV file (the header is line 1)"})
    column = fields.String()
    message = fields.String()


class ImportReportSchema(Schema):
    """What an import stored, and the rows it refused (the others are kept)."""

    created = fields.Integer()
    unchanged = fields.Integer()
    corrected = fields.Integer()
    refused_rows = fields.Integer()
    errors = fields.List(fields.Nested(RowErrorSchema))


class FindingSchema(Schema):
    """One anomaly of a day."""

    measure = fields.String(metadata={"description": "The measure out of its range, or alarm_codes"})
    value = fields.Raw()
    text = fields.String()


class DayFindingsSchema(Schema):
    """The anomalies of one day."""

    day = fields.Date()
    findings = fields.List(fields.Nested(FindingSchema))


class EquipmentMonthSchema(Schema):
    """One monitored unit's month."""

    equipment_id = fields.Function(lambda m: m.equipment.id)
    serial_number = fields.Function(lambda m: m.equipment.serial_number)
    model = fields.Function(lambda m: m.equipment.model)
    region = fields.Function(lambda m: m.equipment.region)
    days_received = fields.Function(lambda m: len(m.readings))
    anomalies = fields.List(fields.Nested(DayFindingsSchema))
    missing_days = fields.List(fields.Date())


class MonthQuerySchema(StrictSchema):
    """A month."""

    month = fields.String(required=True, validate=validate.Regexp(r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$", error=(
        "must be a month written YYYY-MM, from 2000-01 to 2100-12")))


class MonthReviewSchema(Schema):
    """Every monitored unit's month with its anomalies under the rules in force."""

    month = fields.String()
    rules = fields.Dict(metadata={"description": "measure → [lowest normal, highest normal] (null: no bound)"})
    items = fields.List(fields.Nested(EquipmentMonthSchema))
