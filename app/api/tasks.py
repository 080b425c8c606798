"""Tasks (work items): worklists, claim, complete."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from marshmallow import RAISE

from app.api.common import ApiBlueprint, current_actor
from app.api.schemas import (
    CaseSchema,
    TaskAssignSchema,
    TaskCompleteSchema,
    TaskDetailSchema,
    TaskListSchema,
    TaskQuerySchema,
)
from app.flows import tasks as task_flow
from app.tasks import service as tasks
from app.uow import unit_of_work

blp = ApiBlueprint("api_tasks", __name__, url_prefix="/api/tasks", description="Tasks")


@blp.route("")
class Tasks(MethodView):
    """The task collection."""

    @blp.arguments(TaskQuerySchema, location="query", unknown=RAISE)
    @blp.response(200, TaskListSchema)
    @blp.errors()
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List tasks (filters: role, assignee, case_id, state, process, region, priority, channel, overdue;
        paginated; overdue first, then by deadline)."""
        filters = tasks.WorkFilters(process_id=args.get("process"), region=args.get("region"),
                                    priority=args.get("priority"), channel=args.get("channel"),
                                    overdue=args.get("overdue"))
        items, total = tasks.list_work_items(actor=current_actor(), role=args.get("role"),
                                             assignee=args.get("assignee"), case_id=args.get("case_id"),
                                             state=args["state"], filters=filters,
                                             page=args["page"], per_page=args["per_page"])
        return {"items": items, "total": total, "page": args["page"], "per_page": args["per_page"]}


@blp.route("/<id:task_id>")
class TaskResource(MethodView):
    """One task."""

    @blp.response(200, TaskDetailSchema)
    @blp.errors(e404="Unknown task")
    def get(self, task_id: int) -> task_flow.WorkItemDetail:
        """A task with its record form definition and the process data it sees."""
        actor = current_actor()
        return task_flow.task_detail(tasks.get_work_item(task_id, actor=actor), actor=actor)


@blp.route("/<id:task_id>/claim")
class TaskClaim(MethodView):
    """Claiming a task."""

    @blp.response(200, TaskDetailSchema)
    @blp.errors(400, 413, 415, e403="The task is for a role the acting user does not hold",
                e404="Unknown task", e409="The task is no longer ready or claimed by someone else")
    def post(self, task_id: int) -> task_flow.WorkItemDetail:
        """Assign the task to the acting user."""
        actor = current_actor()
        with unit_of_work():
            item = tasks.claim_work_item(work_item_id=task_id, actor=actor)
        return task_flow.task_detail(item, actor=actor)


@blp.route("/<id:task_id>/release")
class TaskRelease(MethodView):
    """Releasing a claimed task back to its role's queue."""

    @blp.response(200, TaskDetailSchema)
    @blp.errors(400, 413, 415, e403="Only the assignee or a supervisor may release the task",
                e404="Unknown task", e409="The task is no longer ready, or nobody has claimed it")
    def post(self, task_id: int) -> task_flow.WorkItemDetail:
        """Unassign the task: it goes back to the queue of its role."""
        actor = current_actor()
        with unit_of_work():
            item = tasks.release_work_item(work_item_id=task_id, actor=actor)
        return task_flow.task_detail(item, actor=actor)


@blp.route("/<id:task_id>/assign")
class TaskAssign(MethodView):
    """Assigning a task to someone (supervisors)."""

    @blp.arguments(TaskAssignSchema)
    @blp.response(200, TaskDetailSchema)
    @blp.errors(400, 413, 415, e403="Only supervisors assign tasks", e404="Unknown task",
                e409="The task is no longer ready",
                e422="No such user, the user is disabled, or does not hold the task's role")
    def post(self, args: dict[str, Any], task_id: int) -> task_flow.WorkItemDetail:
        """Assign the task to the named user, who must hold the task's role."""
        actor = current_actor()
        with unit_of_work():
            item = tasks.assign_work_item(work_item_id=task_id, assignee=args["assignee"], actor=actor)
        return task_flow.task_detail(item, actor=actor)


@blp.route("/<id:task_id>/complete")
class TaskComplete(MethodView):
    """Completing a task."""

    @blp.arguments(TaskCompleteSchema)
    @blp.response(200, CaseSchema)
    @blp.errors(400, 413, 415, e403="The task is for a role the acting user does not hold",
                e404="Unknown task", e409="The task is no longer ready or claimed by someone else",
                e422="The record form has errors (per field), or the process could not continue")
    def post(self, args: dict[str, Any], task_id: int) -> Any:
        """Submit the task's record form; the process runs on to its next wait."""
        with unit_of_work():
            case = task_flow.complete_work_item(work_item_id=task_id, actor=current_actor(), data=args["data"])
        return case
