"""Deployed processes (read-only here; deploying is the CLI's and, later, the modeller's)."""

from __future__ import annotations

from flask.views import MethodView

from app.api.common import ApiBlueprint, current_actor
from app.api.schemas import ProcessSchema
from app.processes import service as processes
from app.processes.models import ProcessVersion

blp = ApiBlueprint("api_processes", __name__, url_prefix="/api/processes", description="Process versions")


@blp.route("")
class Processes(MethodView):
    """Deployed processes."""

    @blp.response(200, ProcessSchema(many=True))
    @blp.errors()
    def get(self) -> list[ProcessVersion]:
        """The latest version of every deployed process."""
        return processes.list_processes(actor=current_actor())


@blp.route("/<process_id>/versions")
class ProcessVersions(MethodView):
    """Versions of one process."""

    @blp.response(200, ProcessSchema(many=True))
    @blp.errors()
    def get(self, process_id: str) -> list[ProcessVersion]:
        """Every version of a process, newest first."""
        return processes.list_versions(process_id, actor=current_actor())
