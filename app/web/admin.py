"""Admin pages: timers and their jobs, and the simulated clock where the configuration allows it."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from app.auth import ROLE_NAMES, ROLES
from app.engine import parse_duration
from app.timers import service as timers
from app.timers import simulation
from app.uow import unit_of_work
from app.users import service as users
from app.web.common import current_actor, page_blueprint

bp = page_blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/timers")
def timers_page() -> str:
    """Waiting and failed timers, the queue's depth and its failed jobs with their error."""
    actor = current_actor()
    return render_template("admin/timers.html", timers=timers.pending_timers(actor=actor),
                           queue=timers.queue_status(actor=actor),
                           simulated=current_app.config["CLOCK"] == "simulated",
                           offset=simulation.clock_offset())


@bp.post("/timers/<id:timer_id>/retry")
def retry(timer_id: int) -> Response:
    """Put a failed timer back to waiting so it fires again."""
    with unit_of_work():
        timers.retry_timer(timer_id=timer_id, actor=current_actor())
    flash(f"Timer {timer_id} will fire again.", "success")
    return redirect(url_for("admin.timers_page"))


@bp.post("/clock")
def advance_clock() -> Response:
    """Move the simulated clock forward (development and testing only) and fire what became due."""
    text = request.form.get("by", "").strip()
    try:
        delta = parse_duration(text)
    except (ValueError, OverflowError) as exc:  # OverflowError: more days than a timedelta holds
        flash(str(exc) if isinstance(exc, ValueError) else f"{text!r} is far too long a duration", "error")
        return redirect(url_for("admin.timers_page"))
    # The clock moves in a transaction of its own and each due timer fires in its own (not one unit of work).
    moved_to, fired = simulation.advance_clock(by=delta, actor=current_actor())
    flash(f"The clock moved to {moved_to:%Y-%m-%d %H:%M} UTC; {len(fired)} timer(s) fired.", "success")
    return redirect(url_for("admin.timers_page"))


@bp.get("/users")
def users_page() -> str:
    """Users with their roles, state, last sign-in and tokens (admins and auditors)."""
    return render_template("admin/users.html", users=users.list_users(actor=current_actor()), roles=ROLES,
                           role_names=ROLE_NAMES)
