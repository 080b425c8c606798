"""Customers and equipment: finding the caller's equipment while they are on the phone, a unit's file
with its history and cases, and the CSV imports of customers, equipment and stock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flask import request
from flask.views import MethodView
from marshmallow import RAISE
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from app.api.common import ApiBlueprint, current_actor
from app.api.guard import takes_uploads
from app.api.schemas import (
    EquipmentFileSchema,
    EquipmentMatchListSchema,
    EquipmentSearchQuerySchema,
    RegistryImportReportSchema,
)
from app.cases import service as cases
from app.cases.models import Case
from app.errors import InvalidDataError
from app.imports import CSV_MAX_BYTES, ImportReport, read_csv
from app.registry import service as registry
from app.registry.models import Equipment, EquipmentEvent, WarrantyStatus
from app.stock import service as stock
from app.uow import unit_of_work


class EquipmentMatch:
    """A found piece of equipment with what the search adds to its file: warranty today and open cases."""

    def __init__(self, equipment: Equipment, warranty: WarrantyStatus, open_cases: list[Case]) -> None:
        self.equipment = equipment
        self.warranty = warranty
        self.open_cases = open_cases

    def __getattr__(self, name: str) -> Any:
        return getattr(self.equipment, name)


blp = ApiBlueprint("api_registry", __name__, url_prefix="/api/registry",
                   description="Customers and equipment (service files)")


@blp.route("/equipment")
class EquipmentSearch(MethodView):
    """Equipment found by serial number, customer name, contact person or phone."""

    @blp.arguments(EquipmentSearchQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, EquipmentMatchListSchema)
    @blp.errors(400, e403="The acting user may not read customer and equipment files (or cases)",
                e422="q missing, shorter than 2 or longer than 100 characters, or with a NUL; bad page arguments")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Find equipment as the customer describes it (paginated), each with its customer, its warranty
        today and its open cases, so a second case for the same fault is not opened unawares."""
        actor = current_actor()
        items, total = registry.search_equipment(actor=actor, text=args["q"], page=args["page"],
                                                 per_page=args["per_page"])
        open_cases = cases.open_cases_of_equipment(actor=actor, equipment_ids=[item.id for item in items])
        today = registry.department_today()
        return {"items": [EquipmentMatch(item, item.warranty_on(today), open_cases.get(item.id, []))
                          for item in items],
                "total": total, "page": args["page"], "per_page": args["per_page"]}


class EquipmentFile:
    """A unit's file as the API shows it: the unit, its warranty today, its history and its cases."""

    def __init__(self, equipment: Equipment, warranty: WarrantyStatus, events: list[EquipmentEvent],
                 unit_cases: list[Case], cases_total: int) -> None:
        self.equipment = equipment
        self.warranty = warranty
        self.events = events
        self.cases = unit_cases
        self.cases_total = cases_total

    def __getattr__(self, name: str) -> Any:
        return getattr(self.equipment, name)


FILE_CASES = 200  # the newest cases a file lists; the case list (filter equipment_id) pages through all


@blp.route("/equipment/<id:equipment_id>")
class EquipmentFileView(MethodView):
    """One unit's service file."""

    @blp.response(200, EquipmentFileSchema)
    @blp.errors(e403="The acting user may not read customer and equipment files (or cases)",
                e404="Unknown equipment")
    def get(self, equipment_id: int) -> EquipmentFile:
        """The unit's file: model, serial, site, customer, status (in service or retired), warranty today,
        dealer, the unit that replaced it or that it replaced, its history (registered, replaced, retired,
        installed as a replacement...) and its cases, newest first (at most 200; `GET
        /api/cases?equipment_id=` pages through all)."""
        actor = current_actor()
        unit = registry.get_equipment(equipment_id, actor=actor)
        unit_cases, total = cases.list_cases(actor=actor, equipment_id=unit.id, per_page=FILE_CASES)
        return EquipmentFile(unit, unit.warranty_on(registry.department_today()),
                             registry.equipment_events(actor=actor, equipment_id=unit.id), unit_cases, total)


