"""Command-line commands: ``flask --app wsgi processes deploy``, ``setup``, ``demo seed``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate import upgrade

from app.auth import SYSTEM, Actor
from app.engine import ProcessDefinitionError
from app.errors import ServiceError
from app.extensions import db
from app.processes import service as processes
from app.registry.service import seed_demo_data

processes_cli = AppGroup("processes", help="Deploy and list process versions.")
demo_cli = AppGroup("demo", help="Demo data for trying the system out.")


def _deployer(username: str) -> Actor:
    return Actor(username, frozenset({"admin"}))


@processes_cli.command("deploy")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--by", "username", default="cli", show_default=True, help="Who is deploying (recorded).")
@click.option("--note", default="", help="A note recorded with every new version.")
def deploy_command(path: Path, username: str, note: str) -> None:
    """Deploy a .bpmn file, or every .bpmn file in a directory (all or nothing)."""
    try:
        results = processes.deploy_path(path, actor=_deployer(username), note=note)
        db.session.commit()
    except (ProcessDefinitionError, ServiceError) as exc:
        db.session.rollback()
        raise click.ClickException(f"nothing deployed: {exc}") from None
    for result in results:
        state = "deployed" if result.created else "unchanged"
        click.echo(f"{state:10} {result.version.label}  sha256 {result.version.sha256[:12]}  "
                   f"({result.version.filename})")


@processes_cli.command("list")
def list_command() -> None:
    """List the latest version of every deployed process."""
    for version in processes.list_processes():
        click.echo(f"{version.process_id:24} v{version.version:<4} {version.deployed_at:%Y-%m-%d %H:%M} "
                   f"{version.deployed_by:12} {version.name}")


@demo_cli.command("seed")
def seed_command() -> None:
    """Add demo customers and equipment (only into an empty registry)."""
    added = seed_demo_data()
    db.session.commit()
    click.echo(f"added {added} demo customers" if added else "registry not empty: nothing added")


@click.command("setup")
@with_appcontext
@click.option("--demo/--no-demo", default=True, show_default=True, help="Seed demo customers and equipment.")
def setup_command(demo: bool) -> None:
    """Upgrade the database, deploy workflows/ and (by default) seed demo data; safe to run again."""
    upgrade()
    try:
        results = processes.deploy_path(Path(current_app.config["WORKFLOWS_DIR"]), actor=SYSTEM)
        db.session.commit()
    except (ProcessDefinitionError, ServiceError) as exc:
        db.session.rollback()
        raise click.ClickException(f"nothing deployed: {exc}") from None
    for result in results:
        click.echo(f"{'deployed' if result.created else 'unchanged':10} {result.version.label}")
    if demo:
        added = seed_demo_data()
        db.session.commit()
        if added:
            click.echo(f"added {added} demo customers")


def register_cli(app: Flask) -> None:
    """Attach the command groups to the app."""
    app.cli.add_command(processes_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(setup_command)
