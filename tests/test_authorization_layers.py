"""Authorization lives in the services: every public service function takes the acting user and checks its
permission first, controllers never reach past them to the actor-free helpers, and nothing below the
controllers reads the request. Static checks over the source, so a new function or import that breaks the
rule fails here with its file and line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"

# The service modules whose public functions are called by controllers, jobs and the CLI.
SERVICE_MODULES = ("cases/service.py", "tasks/service.py", "audit/service.py", "timers/service.py",
                   "timers/simulation.py", "processes/service.py", "registry/service.py", "stock/service.py",
                   "readings/service.py", "flows/steps.py", "flows/tasks.py", "flows/timers.py", "flows/clock.py",
                   "flows/schedules.py", "flows/diagram.py")
# Helpers the services call for each other, under a lock or on behalf of an actor they already checked:
# they take no actor, so controllers (app/api, app/web) must not call them.
SERVICE_ONLY = {
    "cases/service.py": {"lock_case"},
    "tasks/service.py": {"validate_task_data", "lock_case_for_work_item", "check_ready", "check_can_work",
                         "completion_deadline", "form_definition"},
    "audit/service.py": {"record_event"},
    "timers/service.py": {"mark_failed", "sweep"},  # jobs, the worker, the CLI
    "timers/simulation.py": {"offset_reader", "movable_clock", "store_offset"},
    "processes/service.py": {"latest_version", "definition_of", "definition_for"},
    "registry/service.py": {"seed_demo_data"},  # the setup and demo commands
    "flows/steps.py": {"load_instance", "store_instance"},
    "flows/timers.py": {"fire_timer", "fire_or_fail"},  # jobs, the worker, the CLI
    "flows/clock.py": {"latest_recorded_moment", "fire_due_timers"},
    "flows/schedules.py": {"start_due_occurrences"},  # the sweep
}
# Public but with nothing to protect: the loaded record forms, a case-number prefix, the clock's offset
# (the time itself is on every page), today's date, checks of input that read nothing.
ACTOR_FREE = {"tasks/service.py": {"forms"}, "processes/service.py": {"case_prefix"},
              "timers/simulation.py": {"clock_offset"},
              "registry/service.py": {"department_today"},  # today's date in the department's zone
              "stock/service.py": {"case_region", "parse_lines"},
              "readings/service.py": {"rules", "check_day", "month_bounds"}}
CONTROLLER_DIRS = ("api", "web")
# Everything below the controllers: the domain services, the engine and the forms.
BOTTOM_DIRS = ("flows", "cases", "tasks", "timers", "processes", "registry", "stock", "readings", "audit", "users",
               "engine", "forms")


def _public_functions(module: str) -> Iterator[ast.FunctionDef]:
    tree = ast.parse((APP / module).read_text(), filename=module)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            yield node


def _first_statement(func: ast.FunctionDef) -> ast.stmt | None:
    body = func.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return body[0] if body else None


def _checks_actor_first(func: ast.FunctionDef) -> bool:
    """The first statement is ``require(actor, ...)`` (or a check helper called with the actor, kept in a
    variable or not)."""
    statement = _first_statement(func)
    call = statement.value if isinstance(statement, (ast.Expr, ast.Assign)) else None
    return (isinstance(call, ast.Call) and bool(call.args) and isinstance(call.args[0], ast.Name)
            and call.args[0].id == "actor")


@pytest.mark.parametrize("module", SERVICE_MODULES)
def test_every_public_service_function_takes_the_actor_and_checks_it_first(module: str) -> None:
    exempt = SERVICE_ONLY.get(module, set()) | ACTOR_FREE.get(module, set())
    problems = []
    for func in _public_functions(module):
        if func.name in exempt:
            continue
        if "actor" not in [arg.arg for arg in func.args.kwonlyargs]:
            problems.append(f"app/{module}:{func.lineno} {func.name}() takes no keyword-only 'actor'")
        elif not _checks_actor_first(func):
            problems.append(f"app/{module}:{func.lineno} {func.name}() does not call require(actor, ...) first")
    assert not problems, "\n".join(problems)


def test_the_exemptions_name_real_functions() -> None:
    """A renamed helper must not leave a stale exemption behind (it would exempt nothing, silently)."""
    for module, names in {**SERVICE_ONLY, **ACTOR_FREE}.items():
        defined = {func.name for func in _public_functions(module)}
        for name in names:
            assert name in defined, f"app/{module} has no function {name}() (exempted in this test)"


def _python_files(*dirs: str) -> Iterator[Path]:
    for name in dirs:
        yield from sorted((APP / name).rglob("*.py"))


def test_controllers_do_not_call_the_actor_free_service_helpers() -> None:
    forbidden = set().union(*SERVICE_ONLY.values())
    problems = []
    for path in _python_files(*CONTROLLER_DIRS):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            problems += [f"{path.relative_to(ROOT)}:{node.lineno} uses {name}, which checks no permission: call "
                         "the service function that takes the actor" for name in names if name in forbidden]
    assert not problems, "\n".join(problems)


def _request_reads(path: Path) -> Iterator[str]:
    """Where a module imports flask's request (or reaches it as flask.request)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in ("flask", "flask.globals"):
            for alias in node.names:
                if alias.name == "request":
                    yield f"{where}:{node.lineno} imports request from {node.module}"
        elif (isinstance(node, ast.Attribute) and node.attr == "request" and isinstance(node.value, ast.Name)
              and node.value.id == "flask"):
            yield f"{where}:{node.lineno} reads flask.request"


def test_nothing_below_the_controllers_reads_the_request() -> None:
    problems = [problem for path in _python_files(*BOTTOM_DIRS) for problem in _request_reads(path)]
    assert not problems, ("services, engine, forms and models get the actor passed on; they never read the "
                          "request:\n" + "\n".join(problems))


def test_the_request_check_finds_a_request_read(tmp_path: Path) -> None:
    """The check itself can fail: it finds every spelling of reading the request."""
    sample = tmp_path / "sample.py"
    sample.write_text("import flask\nfrom flask import current_app, request as rq\nfrom flask.globals import request\n"
                      "def f():\n    return flask.request\n")
    found = list(_request_reads(sample))
    assert [line.split(":")[1].split()[0] for line in found] == ["2", "3", "5"]