CSV_COLUMNS_TEXT = {
    "customers": "name, region (the key: name and region together), and any of contact_name, phone, email, address",
    "equipment": "serial_number (the key), model, customer, region (the customer's name and region, imported "
                 "first), and any of site, installed_on, warranty_ends_on (YYYY-MM-DD), dealer, monitored (yes/no)",
    "stock": "region, part_number, part_name (needed only for a part not in the catalogue), on_hand (what the "
             "stocktake counted)",
}


def _csv_body(kind: str) -> dict[str, Any]:
    return {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["file"], "additionalProperties": False,
        "properties": {"file": {"type": "string", "format": "binary", "description": (
            f"UTF-8 CSV (a BOM is allowed) with the header {CSV_COLUMNS_TEXT[kind]}; at most "
            f"{CSV_MAX_BYTES // 1_000_000} MB")}}}}}}


def uploaded_csv(columns: Sequence[str], required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """The rows of the CSV file sent in the multipart field ``file``; errors name the field."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("send the CSV file as multipart/form-data in the field 'file', not "
                                   f"{request.mimetype or 'without a Content-Type'}")
    try:
        files, form = request.files, request.form
    except RequestEntityTooLarge:
        raise InvalidDataError(f"the file is larger than {CSV_MAX_BYTES // 1_000_000} MB",
                               errors={"file": ["too large"]}) from None
    unknown = sorted({*files, *form} - {"file"})
    if unknown or "file" not in files:
        raise InvalidDataError("the upload has invalid fields", errors={
            **{name: ["unknown field"] for name in unknown},
            **({"file": ["missing: send the CSV file in this multipart field"]} if "file" not in files else {})})
    return read_csv(files["file"].read(CSV_MAX_BYTES + 1), columns=columns, required=required)


IMPORTS: dict[str, tuple[Sequence[str], Sequence[str], Callable[..., ImportReport]]] = {
    "customers": (registry.CUSTOMER_COLUMNS, registry.CUSTOMER_REQUIRED, registry.import_customers),
    "equipment": (registry.EQUIPMENT_COLUMNS, registry.EQUIPMENT_REQUIRED, registry.import_equipment),
    "stock": (stock.STOCK_COLUMNS, stock.STOCK_REQUIRED, stock.import_stock),
}


def _import(kind: str) -> dict[str, Any]:
    columns, required, run = IMPORTS[kind]
    rows = uploaded_csv(columns, required)
    with unit_of_work():
        return run(actor=current_actor(), rows=rows).as_dict()


def _import_view(kind: str, who: str) -> type[MethodView]:
    class ImportView(MethodView):
        @blp.doc(requestBody=_csv_body(kind))
        @blp.response(200, RegistryImportReportSchema)
        @blp.errors(400, 413, 415, e403=f"The acting user may not import {kind} ({who})",
                    e422="No file, a file that is not UTF-8 CSV, or a header without the required columns "
                         "(errors name `file`)")
        def post(self) -> dict[str, Any]:
            return _import(kind)

    ImportView.__name__ = ImportView.__qualname__ = f"{kind.capitalize()}Import"
    ImportView.__doc__ = f"Import {kind} from a CSV file."
    ImportView.post.__doc__ = (f"Import {kind} from a CSV file (multipart field `file`): good rows are kept, each "
                               "bad row is reported with its line (the header is line 1) and column; the same "
                               "file imported again changes nothing.")
    return ImportView


for _kind, _who in (("customers", "registry.manage: admins"), ("equipment", "registry.manage: admins"),
                    ("stock", "stock.manage: warehouse keepers and admins")):
    blp.route(f"/import/{_kind}")(_import_view(_kind, _who))
    takes_uploads(f"api_registry.{_kind.capitalize()}Import", lambda: CSV_MAX_BYTES + 64 * 1024)
