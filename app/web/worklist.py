"""The worklist: ready tasks, most urgent first, filtered by role or to the acting user's own."""

from __future__ import annotations

from flask import render_template

from app.auth import ROLE_NAMES
from app.tasks import service as tasks
from app.web.common import Pagination, current_actor, load_query, page_blueprint
from app.web.schemas import WorklistQuerySchema

bp = page_blueprint("worklist", __name__)


@bp.get("/")
def index() -> str:
    """Ready work items, soonest deadline first."""
    args = load_query(WorklistQuerySchema())
    actor = current_actor()
    items, total = tasks.list_work_items(actor=actor,
                                         role=args["role"], assignee=actor.username if args["mine"] else None,
                                         state="ready", page=args["page"], per_page=args["per_page"])
    roles = list(ROLE_NAMES.items())
    page = Pagination(items, total, args["page"], args["per_page"])
    return render_template("worklist/index.html", page=page, roles=roles, role=args["role"],
                           mine=args["mine"])
