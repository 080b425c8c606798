"""Customers and equipment: finding the caller's equipment while they are on the phone."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from app.api.common import ApiBlueprint, current_actor
from app.api.schemas import EquipmentMatchListSchema, EquipmentSearchQuerySchema
from app.cases import service as cases
from app.cases.models import Case
from app.registry import service as registry
from app.registry.models import Equipment, WarrantyStatus


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
