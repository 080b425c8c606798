"""Deploying BPMN through ``flask processes deploy``: versions, all or nothing, and the refusals."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskClient
from rq import SimpleWorker
from sqlalchemy import func, select

from app.audit.models import CaseEvent
from app.auth import SYSTEM
from app.cases.models import Case
from app.extensions import db, redis_connection, timer_queue
from app.flows.steps import open_case
from app.flows.tasks import complete_work_item
from app.processes.models import ProcessVersion
from app.tasks.models import WorkItem
from app.tasks.service import list_work_items
from app.timers.models import Timer
from app.timers.scheduling import enqueue_fire_job
from tests.support import staff_actor

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
FAULT = WORKFLOWS / "fault_handling.bpmn"
ONE_TASK = ROOT / "tests" / "data" / "one_task.bpmn"
RUNTIME_FAILURE = ROOT / "tests" / "data" / "runtime_failure.bpmn"
DIAGNOSIS_DEADLINE = "add_duration(reported_at, 'PT24H')"
DIAGNOSIS = {"diagnosis": "Fuse", "fault_class": "common", "removal_target_hours": 48, "cause": "quality",
             "support_mode": "remote", "parts_needed": False, "parts_requested": []}


def deploy(app: Flask, path: Path, *extra: str) -> Result:
    """Run ``flask processes deploy PATH``."""
    return app.test_cli_runner().invoke(args=["processes", "deploy", str(path), *extra])


def versions(process_id: str | None = None) -> list[ProcessVersion]:
    """Every stored version (of one process), oldest first, read fresh."""
    db.session.rollback()
    query = select(ProcessVersion).order_by(ProcessVersion.process_id, ProcessVersion.version)
    if process_id:
        query = query.where(ProcessVersion.process_id == process_id)
    return list(db.session.scalars(query))


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first occurrence of ``needle``."""
    index = text.index(needle)
    return text.count("\n", 0, index) + 1


def tag_lines(text: str, needle: str) -> set[int]:
    """The lines a start tag beginning with ``needle`` spans (parsers report either end)."""
    start = text.index(needle)
    return set(range(line_of(text, needle), text.count("\n", 0, text.index(">", start)) + 2))


def copy_fault(folder: Path) -> None:
    """Put workflows/fault_handling.bpmn and the decision tables it calls into ``folder``."""
    for path in (FAULT, *WORKFLOWS.glob("*.dmn")):
        shutil.copy(path, folder / path.name)


def revised(tmp_path: Path, *, old: str = DIAGNOSIS_DEADLINE,
            new: str = "add_duration(reported_at, 'PT36H')") -> Path:
    """A directory holding a changed fault_handling.bpmn (diagnosis deadline 36 h instead of 24 h)."""
    source = FAULT.read_text()
    assert source.count(old) == 1
    folder = tmp_path / "revised"
    folder.mkdir()
    (folder / "fault_handling.bpmn").write_text(source.replace(old, new))
    for table in WORKFLOWS.glob("*.dmn"):  # the decision tables it calls
        shutil.copy(table, folder / table.name)
    return folder


# -- versions ------------------------------------------------------------------------------------------
def test_first_deploy_creates_v1_and_the_second_changes_nothing(ctx: Flask) -> None:
    files = sorted(WORKFLOWS.glob("*.bpmn"))
    first = deploy(ctx, WORKFLOWS)
    assert first.exit_code == 0, first.output
    for path in files:
        assert re.search(rf"^deployed\s+{path.stem} v1\b.*\({re.escape(path.name)}\)$", first.output, re.M)
    stored = versions()
    assert [(v.process_id, v.version, v.previous_id) for v in stored] == [(p.stem, 1, None) for p in files]
    assert stored[0].bpmn_source == files[0].read_text()

    again = deploy(ctx, WORKFLOWS)
    assert again.exit_code == 0, again.output
    for path in files:
        assert re.search(rf"^unchanged\s+{path.stem} v1\b", again.output, re.M)
    assert "deployed" not in again.output
    assert [(v.id, v.sha256) for v in versions()] == [(v.id, v.sha256) for v in stored]


