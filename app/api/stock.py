"""Spare parts: warehouses, the parts catalogue, stock levels and movements, and the parts a case holds."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from app.api.common import ApiBlueprint, current_actor
from app.api.schemas import (
    MovementQuerySchema,
    PartCreateSchema,
    PartListSchema,
    PartQuerySchema,
    PartSchema,
    PartsReleaseSchema,
    PartsUsedSchema,
    ReservationCreateSchema,
    ReservationListSchema,
    StockCountSchema,
    StockLevelSchema,
    StockListSchema,
    StockMovementListSchema,
    StockQuerySchema,
    StockReceiptSchema,
    WarehouseCreateSchema,
    WarehouseListSchema,
    WarehouseSchema,
)
from app.stock import service as stock
from app.stock.service import PartLine
from app.uow import unit_of_work

blp = ApiBlueprint("api_stock", __name__, url_prefix="/api", description="Spare parts (plan 5.6)")


def _page(items: list[Any], total: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}


def _lines(rows: list[dict[str, Any]]) -> list[PartLine]:
    return [PartLine(row["part_number"], row["quantity"]) for row in rows]


@blp.route("/stock/warehouses")
class Warehouses(MethodView):
    """The regional warehouses."""

    @blp.response(200, WarehouseListSchema)
    @blp.errors(e403="The acting user may not read the spare-parts stock")
    def get(self) -> dict[str, Any]:
        """Every warehouse, by region."""
        return {"items": stock.list_warehouses(actor=current_actor())}

    @blp.arguments(WarehouseCreateSchema)
    @blp.response(201, WarehouseSchema)
    @blp.errors(400, 415, e403="The acting user may not manage warehouses, parts and stock",
                e409="The code is taken, or the region has a warehouse already")
    def post(self, args: dict[str, Any]) -> Any:
        """Set up the warehouse of a region (warehouse keepers and admins)."""
        with unit_of_work():
            return stock.create_warehouse(actor=current_actor(), **args)


@blp.route("/stock/parts")
class Parts(MethodView):
    """The parts catalogue."""

    @blp.arguments(PartQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, PartListSchema)
    @blp.errors(e403="The acting user may not read the spare-parts stock")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Parts by part number (filter q: part of the number or name; paginated)."""
        items, total = stock.list_parts(actor=current_actor(), text=args.get("q"), page=args["page"],
                                        per_page=args["per_page"])
        return _page(items, total, args)

    @blp.arguments(PartCreateSchema)
    @blp.response(201, PartSchema)
    @blp.errors(400, 415, e403="The acting user may not manage warehouses, parts and stock",
                e409="The part number is taken")
    def post(self, args: dict[str, Any]) -> Any:
        """Add a part to the catalogue (warehouse keepers and admins)."""
        with unit_of_work():
            return stock.create_part(actor=current_actor(), **args)


@blp.route("/stock")
class StockLevels(MethodView):
    """What each region's warehouse holds."""

    @blp.arguments(StockQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, StockListSchema)
    @blp.errors(e403="The acting user may not read the spare-parts stock")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Stock levels by region and part number (filters region, part_number, available; paginated)."""
        items, total = stock.list_stock(actor=current_actor(), region=args.get("region"),
                                        part_number=args.get("part_number"),
                                        available_only=bool(args.get("available")), page=args["page"],
                                        per_page=args["per_page"])
        return _page(items, total, args)


@blp.route("/stock/receipts")
class StockReceipts(MethodView):
    """Deliveries into a warehouse."""

    @blp.arguments(StockReceiptSchema)
    @blp.response(201, StockLevelSchema)
    @blp.errors(400, 415, e403="The acting user may not manage warehouses, parts and stock",
                e404="The part is not in the catalogue", e422="Invalid fields, or a region without a warehouse")
    def post(self, args: dict[str, Any]) -> Any:
        """Book a delivery into the region's warehouse; the level afterwards."""
        with unit_of_work():
            return stock.receive_stock(actor=current_actor(), **args)


