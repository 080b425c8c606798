"""Deploying decision tables with the processes that call them: versions, content hash, refusals, pinning."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.cases.models import Case
from app.extensions import db
from app.flows.steps import open_case
from app.flows.tasks import complete_work_item
from app.tasks.service import list_work_items
from tests.processes.test_deploy import DIAGNOSIS, FAULT, ONE_TASK, WORKFLOWS, deploy, versions
from tests.support import staff_actor

WARRANTY = WORKFLOWS / "warranty.dmn"


def package(folder: Path, change: Callable[[str], str] | None = None) -> Path:
    """``folder`` holding fault_handling.bpmn and warranty.dmn, the table's text changed by ``change``."""
    folder.mkdir(exist_ok=True)
    shutil.copy(FAULT, folder / FAULT.name)
    text = WARRANTY.read_text(encoding="utf-8")
    (folder / WARRANTY.name).write_text(change(text) if change else text, encoding="utf-8")
    return folder


def reworded(text: str) -> str:
    """The table with another reason for a repair after the warranty."""
    old = "<text>'warranty ended'</text>"
    assert text.count(old) == 1
    return text.replace(old, "<text>'the warranty period has ended'</text>")


def test_a_version_stores_the_tables_it_runs(ctx: Flask) -> None:
    result = deploy(ctx, WORKFLOWS)
    assert result.exit_code == 0, result.output
    stored = {v.process_id: v for v in versions()}
    assert stored["fault_handling"].decisions == {"warranty_coverage": WARRANTY.read_text(encoding="utf-8")}
    assert stored["fault_handling"].catalogue["decisions"] == {"decide_charges": "warranty_coverage"}
    assert stored["monthly_inspection"].decisions == {}
    # The hash covers the tables; a process without any keeps the hash of its BPMN bytes alone.
    assert stored["fault_handling"].sha256 != hashlib.sha256(FAULT.read_bytes()).hexdigest()
    inspection = WORKFLOWS / "monthly_inspection.bpmn"
    assert stored["monthly_inspection"].sha256 == hashlib.sha256(inspection.read_bytes()).hexdigest()


def test_an_identical_table_makes_no_new_version(ctx: Flask, tmp_path: Path) -> None:
    assert deploy(ctx, package(tmp_path / "a")).exit_code == 0
    again = deploy(ctx, package(tmp_path / "b"))
    assert again.exit_code == 0, again.output
    assert "unchanged" in again.output and "deployed" not in again.output
    assert [v.version for v in versions("fault_handling")] == [1]


def test_a_changed_table_makes_a_new_version(ctx: Flask, tmp_path: Path) -> None:
    assert deploy(ctx, package(tmp_path / "a")).exit_code == 0
    result = deploy(ctx, package(tmp_path / "b", reworded))
    assert result.exit_code == 0, result.output
    v1, v2 = versions("fault_handling")
    assert (v1.version, v2.version, v2.previous_id) == (1, 2, v1.id)
    assert v1.bpmn_source == v2.bpmn_source and v1.sha256 != v2.sha256
    assert "'the warranty period has ended'" in v2.decisions["warranty_coverage"]
    assert "'the warranty period has ended'" not in v1.decisions["warranty_coverage"]


def test_a_single_bpmn_file_deploys_with_the_tables_beside_it(ctx: Flask) -> None:
    result = deploy(ctx, FAULT)
    assert result.exit_code == 0, result.output
    (version,) = versions("fault_handling")
    assert set(version.decisions) == {"warranty_coverage"}


def test_a_case_keeps_the_table_of_its_version(ctx: Flask, tmp_path: Path, clock: Any) -> None:
    staff = staff_actor("alice")
    assert deploy(ctx, package(tmp_path / "a")).exit_code == 0
    reported_at = clock.now()
    old = open_case(actor=staff, process_id="fault_handling", reported_at=reported_at, channel="phone",
                    description="UPS alarm")  # no equipment: no warranty
    db.session.commit()
    assert deploy(ctx, package(tmp_path / "b", reworded)).exit_code == 0
    new = open_case(actor=staff, process_id="fault_handling", reported_at=reported_at, channel="phone",
                    description="Another alarm")
    db.session.commit()
    assert old.process_version_id != new.process_version_id

    def charged_because(case_id: int) -> str:
        (item,), _ = list_work_items(actor=staff, case_id=case_id, state="ready")
        complete_work_item(work_item_id=item.id, actor=staff, data=DIAGNOSIS)
        db.session.commit()
        db.session.expire_all()
        (quote,), _ = list_work_items(actor=staff, case_id=case_id, state="ready")
        assert quote.task_spec == "quote_maintenance_cost"
        case = db.session.get(Case, case_id)
        assert case is not None
        return str(case.summary["charge_reason"])

    assert charged_because(old.id) == "warranty ended"
    assert charged_because(new.id) == "the warranty period has ended"


# -- refusals: nothing deployed ------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace("</decisionTable>", "", 1), "not well-formed XML"),
    (lambda t: t.replace('hitPolicy="UNIQUE"', 'hitPolicy="FIRST"'), "hit policy 'FIRST' is not supported"),
    (lambda t: t.replace('name="charge_reason" ', ""), "has no name"),
    (lambda t: t.replace("<text>'quote'</text>", "<text>__import__('os').system('id')</text>", 1),
     "decision 'warranty_coverage', rule 'warranty_ended': output cell 2"),
    (lambda t: t.replace("<text>'wear'</text>", "<text>().__class__</text>", 1),
     "decision 'warranty_coverage', rule 'not_covered_wear': input cell 2"),
], ids=["malformed", "unknown hit policy", "output without a name", "hostile output cell", "hostile input cell"])
def test_a_bad_table_deploys_nothing(ctx: Flask, tmp_path: Path, change: Callable[[str], str], message: str) -> None:
    shutil.copy(ONE_TASK, tmp_path / ONE_TASK.name)
    result = deploy(ctx, package(tmp_path, change))
    assert result.exit_code != 0
    assert "nothing deployed" in result.output and "warranty.dmn" in result.output
    assert message in result.output
    assert versions() == []


def test_a_table_without_rules_deploys_nothing(ctx: Flask, tmp_path: Path) -> None:
    def no_rules(text: str) -> str:
        start, end = text.index("      <rule "), text.rindex("</rule>") + len("</rule>")
        return text[:start] + text[end:]

    result = deploy(ctx, package(tmp_path, no_rules))
    assert result.exit_code != 0 and "has no rules" in result.output
    assert versions() == []


def test_a_missing_table_is_refused_naming_the_task_and_the_decision(ctx: Flask, tmp_path: Path) -> None:
    shutil.copy(FAULT, tmp_path / FAULT.name)
    result = deploy(ctx, tmp_path)
    assert result.exit_code != 0
    assert "business rule task 'decide_charges' calls decision 'warranty_coverage'" in result.output
    assert "fault_handling.bpmn:" in result.output
    assert versions() == []


def test_the_same_decision_in_two_files_is_refused(ctx: Flask, tmp_path: Path) -> None:
    package(tmp_path)
    shutil.copy(WARRANTY, tmp_path / "warranty_copy.dmn")
    result = deploy(ctx, tmp_path)
    assert result.exit_code != 0 and "decision 'warranty_coverage' is defined in" in result.output
    assert versions() == []


def test_a_table_alone_is_not_deployed(ctx: Flask) -> None:
    result = deploy(ctx, WARRANTY)
    assert result.exit_code != 0 and "deployed with the processes that call it" in result.output
    assert versions() == []
