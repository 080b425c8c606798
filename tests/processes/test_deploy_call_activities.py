"""Deploying processes that call others (call activities): the callee must be in the package, its spec and
catalogue go with the caller's version, a changed callee makes a new caller version, a called-only process
is not opened on its own."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from app.engine import get_engine
from app.errors import InvalidDataError
from app.flows.steps import open_case
from app.processes.service import definition_of, startable_processes
from tests.processes.test_deploy import WORKFLOWS, deploy, versions
from tests.support import staff_actor

VISITS = WORKFLOWS / "return_visit.bpmn"
JUDGEMENT = WORKFLOWS / "quality_judgement.bpmn"


def package(folder: Path, change: Callable[[str], str] | None = None, *, callee: bool = True) -> Path:
    """``folder`` holding return_visit.bpmn and (unless not ``callee``) quality_judgement.bpmn changed by ``change``."""
    folder.mkdir(exist_ok=True)
    shutil.copy(VISITS, folder / VISITS.name)
    if callee:
        text = JUDGEMENT.read_text(encoding="utf-8")
        (folder / JUDGEMENT.name).write_text(change(text) if change else text, encoding="utf-8")
    return folder


def renamed(text: str) -> str:
    """The judgement with its user task renamed."""
    old = 'name="Judge whether it is a quality problem"'
    assert text.count(old) == 1
    return text.replace(old, 'name="Judge the quality problem"')


def test_the_caller_stores_the_called_spec_and_its_tasks(ctx: Flask) -> None:
    result = deploy(ctx, WORKFLOWS)
    assert result.exit_code == 0, result.output
    stored = {v.process_id: v for v in versions()}
    visits = stored["return_visit"]
    assert visits.catalogue["calls"] == {"judge_quality_problem": "quality_judgement"}
    assert visits.catalogue["called"] == ["quality_judgement"]
    assert visits.catalogue["human_tasks"]["judge_quality"]["role"] == "technical_dept"
    assert visits.catalogue["human_tasks"]["judge_quality"]["form_key"] == "quality_judgement"
    get_engine().clear_cache()
    definition = definition_of(visits)  # restored from the stored JSON
    assert set(definition.subprocess_specs) == {"quality_judgement"}
    assert "judge_quality" in definition.subprocess_specs["quality_judgement"].task_specs
    # The hash covers the called process; the callee deploys as its own version too.
    assert visits.sha256 != hashlib.sha256(VISITS.read_bytes()).hexdigest()
    assert stored["quality_judgement"].catalogue["settings"]["startable"] == "false"


def test_a_called_process_not_in_the_package_is_refused(ctx: Flask, tmp_path: Path) -> None:
    result = deploy(ctx, package(tmp_path, callee=False))
    assert result.exit_code != 0
    assert "call activity 'judge_quality_problem' calls process 'quality_judgement', which is not deployed" \
        in result.output
    line = next(n for n, text in enumerate(VISITS.read_text().splitlines(), 1) if 'calledElement=' in text)
    assert f"return_visit.bpmn:{line}" in result.output
    assert versions() == []


def test_an_unchanged_callee_makes_no_new_caller_version_a_changed_one_does(ctx: Flask, tmp_path: Path) -> None:
    assert deploy(ctx, package(tmp_path / "a")).exit_code == 0
    assert deploy(ctx, package(tmp_path / "b")).exit_code == 0
    assert [v.version for v in versions("return_visit")] == [1]
    result = deploy(ctx, package(tmp_path / "c", renamed))
    assert result.exit_code == 0, result.output
    v1, v2 = versions("return_visit")
    assert v1.bpmn_source == v2.bpmn_source and v1.sha256 != v2.sha256
    assert v1.catalogue["human_tasks"]["judge_quality"]["name"] == "Judge whether it is a quality problem"
    assert v2.catalogue["human_tasks"]["judge_quality"]["name"] == "Judge the quality problem"
    assert [v.version for v in versions("quality_judgement")] == [1, 2]


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace('id="judge_quality"', 'id="call_sampled_users"').replace(
        "flow_prepare_to_judge\" sourceRef=\"prepare_judgement\" targetRef=\"judge_quality\"",
        "flow_prepare_to_judge\" sourceRef=\"prepare_judgement\" targetRef=\"call_sampled_users\"").replace(
        'sourceRef="judge_quality"', 'sourceRef="call_sampled_users"').replace(
        'bpmnElement="judge_quality"', 'bpmnElement="call_sampled_users"'),
     "element id 'call_sampled_users' of process 'quality_judgement' is also used in process 'return_visit'"),
    (lambda t: t.replace('camunda:formKey="quality_judgement"', 'camunda:formKey="no_such_form"'),
     "camunda:formKey 'no_such_form' names no record form"),
    (lambda t: t.replace('calledElement', 'x').replace(
        '<bpmn:scriptTask id="prepare_judgement"', '<bpmn:callActivity id="loop" calledElement="quality_judgement" />'
        '<bpmn:scriptTask id="prepare_judgement"'), "calls its own process 'quality_judgement'"),
], ids=["id collision", "callee's form unknown", "calls itself"])
def test_a_bad_callee_deploys_nothing(ctx: Flask, tmp_path: Path, change: Callable[[str], str], message: str) -> None:
    result = deploy(ctx, package(tmp_path, change))
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert versions() == []


def test_a_called_only_process_is_not_opened_on_its_own(ctx: Flask, clock: object) -> None:
    assert deploy(ctx, WORKFLOWS).exit_code == 0
    staff = staff_actor("alice")
    offered = {v.process_id for v in startable_processes(actor=staff)}
    assert "quality_judgement" not in offered and {"return_visit", "fault_handling"} <= offered
    with pytest.raises(InvalidDataError) as refused:
        open_case(actor=staff, process_id="quality_judgement", reported_at=clock.now(),  # type: ignore[attr-defined]
                  channel="phone", description="Judge this")
    assert "process" in refused.value.errors