def test_changed_content_becomes_v2_following_v1(ctx: Flask, tmp_path: Path, client: FlaskClient) -> None:
    assert deploy(ctx, FAULT).exit_code == 0
    result = deploy(ctx, revised(tmp_path), "--by", "pat", "--note", "36 h diagnosis")
    assert result.exit_code == 0, result.output
    assert re.search(r"^deployed\s+fault_handling v2\b", result.output, re.M)
    v1, v2 = versions("fault_handling")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.previous_id == v1.id
    assert v2.sha256 != v1.sha256
    assert (v2.deployed_by, v2.note) == ("pat", "36 h diagnosis")
    listed = client.get("/api/processes/fault_handling/versions").get_json()
    assert [v["version"] for v in listed] == [2, 1]


def test_a_single_file_deploys_on_its_own(ctx: Flask) -> None:
    result = deploy(ctx, ONE_TASK)
    assert result.exit_code == 0, result.output
    assert [(v.process_id, v.version) for v in versions()] == [("one_task", 1)]


# -- refusals ------------------------------------------------------------------------------------------
def _without_form_key(text: str) -> str:
    return text.replace(' camunda:formKey="escalation_review"', "")


def _unclosed_tag(text: str) -> str:
    return text.replace("  </bpmn:process>", '    <bpmn:task id="dangling">\n  </bpmn:process>')


def _import_in_timer(text: str) -> str:
    return text.replace("add_duration(reported_at, 'PT24H')", "__import__('os').system('id')")


def _foreign_root(text: str) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>\n<html><body>not a process</body></html>\n'


BROKEN = {
    # name: (file name, change to one_task.bpmn, expected in the message, expected element, line finder)
    "malformed XML": ("one_task.bpmn", _unclosed_tag, "not well-formed XML", None,
                      lambda text: {line_of(text, "</bpmn:process>")}),
    "user task without formKey": ("one_task.bpmn", _without_form_key, "formKey", "answer",
                                  lambda text: tag_lines(text, '<bpmn:userTask id="answer"')),
    "__import__ in an expression": ("one_task.bpmn", _import_in_timer, "__import__", "answer_deadline",
                                    lambda text: {line_of(text, "__import__")}),
    "process id differs from file name": ("other_name.bpmn", lambda text: text,
                                          "must equal the file name", "one_task", None),
    "empty file": ("one_task.bpmn", lambda text: "", "empty", None, None),
    "blank file": ("one_task.bpmn", lambda text: "  \n\n ", "empty", None, None),
    "not BPMN": ("one_task.bpmn", _foreign_root, "not bpmn:definitions", None, lambda text: {2}),
}


def _expect_refused(result: Result, filename: str, message: str, element: str | None,
                    lines: set[int] | None) -> None:
    assert result.exit_code != 0
    assert "nothing deployed" in result.output
    assert filename in result.output and message in result.output, result.output
    if element:
        assert f"(element '{element}')" in result.output, result.output
    if lines:
        found = re.search(rf"{re.escape(filename)}:(\d+)", result.output)
        assert found and int(found.group(1)) in lines, (result.output, lines)


@pytest.mark.parametrize("filename,change,message,element,find_line", BROKEN.values(), ids=list(BROKEN))
def test_one_broken_file_deploys_nothing(ctx: Flask, tmp_path: Path, filename: str, change: Any, message: str,
                                         element: str | None, find_line: Any) -> None:
    copy_fault(tmp_path)  # a valid file next to the broken one
    text = change(ONE_TASK.read_text())
    (tmp_path / filename).write_text(text)
    result = deploy(ctx, tmp_path)
    _expect_refused(result, filename, message, element, find_line(text) if find_line else None)
    assert versions() == []


def test_a_broken_file_keeps_a_changed_valid_file_from_deploying(ctx: Flask, tmp_path: Path) -> None:
    assert deploy(ctx, FAULT).exit_code == 0
    folder = revised(tmp_path)
    (folder / "one_task.bpmn").write_text(_without_form_key(ONE_TASK.read_text()))
    result = deploy(ctx, folder)
    _expect_refused(result, "one_task.bpmn", "formKey", "answer", None)
    assert [(v.process_id, v.version) for v in versions()] == [("fault_handling", 1)]


