"""Admin endpoints: timers, failed jobs, and the simulated clock (development and testing only)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from marshmallow import fields, validate

from app.api.common import ApiBlueprint, current_actor
from app.api.schemas import StrictSchema, TimerSchema
from app.engine import now, parse_duration
from app.errors import InvalidDataError
from app.flows import clock as clock_flow
from app.timers import service as timers
from app.timers import simulation
from app.uow import unit_of_work

blp = ApiBlueprint("api_admin", __name__, url_prefix="/api/admin", description="Administration")


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


def _clock(fired: list[int] | None = None) -> dict[str, Any]:
    return {"now": now(), "simulated": current_app.config["CLOCK"] == "simulated",
            "offset_seconds": simulation.clock_offset().total_seconds(), "fired_timer_ids": fired or []}


@blp.route("/timers")
class Timers(MethodView):
    """Pending timers and the timer queue."""

    @blp.response(200, TimersOverviewSchema)
    @blp.errors(e403="The acting user may not read the timer queue (admins and auditors may)")
    def get(self) -> dict[str, Any]:
        """Waiting and failed timers, queue depth, and failed jobs with their error."""
        actor = current_actor()
        pending = timers.pending_timers(actor=actor)
        queue = timers.queue_status(actor=actor)
        return {"timers": pending, "queued": queue.queued, "scheduled": queue.scheduled,
                "started": queue.started, "failed": queue.failed, "failed_jobs": [
                    {**job, "ended_at": job["ended_at"].isoformat() if job["ended_at"] else None}
                    for job in queue.failed_jobs], "redis_error": queue.error}


@blp.route("/timers/<id:timer_id>/retry")
class TimerRetry(MethodView):
    """Retrying a failed timer."""

    @blp.response(200, AdminTimerSchema)
    @blp.errors(400, 413, 415, e403="The acting user may not retry timers (admins may)", e404="Unknown timer")
    def post(self, timer_id: int) -> Any:
        """Put a failed timer back to waiting so it fires again."""
        with unit_of_work():
            timer = timers.retry_timer(timer_id=timer_id, actor=current_actor())
        return timer


@blp.route("/clock")
class Clock(MethodView):
    """The system clock."""

    @blp.response(200, ClockSchema)
    @blp.errors()
    def get(self) -> dict[str, Any]:
        """The system time and, when simulated, how far it is ahead of the wall clock."""
        return _clock()


@blp.route("/clock/advance")
class ClockAdvance(MethodView):
    """Moving the simulated clock."""

    @blp.arguments(AdvanceSchema)
    @blp.response(200, ClockSchema)
    @blp.errors(400, 413, 415, e403="Not an admin, or the clock is not simulated (production)",
                e422="The duration cannot be read, is not positive or is more than ten years")
    def post(self, args: dict[str, Any]) -> dict[str, Any]:
        """Move the simulated clock forward and fire every timer that became due."""
        try:
            delta = parse_duration(args["by"])
        except (ValueError, OverflowError) as exc:  # OverflowError: more days than a timedelta holds
            message = str(exc) if isinstance(exc, ValueError) else f"{args['by']!r} is far too long a duration"
            raise InvalidDataError(message, errors={"by": [message]}) from None
        # Not one unit of work: the clock moves in a transaction of its own, then each due timer fires in
        # its own (app.timers.simulation), so one failing firing does not undo the others.
        _, fired = clock_flow.advance_clock(by=delta, actor=current_actor())
        return _clock(fired)
