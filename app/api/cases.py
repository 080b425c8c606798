"""Cases: open, list, read, history."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from app.api.common import ApiBlueprint, current_actor
from app.api.schemas import CaseCreateSchema, CaseListSchema, CaseQuerySchema, CaseSchema, EventListSchema
from app.audit.service import list_events
from app.cases import service as cases
from app.uow import unit_of_work

blp = ApiBlueprint("api_cases", __name__, url_prefix="/api/cases", description="Cases")


@blp.route("")
class Cases(MethodView):
    """The case collection."""

    @blp.arguments(CaseQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, CaseListSchema)
    @blp.errors()
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List cases (filters: status, process, text; paginated)."""
        items, total = cases.list_cases(actor=current_actor(),
                                        status=args.get("status"), process_id=args.get("process"),
                                        text=args.get("text"), customer_id=args.get("customer_id"),
                                        equipment_id=args.get("equipment_id"), page=args["page"],
                                        per_page=args["per_page"])
        return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}

    @blp.arguments(CaseCreateSchema)
    @blp.response(201, CaseSchema)
    @blp.errors(400, 413, 415, e403="The acting user may not open cases",
                e422="Invalid fields, an unknown process or customer, or a notice time out of range")
    def post(self, args: dict[str, Any]) -> Any:
        """Open a case as the customer reported it and run it to its first task."""
        with unit_of_work():
            case = cases.open_case(actor=current_actor(), process_id=args["process"],
                                   reported_at=args["reported_at"], channel=args["channel"],
                                   description=args["description"], title=args.get("title"),
                                   priority=args["priority"], customer_id=args.get("customer_id"),
                                   equipment_id=args.get("equipment_id"))
        return case


@blp.route("/<id:case_id>")
class CaseResource(MethodView):
    """One case."""

    @blp.response(200, CaseSchema)
    @blp.errors(e404="Unknown case")
    def get(self, case_id: int) -> Any:
        """A case with its open tasks and deadlines."""
        actor = current_actor()
        return cases.case_detail(cases.get_case(case_id, actor=actor), actor=actor)


@blp.route("/<id:case_id>/events")
class CaseEvents(MethodView):
    """A case's history."""

    @blp.response(200, EventListSchema)
    @blp.errors(e404="Unknown case")
    def get(self, case_id: int) -> dict[str, Any]:
        """Every event of the case, in order."""
        actor = current_actor()
        case = cases.get_case(case_id, actor=actor)
        return {"case_id": case.id, "number": case.number, "items": list_events(actor=actor, case_id=case.id)}
