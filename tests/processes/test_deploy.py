"""Deploying BPMN through ``flask processes deploy``: versions, all or nothing, and the refusals."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select

from app.auth import demo_actor
from app.cases.models import Case
from app.cases.service import open_case
from app.extensions import db
from app.processes.models import ProcessVersion
from app.tasks.service import complete_work_item, list_work_items

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
FAULT = WORKFLOWS / "fault_handling.bpmn"
ONE_TASK = ROOT / "tests" / "data" / "one_task.bpmn"
RUNTIME_FAILURE = ROOT / "tests" / "data" / "runtime_failure.bpmn"
DIAGNOSIS_DEADLINE = "add_duration(reported_at, 'PT24H')"
DIAGNOSIS = {"diagnosis": "Fuse", "fault_class": "common", "removal_target_hours": 48, "cause": "quality",
             "support_mode": "remote", "parts_needed": False}


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


def revised(tmp_path: Path, *, old: str = DIAGNOSIS_DEADLINE,
            new: str = "add_duration(reported_at, 'PT36H')") -> Path:
    """A directory holding a changed fault_handling.bpmn (diagnosis deadline 36 h instead of 24 h)."""
    source = FAULT.read_text()
    assert source.count(old) == 1
    folder = tmp_path / "revised"
    folder.mkdir()
    (folder / "fault_handling.bpmn").write_text(source.replace(old, new))
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


def test_changed_content_becomes_v2_following_v1(ctx: Flask, tmp_path: Path) -> None:
    assert deploy(ctx, FAULT).exit_code == 0
    result = deploy(ctx, revised(tmp_path), "--by", "pat", "--note", "36 h diagnosis")
    assert result.exit_code == 0, result.output
    assert re.search(r"^deployed\s+fault_handling v2\b", result.output, re.M)
    v1, v2 = versions("fault_handling")
    assert (v1.version, v2.version) == (1, 2)
    assert v2.previous_id == v1.id
    assert v2.sha256 != v1.sha256
    assert (v2.deployed_by, v2.note) == ("pat", "36 h diagnosis")
    listed = ctx.test_client().get("/api/processes/fault_handling/versions").get_json()
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
    shutil.copy(FAULT, tmp_path / FAULT.name)  # a valid file next to the broken one
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
    staff = demo_actor("alice")
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
        (item,), _ = list_work_items(case_id=case_id)
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
    (next_item,), _ = list_work_items(case_id=old_id)
    assert next_item.task_spec == "quote_maintenance_cost"  # no equipment, so no warranty: a quote
