"""Admin endpoints: timers, failed jobs, and the simulated clock (development and testing only)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields, validate

from app.api.common import current_actor
from app.api.schemas import StrictSchema, TimerSchema
from app.engine import now, parse_duration
from app.errors import InvalidDataError, PermissionDeniedError
from app.extensions import db
from app.timers import service as timers
from app.timers import simulation

blp = Blueprint("api_admin", __name__, url_prefix="/api/admin", description="Administration")


class AdminTimerSchema(TimerSchema):
    """A timer as admins see it."""

    case_id = fields.Integer()
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)


class TimersOverviewSchema(StrictSchema):
    """Timers, queue depth and failed jobs."""

    timers = fields.List(fields.Nested(AdminTimerSchema))
    queued = fields.Integer()
    scheduled = fields.Integer()
    started = fields.Integer()
    failed = fields.Integer()
    failed_jobs = fields.List(fields.Dict())
    redis_error = fields.String(allow_none=True)


class ClockSchema(StrictSchema):
    """The system clock."""

    now = fields.AwareDateTime()
    simulated = fields.Boolean()
    offset_seconds = fields.Float()
    fired_timer_ids = fields.List(fields.Integer())


class AdvanceSchema(StrictSchema):
    """How far to move the simulated clock."""

    by = fields.String(required=True, validate=validate.Length(1, 20),
                       metadata={"description": "25h, 90m, 2d, 1d2h or an ISO-8601 duration (PT25H)"})


def _require_admin() -> None:
    if not current_actor().has_role("admin"):
        raise PermissionDeniedError("admins only")


def _clock(fired: list[int] | None = None) -> dict[str, Any]:
    return {"now": now(), "simulated": current_app.config["CLOCK"] == "simulated",
            "offset_seconds": simulation.clock_offset().total_seconds(), "fired_timer_ids": fired or []}


@blp.route("/timers")
class Timers(MethodView):
    """Pending timers and the timer queue."""

    @blp.response(200, TimersOverviewSchema)
    def get(self) -> dict[str, Any]:
        """Waiting and failed timers, queue depth, and failed jobs with their error."""
        _require_admin()
        queue = timers.queue_status()
        return {"timers": timers.pending_timers(), "queued": queue.queued, "scheduled": queue.scheduled,
                "started": queue.started, "failed": queue.failed, "failed_jobs": [
                    {**job, "ended_at": job["ended_at"].isoformat() if job["ended_at"] else None}
                    for job in queue.failed_jobs], "redis_error": queue.error}


@blp.route("/timers/<int:timer_id>/retry")
class TimerRetry(MethodView):
    """Retrying a failed timer."""

    @blp.response(200, AdminTimerSchema)
    def post(self, timer_id: int) -> Any:
        """Put a failed timer back to waiting so it fires again."""
        timer = timers.retry_timer(timer_id=timer_id, actor=current_actor())
        db.session.commit()
        return timer


@blp.route("/clock")
class Clock(MethodView):
    """The system clock."""

    @blp.response(200, ClockSchema)
    def get(self) -> dict[str, Any]:
        """The system time and, when simulated, how far it is ahead of the wall clock."""
        return _clock()


@blp.route("/clock/advance")
class ClockAdvance(MethodView):
    """Moving the simulated clock."""

    @blp.arguments(AdvanceSchema)
    @blp.response(200, ClockSchema)
    @blp.alt_response(403, description="Not an admin, or the clock is not simulated (production)")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Move the simulated clock forward and fire every timer that became due."""
        try:
            delta = parse_duration(args["by"])
        except ValueError as exc:
            raise InvalidDataError(str(exc), errors={"by": [str(exc)]}) from None
        _, fired = simulation.advance_clock(by=delta, actor=current_actor())
        db.session.commit()
        return _clock(fired)
