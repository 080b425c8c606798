"""Command-line commands: ``flask --app wsgi processes deploy``, ``setup``, ``demo seed``, ``users ...``."""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate import upgrade
from sqlalchemy.exc import SQLAlchemyError

from app.auth import ROLES, SYSTEM, Actor
from app.engine import ProcessDefinitionError
from app.errors import ServiceError
from app.imports import CSV_MAX_BYTES, read_csv
from app.processes import service as processes
from app.registry import service as registry
from app.stock import service as stock
from app.uow import unit_of_work

processes_cli = AppGroup("processes", help="Deploy and list process versions.")
demo_cli = AppGroup("demo", help="Demo data for trying the system out.")


def _deployer(username: str) -> Actor:
    return Actor(username, frozenset({"admin"}))


def _database_refused(exc: SQLAlchemyError) -> click.ClickException:
    """The database refused what the deploy checks let through (or is unreachable): say so (the unit
    of work rolled it back)."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return click.ClickException(f"nothing deployed: the database refused the deployment: {reason}")


@processes_cli.command("deploy")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--by", "username", default="cli", show_default=True, help="Who is deploying (recorded).")
@click.option("--note", default="", help="A note recorded with every new version.")
def deploy_command(path: Path, username: str, note: str) -> None:
    """Deploy a .bpmn file, or every .bpmn file in a directory (all or nothing)."""
    try:
        with unit_of_work():
            results = processes.deploy_path(path, actor=_deployer(username), note=note)
    except (ProcessDefinitionError, ServiceError) as exc:
        raise click.ClickException(f"nothing deployed: {exc}") from None
    except SQLAlchemyError as exc:
        raise _database_refused(exc) from None
    for result in results:
        state = "deployed" if result.created else "unchanged"
        click.echo(f"{state:10} {result.version.label}  sha256 {result.version.sha256[:12]}  "
                   f"({result.version.filename})")


@processes_cli.command("list")
def list_command() -> None:
    """List the latest version of every deployed process."""
    for version in processes.list_processes(actor=SYSTEM):
        click.echo(f"{version.process_id:24} v{version.version:<4} {version.deployed_at:%Y-%m-%d %H:%M} "
                   f"{version.deployed_by:12} {version.name}")


def _load_demo() -> str:
    """Load the demo set; what it added, in words."""
    from app.flows.demo import load_demo_set

    with unit_of_work():
        report = load_demo_set()
    if not report.customers:
        return "registry not empty: no demo set added"
    return (f"added the demo set: {report.customers} customers, {report.equipment} pieces of equipment, "
            f"{report.warehouses} warehouses with spare parts, {report.readings} daily readings")


@demo_cli.command("seed")
def seed_command() -> None:
    """Add the demo set (regions, warehouses and parts, customers, equipment, readings) to an empty registry."""
    click.echo(_load_demo())


@click.command("setup")
@with_appcontext
@click.option("--demo/--no-demo", default=True, show_default=True, help="Seed demo customers and equipment.")
def setup_command(demo: bool) -> None:
    """Upgrade the database, deploy workflows/ and (by default) seed demo data; safe to run again."""
    upgrade()
    try:
        with unit_of_work():
            results = processes.deploy_path(Path(current_app.config["WORKFLOWS_DIR"]), actor=SYSTEM)
    except (ProcessDefinitionError, ServiceError) as exc:
        raise click.ClickException(f"nothing deployed: {exc}") from None
    except SQLAlchemyError as exc:
        raise _database_refused(exc) from None
    for result in results:
        click.echo(f"{'deployed' if result.created else 'unchanged':10} {result.version.label}")
    if demo:
        click.echo(_load_demo())
    if current_app.config["ENV_NAME"] == "development":
        _demo_users()


DEMO_PASSWORD_FILE = "demo_password"


def _demo_password() -> str:
    """This installation's demo-user password, generated once and kept in the instance folder (0600)."""
    path = Path(current_app.instance_path) / DEMO_PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    password = "demo-" + secrets.token_urlsafe(9)
    path.write_text(password + "\n")
    path.chmod(0o600)
    return password


