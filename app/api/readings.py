"""Operating data: what monitored equipment sends each day, and the month's review with its anomalies."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import RAISE
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from app.api.common import ApiBlueprint, current_actor
from app.api.guard import takes_uploads
from app.api.schemas import (
    ImportReportSchema,
    MonthQuerySchema,
    MonthReviewSchema,
    ReadingListSchema,
    ReadingQuerySchema,
    ReadingsImportSchema,
    ReadingsInSchema,
    ReadingsRecordedSchema,
)
from app.errors import InvalidDataError
from app.readings import service as readings
from app.uow import unit_of_work

blp = ApiBlueprint("api_readings", __name__, url_prefix="/api", description="Operating data (plan 5.4)")
CSV_MAX_BYTES = 10_000_000


@blp.route("/equipment/<id:equipment_id>/readings")
class EquipmentReadings(MethodView):
    """One unit's daily operating data."""

    @blp.arguments(ReadingQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, ReadingListSchema)
    @blp.errors(e403="The acting user may not read operating data", e404="Unknown equipment")
    def get(self, args: dict[str, Any], equipment_id: int) -> dict[str, Any]:
        """The unit's readings from `from` to `to` (inclusive), oldest first."""
        items = readings.list_readings(actor=current_actor(), equipment_id=equipment_id, start=args.get("start"),
                                       end=args.get("end"))
        return {"equipment_id": equipment_id, "items": items}

    @blp.arguments(ReadingsInSchema)
    @blp.response(200, ReadingsRecordedSchema)
    @blp.alt_response(201, schema=ReadingsRecordedSchema, description="At least one day was stored for the first time")
    @blp.errors(400, 415, e403="The acting user may not send operating data", e404="Unknown equipment",
                e409="A day is recorded already with other values (the reading is named); send correct=true",
                e422="A reading is invalid (the reading and field are named), or the equipment is not monitored")
    def post(self, args: dict[str, Any], equipment_id: int) -> Any:
        """Store days of operating data: all of them, or none when one is refused. Sending a day again with
        the same values changes nothing (200)."""
        with unit_of_work():
            report = readings.record_readings(actor=current_actor(), equipment_id=equipment_id,
                                              readings=args["readings"], correct=args["correct"])
        body = {"equipment_id": equipment_id, "created": [r.day for r in report.created],
                "unchanged": [r.day for r in report.unchanged], "corrected": [r.day for r in report.corrected]}
        return body, (201 if report.created else 200)


@blp.route("/readings/import")
class ReadingsImport(MethodView):
    """Many units' operating data at once, as JSON rows."""

    @blp.arguments(ReadingsImportSchema)
    @blp.response(200, ImportReportSchema)
    @blp.errors(400, 415, e403="The acting user may not send operating data")
    def post(self, args: dict[str, Any]) -> Any:
        """Import rows (serial_number and one day each): good rows are kept, each bad row is reported with
        its number and column; the same rows again store nothing new."""
        with unit_of_work():
            return readings.import_readings(actor=current_actor(), rows=args["rows"], correct=args["correct"])


CSV_BODY = {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"], "additionalProperties": False,
    "properties": {"file": {"type": "string", "format": "binary", "description": (
        "UTF-8 CSV with the header serial_number, day, input_voltage, output_voltage, load_percent, "
        "battery_health_percent, temperature_c and optionally alarm_codes (codes separated by ';'); at most "
        "10 MB")}}}}}}

takes_uploads("api_readings.ReadingsCsvImport", lambda: CSV_MAX_BYTES + 64 * 1024)


def _csv_rows() -> tuple[list[dict[str, Any]], bool]:
    """The rows of the uploaded CSV file (field ``file``), and whether to correct; errors name the problem."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send the CSV file as multipart/form-data in the field 'file', not "
                                   f"{request.mimetype or 'without a Content-Type'}")
    try:
        files, form = request.files, request.form
    except RequestEntityTooLarge:
        raise InvalidDataError(f"the file is larger than {CSV_MAX_BYTES // 1_000_000} MB",
                               errors={"file": ["too large"]}) from None
    unknown = sorted({*files, *form} - {"file", "correct"})
    if unknown or "file" not in files:
        raise InvalidDataError("the upload has invalid fields", errors={
            **{name: ["unknown field"] for name in unknown},
            **({"file": ["missing: send the CSV file in this multipart field"]} if "file" not in files else {})})
    correct = form.get("correct", "false")
    if correct not in ("true", "false"):
        raise InvalidDataError("correct must be true or false", errors={"correct": ["must be true or false"]})
    raw = files["file"].read(CSV_MAX_BYTES + 1)
    if len(raw) > CSV_MAX_BYTES:
        raise InvalidDataError(f"the file is larger than {CSV_MAX_BYTES // 1_000_000} MB",
                               errors={"file": ["too large"]})
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise InvalidDataError(f"the file is not UTF-8 text (line {line})", errors={"file": [
            f"line {line} is not UTF-8"]}) from None
    if "\x00" in text:
        raise InvalidDataError("the file holds NUL characters", errors={"file": ["is not a CSV text file"]})
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [c for c in readings.CSV_COLUMNS if c != "alarm_codes" and c not in header]
    extra = [c for c in header if c not in readings.CSV_COLUMNS]
    if missing or extra:
        raise InvalidDataError("the CSV header is not right", errors={"file": [
            *(f"missing column {c}" for c in missing), *(f"unknown column {c!r}" for c in extra)]})
    try:
        rows = [dict(row) for row in reader]
    except csv.Error as exc:
        raise InvalidDataError(f"the CSV cannot be read at line {reader.line_num}: {exc}",
                               errors={"file": [f"line {reader.line_num}: {exc}"]}) from None
    for row in rows:
        if None in row:  # more cells than the header has columns
            row.pop(None)
            row[readings.EXTRA_CELLS] = "yes"
    return rows, correct == "true"


@blp.route("/readings/import.csv")
class ReadingsCsvImport(MethodView):
    """Many units' operating data at once, as a CSV file."""

    @blp.doc(requestBody=CSV_BODY)
    @blp.response(200, ImportReportSchema)
    @blp.errors(400, 415, e403="The acting user may not send operating data",
                e422="No file, a file that is not UTF-8 CSV, or a header without the required columns")
    def post(self) -> Any:
        """Import a CSV file (multipart field `file`; `correct=true` to overwrite recorded days): good rows
        are kept, each bad row is reported with its line and column."""
        rows, correct = _csv_rows()
        with unit_of_work():
            return readings.import_readings(actor=current_actor(), rows=rows, first_row=2, correct=correct)


@blp.route("/readings/review")
class MonthReview(MethodView):
    """The monthly inspection's view of the data."""

    @blp.arguments(MonthQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, MonthReviewSchema)
    @blp.errors(e403="The acting user may not read operating data")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Every monitored unit's month: days received, days missing, and each day's anomalies under the
        rules in force (the same rules the inspection's charts mark)."""
        year, month = (int(part) for part in args["month"].split("-"))
        review = readings.month_review(actor=current_actor(), year=year, month=month)
        return {"month": args["month"], "rules": {r.measure: [r.low, r.high] for r in readings.rules()},
                "items": review}