@blp.route("/stock/counts")
class StockCounts(MethodView):
    """Stocktakes."""

    @blp.arguments(StockCountSchema)
    @blp.response(200, StockLevelSchema)
    @blp.errors(400, 415, e403="The acting user may not manage warehouses, parts and stock",
                e404="The part is not in the catalogue", e409="The count is below what is reserved for cases",
                e422="Invalid fields, or a region without a warehouse")
    def post(self, args: dict[str, Any]) -> Any:
        """Set the units a stocktake counted (never below the reserved units); the level afterwards."""
        with unit_of_work():
            return stock.count_stock(actor=current_actor(), **args)


@blp.route("/stock/movements")
class StockMovements(MethodView):
    """The log of every stock change."""

    @blp.arguments(MovementQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, StockMovementListSchema)
    @blp.errors(e403="The acting user may not read the spare-parts stock")
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Movements, newest first (filters region, part_number, case_id; paginated)."""
        items, total = stock.list_movements(actor=current_actor(), region=args.get("region"),
                                            part_number=args.get("part_number"), case_id=args.get("case_id"),
                                            page=args["page"], per_page=args["per_page"])
        return _page(items, total, args)


@blp.route("/cases/<id:case_id>/parts")
class CaseParts(MethodView):
    """The parts held for a case's repair."""

    @blp.response(200, ReservationListSchema)
    @blp.errors(e403="The acting user may not read the spare-parts stock")
    def get(self, case_id: int) -> dict[str, Any]:
        """The case's reservations, oldest first (held, consumed, released)."""
        return {"case_id": case_id, "items": stock.case_reservations(actor=current_actor(), case_id=case_id)}

    @blp.arguments(ReservationCreateSchema)
    @blp.response(201, ReservationListSchema)
    @blp.errors(400, 415, e403="The acting user may not reserve spare parts for cases", e404="Unknown case",
                e409="A line is not stocked or not available in the case's region (the line is named), or the "
                     "case is closed",
                e422="Invalid lines, or a case without a region or a region without a warehouse")
    def post(self, args: dict[str, Any], case_id: int) -> dict[str, Any]:
        """Hold the parts for the case in its region's warehouse: every line or none."""
        with unit_of_work():
            held = stock.reserve_for_case(actor=current_actor(), case_id=case_id, lines=_lines(args["lines"]))
        return {"case_id": case_id, "items": held}


@blp.route("/cases/<id:case_id>/parts/used")
class CasePartsUsed(MethodView):
    """What the repair used."""

    @blp.arguments(PartsUsedSchema)
    @blp.response(200, ReservationListSchema)
    @blp.errors(400, 415, e403="The acting user may not book the spare parts a repair used", e404="Unknown case",
                e409="The case is closed", e422="Invalid lines, or more of a part than was reserved for the case")
    def post(self, args: dict[str, Any], case_id: int) -> dict[str, Any]:
        """Consume the units the repair used from the case's held parts and release the rest."""
        with unit_of_work():
            settled = stock.use_for_case(actor=current_actor(), case_id=case_id, used=_lines(args["used"]))
        return {"case_id": case_id, "items": settled}


@blp.route("/cases/<id:case_id>/parts/release")
class CasePartsRelease(MethodView):
    """Letting a case's parts go."""

    @blp.arguments(PartsReleaseSchema)
    @blp.response(200, ReservationListSchema)
    @blp.errors(400, 415, e403="The acting user may not book the spare parts a repair used", e404="Unknown case")
    def post(self, args: dict[str, Any], case_id: int) -> dict[str, Any]:
        """Put every part still held for the case back on the shelf, with the reason."""
        with unit_of_work():
            released = stock.release_for_case(actor=current_actor(), case_id=case_id, reason=args["reason"])
        return {"case_id": case_id, "items": released}