def _demo_users() -> None:
    """Create the demo users (one per role, development only) and print their names and the password."""
    from app.users import service as users

    if current_app.config["ENV_NAME"] != "development":
        raise click.ClickException("demo users exist only in development (SERVICECASE_ENV=development)")
    password = _demo_password()
    try:
        with unit_of_work():
            demo = users.ensure_demo_users(password=password, actor=USERS_ADMIN)
    except (ServiceError, SQLAlchemyError) as exc:
        raise _refused(exc) from None
    width = max(len(user.username) for user in demo)
    click.echo("\nDemo users (development only), one per role; sign in at /sign-in with the password below:")
    for user in demo:
        click.echo(f"  {user.username:{width}}  {user.display_name:24} roles: {', '.join(user.role_names) or '-'}"
                   + ("  (DISABLED)" if user.disabled else ""))
    click.echo(f"  password for all of them: {password}")
    click.echo(f"  (kept in {Path(current_app.instance_path) / DEMO_PASSWORD_FILE}; a demo user whose password "
               "was changed keeps the new one)\n")


clock_cli = AppGroup("clock", help="The simulated clock (development and testing only).")
timers_cli = AppGroup("timers", help="Timers: list them, sweep, retry failed ones.")


@clock_cli.command("show")
def clock_show() -> None:
    """Print the system's time and how far it is ahead of the wall clock."""
    from app.engine import now
    from app.timers.simulation import clock_offset

    click.echo(f"now {now().isoformat(timespec='seconds')}  (ahead of the wall clock by {clock_offset()})")


@clock_cli.command("advance")
@click.argument("by")
@click.option("--no-fire", is_flag=True, help="Only move the clock; let the workers fire due timers.")
def clock_advance(by: str, no_fire: bool) -> None:
    """Move the simulated clock forward by BY (25h, 90m, 2d, 1d2h, PT25H) and fire what became due."""
    from app.engine import parse_duration
    from app.flows.clock import advance_clock

    try:
        delta = parse_duration(by)
        # Not one unit of work: the clock moves in a transaction of its own, then each due timer fires in
        # its own (app.timers.simulation).
        moved_to, fired = advance_clock(by=delta, actor=SYSTEM, fire=not no_fire)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="BY") from None
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"now {moved_to.isoformat(timespec='seconds')}; fired {len(fired)} timer(s)")


@clock_cli.command("reset")
def clock_reset() -> None:
    """Put the simulated clock back on the wall clock."""
    from app.flows.clock import reset_clock

    try:
        moved_to = reset_clock(actor=SYSTEM)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"now {moved_to.isoformat(timespec='seconds')}")


@timers_cli.command("list")
def timers_list() -> None:
    """List waiting and failed timers, soonest first."""
    from app.timers.service import pending_timers

    for timer in pending_timers(actor=SYSTEM):
        click.echo(f"{timer.id:>6} {timer.state:8} {timer.due_at:%Y-%m-%d %H:%M:%S} case {timer.case_id:<6} "
                   f"{timer.name}{'  ERROR: ' + (timer.last_error or '')[:80] if timer.state == 'failed' else ''}")


