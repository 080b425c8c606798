"""Admin pages: timers and their jobs, the simulated clock where the configuration allows it, and users with
their roles and API tokens."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext
from werkzeug.wrappers import Response

from app.auth import ROLE_NAMES, ROLES
from app.engine import parse_duration
from app.errors import ServiceError
from app.flows import clock as clock_flow
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
    flash(gettext("Timer %(id)s will fire again.", id=timer_id), "success")
    return redirect(url_for("admin.timers_page"))


@bp.post("/clock")
def advance_clock() -> Response:
    """Move the simulated clock forward (development and testing only) and fire what became due."""
    text = request.form.get("by", "").strip()
    try:
        delta = parse_duration(text)
    except (ValueError, OverflowError) as exc:  # OverflowError: more days than a timedelta holds
        flash(gettext("cannot read %(text)s as a duration; write e.g. 25h, 90m, 2d, 1d2h or PT25H", text=repr(text))
              if isinstance(exc, ValueError) else gettext("%(text)s is far too long a duration", text=repr(text)),
              "error")
        return redirect(url_for("admin.timers_page"))
    # The clock moves in a transaction of its own and each due timer fires in its own (not one unit of work).
    moved_to, fired = clock_flow.advance_clock(by=delta, actor=current_actor())
    flash(gettext("The clock moved to %(time)s UTC; %(count)s timer(s) fired.", time=f"{moved_to:%Y-%m-%d %H:%M}",
                  count=len(fired)), "success")
    return redirect(url_for("admin.timers_page"))


def _users_page(status: int = 200, *, problem: str = "", new_token: tuple[str, str] | None = None,
                values: dict[str, object] | None = None) -> tuple[str, int]:
    """The users page, with a refused change's ``problem`` or a just-issued token (shown only this once)."""
    body = render_template("admin/users.html", users=users.list_users(actor=current_actor()), roles=ROLES,
                           role_names=ROLE_NAMES, problem=problem, new_token=new_token, values=values or {},
                           can_manage=current_actor().can("users.manage"))
    return body, status


def _change(change: Callable[[], str], *, values: dict[str, object] | None = None) -> ResponseReturnValue:
    """Run one change to users in its own unit of work: a flash and back to the list, or the list again with
    the refusal (its status, e.g. 409 for a name taken, 422 for an unknown role)."""
    try:
        with unit_of_work():
            done = change()
    except ServiceError as exc:
        if exc.status in (401, 403):
            raise
        return _users_page(exc.status, problem=exc.message, values=values)
    flash(done, "success")
    return redirect(url_for("admin.users_page"), code=303)


def _form_username() -> str:
    name = request.form.get("username", "").strip()
    if not name:
        abort(400, description=gettext("The form did not say which user (the field 'username' is empty)."))
    return name


@bp.get("/users")
def users_page() -> ResponseReturnValue:
    """Users with their roles, state, last sign-in and tokens (admins and auditors; admins also change them)."""
    return _users_page()


@bp.post("/users")
def create_user() -> ResponseReturnValue:
    """Create a user with roles and a password."""
    values: dict[str, object] = {"username": request.form.get("username", ""),
                                 "display_name": request.form.get("display_name", ""),
                                 "roles": request.form.getlist("roles")}

    def change() -> str:
        user = users.create_user(username=str(values["username"]), password=request.form.get("password", ""),
                                 roles=request.form.getlist("roles"), display_name=str(values["display_name"]),
                                 actor=current_actor())
        return gettext("Created user %(user)s with roles %(roles)s.", user=user.username,
                       roles=", ".join(user.role_names) or gettext("none"))

    return _change(change, values=values)


@bp.post("/users/roles")
def set_roles() -> ResponseReturnValue:
    """Give a user exactly the roles ticked."""
    name = _form_username()

    def change() -> str:
        user = users.set_roles(username=name, roles=request.form.getlist("roles"), actor=current_actor())
        return gettext("%(user)s now holds: %(roles)s.", user=user.username,
                       roles=", ".join(user.role_names) or gettext("no roles"))

    return _change(change)


@bp.post("/users/disable")
def disable_user() -> ResponseReturnValue:
    """Disable a user: no sign-in, no token, and their sessions end."""
    name = _form_username()
    return _change(lambda: gettext("Disabled %(user)s.",
                                   user=users.disable_user(username=name, actor=current_actor()).username))


@bp.post("/users/tokens")
def issue_token() -> ResponseReturnValue:
    """Issue an API token for a user; the page shows it this once (it is not stored, only its hash)."""
    name = _form_username()
    try:
        with unit_of_work():
            token, secret = users.create_token(username=name, actor=current_actor())
            owner = token.user.username
    except ServiceError as exc:
        if exc.status in (401, 403):
            raise
        return _users_page(exc.status, problem=exc.message)
    return _users_page(new_token=(owner, secret))


@bp.post("/tokens/revoke")
def revoke_token() -> ResponseReturnValue:
    """Revoke an API token by its id."""
    token_id = request.form.get("token_id", "").strip()
    if not token_id:
        abort(400, description=gettext("The form did not say which token (the field 'token_id' is empty)."))
    return _change(lambda: gettext("Revoked token %(token)s.",
                                   token=users.revoke_token(token_id=token_id, actor=current_actor()).public_id))