def test_an_import_in_a_gateway_condition_is_refused_naming_the_flow(ctx: Flask, tmp_path: Path) -> None:
    text = RUNTIME_FAILURE.read_text().replace("d['missing'] == 1", "__import__('os').getcwd() == ''")
    (tmp_path / RUNTIME_FAILURE.name).write_text(text)
    result = deploy(ctx, tmp_path / RUNTIME_FAILURE.name)
    _expect_refused(result, RUNTIME_FAILURE.name, "not allowed", "to_end_missing", {line_of(text, "__import__")})
    assert versions() == []


@pytest.mark.parametrize("name", ["missing_dir", "missing.bpmn"])
def test_a_path_that_does_not_exist_is_refused(ctx: Flask, tmp_path: Path, name: str) -> None:
    result = deploy(ctx, tmp_path / name)
    assert result.exit_code != 0 and "no such file" in result.output


def test_a_directory_without_bpmn_files_is_refused(ctx: Flask, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no processes here")
    result = deploy(ctx, tmp_path)
    assert result.exit_code != 0 and "no .bpmn files" in result.output


def test_two_files_with_the_same_process_id_are_refused(ctx: Flask, tmp_path: Path) -> None:
    shutil.copy(ONE_TASK, tmp_path / "one_task.bpmn")
    shutil.copy(ONE_TASK, tmp_path / "one_task_copy.bpmn")
    result = deploy(ctx, tmp_path)
    assert result.exit_code != 0 and "nothing deployed" in result.output
    assert versions() == []


# -- running cases keep their version ------------------------------------------------------------------
def test_a_case_stays_pinned_to_its_version_after_a_new_one(ctx: Flask, tmp_path: Path, clock: Any) -> None:
    staff = staff_actor("alice")
    assert deploy(ctx, FAULT).exit_code == 0
    reported_at = clock.now() - timedelta(hours=1)
    old = open_case(actor=staff, process_id="fault_handling", reported_at=reported_at, channel="phone",
                    description="UPS alarm")
    db.session.commit()
    old_id, v1_id = old.id, old.process_version_id

    assert deploy(ctx, revised(tmp_path)).exit_code == 0
    v1, v2 = versions("fault_handling")
    assert v1.id == v1_id
    new = open_case(actor=staff, process_id="fault_handling", reported_at=reported_at, channel="phone",
                    description="Another alarm")
    db.session.commit()
    assert new.process_version_id == v2.id

    def diagnosis_due(case_id: int) -> Any:
        (item,), _ = list_work_items(actor=SYSTEM, case_id=case_id)
        return item, item.due_at - reported_at

    old_item, old_window = diagnosis_due(old_id)
    _, new_window = diagnosis_due(new.id)
    assert (old_window, new_window) == (timedelta(hours=24), timedelta(hours=36))

    complete_work_item(work_item_id=old_item.id, actor=staff, data=DIAGNOSIS)
    db.session.commit()
    db.session.expire_all()
    case = db.session.get(Case, old_id)
    assert case.process_version_id == v1.id
    assert case.process_version.version == 1
    (next_item,), _ = list_work_items(actor=SYSTEM, case_id=old_id)
    assert next_item.task_spec == "quote_maintenance_cost"  # no equipment, so no warranty: a quote


# -- what deploys must run: values that would not fit their columns ------------------------------------
def _limit(column: Any) -> int:
    return int(column.type.length)


TASK_NAME = _limit(WorkItem.__table__.c.name)
TASK_ID = _limit(WorkItem.__table__.c.task_spec)
ROLE = _limit(WorkItem.__table__.c.role)
FORM_KEY = _limit(WorkItem.__table__.c.form_key)
TIMER_NAME = _limit(Timer.__table__.c.name)
TIMER_ID = _limit(Timer.__table__.c.task_spec)
PROCESS_ID = _limit(ProcessVersion.__table__.c.process_id)
PROCESS_NAME = _limit(ProcessVersion.__table__.c.name)


def _swap(old: str, new: str) -> Any:
    def change(text: str) -> str:
        assert old in text
        return text.replace(old, new)
    return change


def _lane_role(role: str) -> Any:
    def change(text: str) -> str:
        text = text.replace(' camunda:candidateGroups="agent"', "")
        return text.replace('<bpmn:startEvent id="start" name="Start"/>',
                            f'<bpmn:laneSet id="lanes"><bpmn:lane id="lane_{role}" name="Somebody">'
                            "<bpmn:flowNodeRef>answer</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>\n"
                            '    <bpmn:startEvent id="start" name="Start"/>')
    return change


def _timer_value(tag: str, value: str) -> Any:
    return _swap("<bpmn:timeDate>add_duration(reported_at, 'PT24H')</bpmn:timeDate>",
                 f"<bpmn:{tag}>{value}</bpmn:{tag}>")


LONG = {
    # name: (change to one_task.bpmn, message part, element, start tag of the element)
    "task name": (_swap('name="Answer the question"', f'name="{"n" * (TASK_NAME + 1)}"'),
                  f"at most {TASK_NAME}", "answer", '<bpmn:userTask id="answer"'),
    "timer name": (_swap('name="Answer within 24 h"', f'name="{"n" * (TIMER_NAME + 1)}"'),
                   f"at most {TIMER_NAME}", "answer_deadline", '<bpmn:boundaryEvent id="answer_deadline"'),
    "role": (_swap('camunda:candidateGroups="agent"', f'camunda:candidateGroups="{"r" * (ROLE + 1)}"'),
             f"at most {ROLE}", "answer", '<bpmn:userTask id="answer"'),
    "role from a lane": (_lane_role("r" * (ROLE + 1)), f"at most {ROLE}", "answer", '<bpmn:userTask id="answer"'),
    "task id": (_swap('"answer"', f'"{"a" * (TASK_ID + 1)}"'), f"at most {TASK_ID}", "a" * (TASK_ID + 1),
                f'<bpmn:userTask id="{"a" * (TASK_ID + 1)}"'),
    "timer id": (_swap('"answer_deadline"', f'"{"t" * (TIMER_ID + 1)}"'), f"at most {TIMER_ID}",
                 "t" * (TIMER_ID + 1), f'<bpmn:boundaryEvent id="{"t" * (TIMER_ID + 1)}"'),
    "formKey": (_swap('camunda:formKey="escalation_review"', f'camunda:formKey="{"f" * (FORM_KEY + 1)}"'),
                f"at most {FORM_KEY}", "answer", '<bpmn:userTask id="answer"'),
    "process name": (_swap('name="One task"', f'name="{"p" * 300}"'), f"at most {PROCESS_NAME}", "one_task",
                     '<bpmn:process id="one_task"'),
    "a group that is no role": (_swap('camunda:candidateGroups="agent"', 'camunda:candidateGroups="agent, wizard"'),
                                "the role 'wizard' (from camunda:candidateGroups or the task's lane) is not a role",
                                "answer", '<bpmn:userTask id="answer"'),
    "a lane that is no role": (_lane_role("hotline"), "the role 'hotline'", "answer", '<bpmn:userTask id="answer"'),
    "formKey of no form": (_swap('camunda:formKey="escalation_review"', 'camunda:formKey="no_such_form"'),
                           "names no record form", "answer", '<bpmn:userTask id="answer"'),
    **{f"constant {tag} {value}": (_timer_value(tag, value), "is not usable", "answer_deadline", f"<bpmn:{tag}>")
       for tag in ("timeDate", "timeDuration", "timeCycle") for value in ("'not a date'", "'P99999999D'", "1e308")},
    "import os in a script": (
        _swap('<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>',
              '<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prep"/>\n'
              '    <bpmn:scriptTask id="prep" scriptFormat="python"><bpmn:script>x = 1\n'
              "import os</bpmn:script></bpmn:scriptTask>\n"
              '    <bpmn:sequenceFlow id="f0" sourceRef="prep" targetRef="answer"/>'),
        "import of 'os' is not allowed", "prep", "import os"),
}


@pytest.mark.parametrize("change,message,element,tag", LONG.values(), ids=list(LONG))
def test_a_value_no_case_could_use_is_refused_at_deploy(ctx: Flask, tmp_path: Path, change: Any, message: str,
                                                        element: str, tag: str) -> None:
    copy_fault(tmp_path)  # a valid file next to it deploys neither
    text = change(ONE_TASK.read_text())
    (tmp_path / ONE_TASK.name).write_text(text)
    assert versions() == []
    result = deploy(ctx, tmp_path)
    _expect_refused(result, ONE_TASK.name, message, element, tag_lines(text, tag))
    assert "Traceback" not in result.output
    assert versions() == []


def test_a_process_id_longer_than_its_column_is_refused(ctx: Flask, tmp_path: Path) -> None:
    long_id = "p" * (PROCESS_ID + 50)
    text = ONE_TASK.read_text().replace('"one_task"', f'"{long_id}"')
    path = tmp_path / f"{long_id}.bpmn"
    path.write_text(text)
    result = deploy(ctx, path)
    _expect_refused(result, path.name, f"at most {PROCESS_ID}", long_id,
                    tag_lines(text, f'<bpmn:process id="{long_id}"'))
    assert versions() == []


def test_values_exactly_at_their_limits_deploy_and_a_case_runs_on_them(ctx: Flask, tmp_path: Path,
                                                                       clock: Any) -> None:
    # The limits are the columns' own: at the limit the row stores (PostgreSQL would refuse one more).
    # A role is one of the system's (a longer one is refused as too long, any other as no role at all).
    task_id, timer_id, role = "a" * TASK_ID, "t" * TIMER_ID, "regional_engineer"
    text = (ONE_TASK.read_text().replace('"answer_deadline"', f'"{timer_id}"').replace('"answer"', f'"{task_id}"')
            .replace('name="Answer the question"', f'name="{"n" * TASK_NAME}"')
            .replace('name="Answer within 24 h"', f'name="{"m" * TIMER_NAME}"')
            .replace('name="One task"', f'name="{"p" * PROCESS_NAME}"')
            .replace('camunda:candidateGroups="agent"', f'camunda:candidateGroups="{role}"'))
    (tmp_path / ONE_TASK.name).write_text(text)
    result = deploy(ctx, tmp_path / ONE_TASK.name)
    assert result.exit_code == 0, result.output
    case = open_case(actor=staff_actor("alice"), process_id="one_task", reported_at=clock.now(), channel="phone",
                     description="at the limits")
    db.session.commit()
    (item,), _ = list_work_items(actor=SYSTEM, case_id=case.id)
    assert (item.task_spec, item.name, item.role) == (task_id, "n" * TASK_NAME, role)
    timer = db.session.scalars(select(Timer).where(Timer.case_id == case.id)).one()
    assert (timer.task_spec, timer.name) == (timer_id, "m" * TIMER_NAME)
    assert versions()[0].name == "p" * PROCESS_NAME


@pytest.mark.parametrize("cycle,message", [
    # A cycle SpiffWorkflow reads, but a schedule needs a start date: refused by the schedule reader.
    ("'R3/PT1H'", "must have three parts"),
    # Reads as a cycle, but no calendar can compute it.
    ("'R/2026-01-01T00:00:00+00:00/P99999999999Y'", "cannot be scheduled"),
])
def test_a_timer_start_cycle_the_schedule_cannot_use_is_refused_with_its_line(ctx: Flask, tmp_path: Path,
                                                                               cycle: str, message: str) -> None:
    text = ONE_TASK.read_text().replace(
        '<bpmn:startEvent id="start" name="Start"/>',
        '<bpmn:startEvent id="start" name="Hourly">\n      <bpmn:timerEventDefinition id="hourly">'
        f"<bpmn:timeCycle>{cycle}</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:startEvent>")
    (tmp_path / ONE_TASK.name).write_text(text)
    result = deploy(ctx, tmp_path / ONE_TASK.name)
    _expect_refused(result, ONE_TASK.name, message, "start", tag_lines(text, '<bpmn:startEvent id="start"'))
    assert "Traceback" not in result.output and result.exception is not None
    assert isinstance(result.exception, SystemExit)
    assert versions() == []


# -- encodings --------------------------------------------------------------------------------------
GERMAN = "Frage beantworten – Größe, Maß, Ärger"


@pytest.mark.parametrize("declared,codec", [("UTF-16", "utf-16"), ("ISO-8859-1", "latin-1")])
def test_a_file_in_utf_16_or_latin_1_deploys_by_its_declaration_and_a_case_runs(
        ctx: Flask, tmp_path: Path, clock: Any, declared: str, codec: str) -> None:
    name = GERMAN if codec == "utf-16" else GERMAN.replace("–", "-")  # Latin-1 has no en dash
    text = (ONE_TASK.read_text().replace('encoding="UTF-8"', f'encoding="{declared}"')
            .replace('name="Answer the question"', f'name="{name}"'))
    source = text.encode(codec)
    (tmp_path / ONE_TASK.name).write_bytes(source)
    result = deploy(ctx, tmp_path / ONE_TASK.name)
    assert result.exit_code == 0, result.output
    (version,) = versions()
    assert version.bpmn_source == text  # correct text, declaration kept
    assert version.sha256 == hashlib.sha256(source).hexdigest()  # of the bytes as deployed
    case = open_case(actor=staff_actor("alice"), process_id="one_task", reported_at=clock.now(), channel="phone",
                     description="encoded")
    db.session.commit()
    (item,), _ = list_work_items(actor=SYSTEM, case_id=case.id)
    assert item.name == name


def test_latin_1_bytes_under_a_utf_8_declaration_are_refused_with_the_line(ctx: Flask, tmp_path: Path) -> None:
    text = ONE_TASK.read_text().replace('name="Answer the question"', 'name="Größe"')
    (tmp_path / ONE_TASK.name).write_bytes(text.encode("latin-1"))
    result = deploy(ctx, tmp_path / ONE_TASK.name)
    _expect_refused(result, ONE_TASK.name, "read as UTF-8", None, {line_of(text, "Größe")})
    assert "Traceback" not in result.output and versions() == []


# -- the command line -------------------------------------------------------------------------------
def test_a_note_or_deployer_longer_than_its_column_is_refused(ctx: Flask) -> None:
    note_limit = _limit(ProcessVersion.__table__.c.note)
    by_limit = _limit(ProcessVersion.__table__.c.deployed_by)
    result = deploy(ctx, ONE_TASK, "--note", "n" * (note_limit + 1))
    assert result.exit_code != 0 and f"at most {note_limit}" in result.output and "note" in result.output
    result = deploy(ctx, ONE_TASK, "--by", "b" * (by_limit + 1))
    assert result.exit_code != 0 and f"at most {by_limit}" in result.output
    assert versions() == []


def test_an_unreadable_bpmn_path_is_refused_without_a_traceback(ctx: Flask, tmp_path: Path) -> None:
    (tmp_path / "folder.bpmn").mkdir()  # matched by *.bpmn, but a directory
    shutil.copy(ONE_TASK, tmp_path / ONE_TASK.name)
    result = deploy(ctx, tmp_path)
    assert result.exit_code != 0 and "folder.bpmn" in result.output and "cannot be read" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert versions() == []


def test_setup_refuses_a_bad_workflows_directory_cleanly(ctx: Flask, tmp_path: Path) -> None:
    text = _timer_value("timeDuration", "'P99999999D'")(ONE_TASK.read_text())
    (tmp_path / ONE_TASK.name).write_text(text)
    ctx.config["WORKFLOWS_DIR"] = str(tmp_path)
    try:
        result = ctx.test_cli_runner().invoke(args=["setup", "--no-demo"])
    finally:
        ctx.config["WORKFLOWS_DIR"] = str(WORKFLOWS)
    _expect_refused(result, ONE_TASK.name, "longer than 10 years", "answer_deadline",
                    tag_lines(text, "<bpmn:timeDuration>"))
    assert versions() == []


def test_the_real_command_refuses_a_bad_file_with_a_message_and_no_traceback(
        app: Flask, database_url: str, tmp_path: Path) -> None:
    text = _timer_value("timeDate", "'not a date'")(ONE_TASK.read_text())
    path = tmp_path / ONE_TASK.name
    path.write_text(text)
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": app.config["REDIS_URL"],
           "SERVICECASE_ENV": "testing", "SERVICECASE_INSTANCE": str(tmp_path / "instance")}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "processes", "deploy", str(path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "Traceback" not in output
    assert f"{path}:{line_of(text, 'not a date')} (element 'answer_deadline')" in output, output
    assert "nothing deployed" in output
    with app.app_context():
        assert versions() == []


# -- values only a running case knows: a clean 422 or a failed timer, never a 500 ---------------------
TIMER_FROM_DATA = ROOT / "tests" / "data" / "deploy_timer_from_data.bpmn"
REVIEW = {"escalation_action": "expedited", "escalation_note": "Called the engineer"}


def _rows(model: Any) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def _open_with(clock: Any, **data: Any) -> int:
    case = open_case(actor=staff_actor("alice"), process_id="deploy_timer_from_data",
                     reported_at=clock.now() - timedelta(hours=1), channel="phone", description="timers from data",
                     data=data)
    db.session.commit()
    return case.id


@pytest.mark.parametrize("description", ["not a date", "P99999999D", "9999-12-31T23:00:00-05:00"])
def test_opening_a_case_whose_timer_value_is_unusable_answers_422_and_saves_nothing(
        ctx: Flask, tmp_path: Path, clock: Any, description: str, client: FlaskClient) -> None:
    # The first deadline is the case's description here: whatever the caller typed reaches the timer.
    text = TIMER_FROM_DATA.read_text().replace("<bpmn:timeDate>first_deadline</bpmn:timeDate>",
                                               "<bpmn:timeDate>description</bpmn:timeDate>")
    (tmp_path / TIMER_FROM_DATA.name).write_text(text)
    assert deploy(ctx, tmp_path / TIMER_FROM_DATA.name).exit_code == 0
    response = client.post("/api/cases", json={
        "process": "deploy_timer_from_data", "reported_at": (clock.now() - timedelta(hours=1)).isoformat(),
        "channel": "phone", "description": description})
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert "first_deadline_event" in body["message"] and "not a usable" in body["message"]
    assert (_rows(Case), _rows(WorkItem), _rows(Timer), _rows(CaseEvent)) == (0, 0, 0, 0)


def test_completing_a_task_whose_next_timer_value_is_unusable_answers_422_and_saves_nothing(
        ctx: Flask, clock: Any, client: FlaskClient) -> None:
    assert deploy(ctx, TIMER_FROM_DATA).exit_code == 0
    case_id = _open_with(clock, first_deadline=(clock.now() + timedelta(hours=1)).isoformat(),
                         second_deadline="P99999999D")
    (item,), _ = list_work_items(actor=SYSTEM, case_id=case_id)
    before = (db.session.get(Case, case_id).state_json, _rows(CaseEvent), _rows(WorkItem), _rows(Timer))
    response = client.post(f"/api/tasks/{item.id}/complete", json={"data": REVIEW})
    assert response.status_code == 422, response.get_json()
    assert "second_deadline_event" in response.get_json()["message"]
    db.session.rollback()
    after = (db.session.get(Case, case_id).state_json, _rows(CaseEvent), _rows(WorkItem), _rows(Timer))
    assert after == before
    assert db.session.get(WorkItem, item.id).state == "ready"


def test_a_timer_job_reaching_an_unusable_timer_value_marks_the_timer_failed(ctx: Flask, clock: Any) -> None:
    assert deploy(ctx, TIMER_FROM_DATA).exit_code == 0
    case_id = _open_with(clock, first_deadline=(clock.now() + timedelta(hours=1)).isoformat(), late_wait="soon")
    timer = db.session.scalars(select(Timer).where(Timer.case_id == case_id)).one()
    state = db.session.get(Case, case_id).state_json
    clock.advance(timedelta(hours=2))
    enqueue_fire_job(timer_queue(), timer.id)
    SimpleWorker([timer_queue()], connection=redis_connection()).work(burst=True)  # the real job, in RQ
    db.session.rollback()
    timer = db.session.get(Timer, timer.id)
    assert timer.state == "failed"
    assert "late_wait_event" in (timer.last_error or "") and "Invalid duration" in (timer.last_error or "")
    assert db.session.get(Case, case_id).state_json == state  # the firing was rolled back
    assert db.session.scalar(select(func.count()).select_from(CaseEvent).where(
        CaseEvent.case_id == case_id, CaseEvent.type == "timer_failed")) == 1


def test_a_value_the_database_still_refuses_is_reported_without_a_traceback(
        ctx: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Last line of defence: were a column's limit not checked, the database's refusal still ends cleanly.
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    monkeypatch.setattr(ProcessVersion.__table__.c.name.type, "length", 10_000)
    (tmp_path / ONE_TASK.name).write_text(ONE_TASK.read_text().replace('name="One task"', f'name="{"p" * 300}"'))
    result = deploy(ctx, tmp_path / ONE_TASK.name)
    assert result.exit_code != 0 and "nothing deployed: the database refused" in result.output, result.output
    assert "Traceback" not in result.output and versions() == []