@timers_cli.command("sweep")
def timers_sweep() -> None:
    """Run one sweep now: re-arm lost timer jobs and start due recurring cases."""
    from app.worker import sweep_once

    report = sweep_once(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo("another worker is sweeping right now" if report is None else f"sweep: {report}")


@timers_cli.command("retry")
@click.argument("timer_id", type=int)
def timers_retry(timer_id: int) -> None:
    """Put a failed timer back to waiting so it fires again."""
    from app.timers.service import retry_timer

    try:
        with unit_of_work():
            timer = retry_timer(timer_id=timer_id, actor=_deployer("cli"))
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"timer {timer.id} is {timer.state}")


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queue is empty (tests, one-off catch-up).")
@click.option("--fork", is_flag=True, help="Run each job in a forked child (RQ's default Worker).")
@click.option("--no-sweep", is_flag=True, help="Do not run the sweep thread in this worker.")
@click.option("--name", default=None, help="Worker name (defaults to RQ's).")
@with_appcontext
def worker_command(burst: bool, fork: bool, no_sweep: bool, name: str | None) -> None:
    """Fire timers: an RQ worker with its scheduler on the timer queue, plus the sweep."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from app.worker import WorkerNameTaken, run_worker

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("REDIS_URL"):
        raise click.ClickException(app.config.get("REDIS_URL_PROBLEM")
                                   or "REDIS_URL is not set: the worker needs Redis")
    try:
        run_worker(app, burst=burst, fork=fork, sweep=not no_sweep, name=name)
    except WorkerNameTaken as exc:
        raise click.ClickException(str(exc)) from None
    except (RedisConnectionError, RedisTimeoutError) as exc:  # only at start: a running worker rides it out
        raise click.ClickException(f"cannot reach Redis at {app.config['REDIS_URL']}: {exc}") from None


users_cli = AppGroup("users", help="Users, their roles and API tokens.")
tokens_cli = AppGroup("tokens", help="API tokens: revoke them (list them with `users list`).")
users_cli.add_command(tokens_cli)
USERS_ADMIN = Actor("cli", frozenset({"admin"}))  # who the history of user changes names for these commands


def _refused(exc: ServiceError | SQLAlchemyError) -> click.ClickException:
    """A refused users command (its unit of work rolled back): say why (the exit status is 1)."""
    if isinstance(exc, SQLAlchemyError):  # e.g. a concurrent create of the same name, or no users table yet
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return click.ClickException(f"nothing changed: the database refused: {reason}")
    return click.ClickException(exc.message)


@users_cli.command("create")
@click.argument("name")
@click.option("--role", "roles", multiple=True, required=True, metavar="ROLE",
              help="A role the user holds (repeat for several): " + ", ".join(ROLES) + ".")
@click.option("--password", default=None, help="The password (prompted for, hidden and twice, when not given).")
@click.option("--display-name", default="", help="The user's full name, shown on pages.")
def users_create(name: str, roles: tuple[str, ...], password: str | None, display_name: str) -> None:
    """Create user NAME holding the given roles."""
    from app.users import service as users

    try:
        users.check_new_user(username=name, roles=roles)  # before asking for a password it would waste
        if password is None:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        with unit_of_work():
            user = users.create_user(username=name, password=password or "", roles=roles,
                                     display_name=display_name, actor=USERS_ADMIN)
    except (ServiceError, SQLAlchemyError) as exc:
        raise _refused(exc) from None
    click.echo(f"created user {user.username} with roles {', '.join(user.role_names)}")


@users_cli.command("token")
@click.argument("name")
def users_token(name: str) -> None:
    """Create an API token for user NAME; the token is the last line printed, and is shown only this once."""
    from app.users import service as users

    try:
        with unit_of_work():
            token, secret = users.create_token(username=name, actor=USERS_ADMIN)
    except (ServiceError, SQLAlchemyError) as exc:
        raise _refused(exc) from None
    click.echo(f"token {token.public_id} for {token.user.username}; it is shown only now, store it safely. "
               f"Send it as 'Authorization: Bearer <token>'; revoke it with `users tokens revoke {token.public_id}`.")
    click.echo(secret)


@users_cli.command("list")
def users_list() -> None:
    """List users: name, roles, disabled, and their tokens with last use."""
    from app.users import service as users

    def when(moment: datetime | None) -> str:
        return f"{moment:%Y-%m-%d %H:%M}" if moment else "never"

    found = users.list_users(actor=USERS_ADMIN)
    if not found:
        click.echo("no users")
    for user in found:
        state = "DISABLED" if user.disabled else "active"
        display = f" ({user.display_name})" if user.display_name else ""
        click.echo(f"{user.username}{display}  {state}  roles: {', '.join(user.role_names) or '-'}  "
                   f"last sign-in: {when(user.last_sign_in_at)}")
        for token in user.tokens:
            status = f"revoked {when(token.revoked_at)}" if token.revoked_at else "valid"
            click.echo(f"    token {token.public_id}  created {when(token.created_at)}  "
                       f"last used {when(token.last_used_at)}  {status}")


@users_cli.command("disable")
@click.argument("name")
def users_disable(name: str) -> None:
    """Disable user NAME: no sign-in, and none of their tokens is accepted."""
    from app.users import service as users

    try:
        with unit_of_work():
            user = users.disable_user(username=name, actor=USERS_ADMIN)
    except (ServiceError, SQLAlchemyError) as exc:
        raise _refused(exc) from None
    click.echo(f"disabled user {user.username}")


@tokens_cli.command("revoke")
@click.argument("token_id", metavar="ID")
def tokens_revoke(token_id: str) -> None:
    """Revoke the API token ID (as `users list` shows it)."""
    from app.users import service as users

    try:
        with unit_of_work():
            token = users.revoke_token(token_id=token_id, actor=USERS_ADMIN)
    except (ServiceError, SQLAlchemyError) as exc:
        raise _refused(exc) from None
    click.echo(f"revoked token {token.public_id} of {token.user.username}")


attachments_cli = AppGroup("attachments", help="The attachment folder: sweep files no attachment names.")


@attachments_cli.command("sweep")
@click.option("--older-than", "older_than", default="1h", show_default=True,
              help="Only remove files at least this old on disk (25h, 90m, 2d): younger ones may still commit.")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
def attachments_sweep(older_than: str, dry_run: bool) -> None:
    """Remove files left without an attachment row (a process killed between writing a file and committing
    it), and list attachments whose file is missing: exit status 1 if there are any."""
    from app.attachments.service import size_words, storage_dir, sweep_orphaned_files
    from app.engine import parse_duration

    try:
        threshold = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    with unit_of_work():
        report = sweep_orphaned_files(actor=Actor("cli", frozenset({"admin"})), older_than=threshold,
                                      dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path in report.removed:
        click.echo(f"{verb} {path}")
    click.echo(f"{verb} {len(report.removed)} file(s) without an attachment ({size_words(report.removed_bytes)}) "
               f"in {storage_dir()}; kept {report.kept_young} younger than {older_than}")
    for attachment in report.missing:
        click.echo(f"missing: attachment {attachment.id} of case {attachment.case_id} ({attachment.filename}) "
                   "has no file", err=True)
    if report.missing:
        raise click.exceptions.Exit(1)


registry_cli = AppGroup("registry", help="Customers, equipment and stock: CSV imports.")


@registry_cli.command("import")
@click.argument("kind", type=click.Choice(["customers", "equipment", "stock"]))
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--by", "username", default="cli", show_default=True, help="Who is importing (recorded).")
def registry_import_command(kind: str, path: Path, username: str) -> None:
    """Import customers, equipment or a stocktake from a UTF-8 CSV file: good rows are kept, each refused row
    is listed with its line and column (exit status 1 when any row was refused)."""
    imports = {"customers": (registry.CUSTOMER_COLUMNS, registry.CUSTOMER_REQUIRED, registry.import_customers),
               "equipment": (registry.EQUIPMENT_COLUMNS, registry.EQUIPMENT_REQUIRED, registry.import_equipment),
               "stock": (stock.STOCK_COLUMNS, stock.STOCK_REQUIRED, stock.import_stock)}
    columns, required, run = imports[kind]
    # The CLI acts as an admin (registry.manage and stock.manage), recorded under the --by name.
    actor = Actor(username, frozenset({"admin"}))
    try:
        with path.open("rb") as handle:
            rows = read_csv(handle.read(CSV_MAX_BYTES + 1), columns=columns, required=required)
        with unit_of_work():
            report = run(actor=actor, rows=rows)
    except ServiceError as exc:
        details = "; ".join(str(m) for messages in exc.errors.values() for m in
                            (messages if isinstance(messages, list) else [messages]))
        raise click.ClickException(f"nothing imported: {exc.message}" + (f": {details}" if details else "")) from None
    click.echo(f"{kind}: {report.created} created, {report.updated} updated, {report.unchanged} unchanged, "
               f"{report.refused_rows} rows refused")
    for error in report.errors:
        click.echo(f"line {error.row}" + (f", column {error.column}" if error.column else "") + f": {error.message}",
                   err=True)
    if report.errors:
        raise SystemExit(1)


documents_cli = AppGroup("documents", help="The documents folder: finish cut-off moves, sweep orphaned files.")


@documents_cli.command("sweep")
@click.option("--older-than", "older_than", default="1h", show_default=True,
              help="Only remove files at least this old on disk (25h, 90m, 2d): younger ones may still commit.")
@click.option("--dry-run", is_flag=True, help="Say what would be done; change nothing.")
def documents_sweep(older_than: str, dry_run: bool) -> None:
    """Move committed documents whose move into place was cut off, remove files no document names (a process
    killed before its commit), and list documents whose file is missing: exit status 1 if there are any."""
    from app.documents.service import storage_dir, sweep_orphaned_files
    from app.engine import parse_duration

    try:
        threshold = parse_duration(older_than)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--older-than") from None
    with unit_of_work():
        report = sweep_orphaned_files(actor=Actor("cli", frozenset({"admin"})), older_than=threshold,
                                      dry_run=dry_run)
    would = "would be " if dry_run else ""
    for path in report.completed:
        click.echo(f"{'would move' if dry_run else 'moved'} into place {path}")
    for path in report.removed:
        click.echo(f"{'would remove' if dry_run else 'removed'} {path}")
    click.echo(f"{len(report.completed)} document(s) {would}moved into place, {len(report.removed)} orphaned "
               f"file(s) {would}removed in {storage_dir()}; kept {report.kept_young} younger than {older_than}")
    for document in report.missing:
        click.echo(f"missing: document {document.id} of case {document.case_id} ({document.filename}) has no file",
                   err=True)
    if report.missing:
        raise click.exceptions.Exit(1)


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(processes_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(setup_command)
    app.cli.add_command(clock_cli)
    app.cli.add_command(timers_cli)
    app.cli.add_command(worker_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(attachments_cli)
    app.cli.add_command(registry_cli)


    app.cli.add_command(documents_cli)
