"""DMN decision tables at the engine seam: parsing, checks of every cell, restricted evaluation, refusals."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from app.engine import DecisionTable, Engine, ProcessDefinitionError, ScriptError
from tests.support import engine_for_tests

ROOT = Path(__file__).resolve().parents[2]
WARRANTY = ROOT / "workflows" / "warranty.dmn"
DMN13 = "https://www.omg.org/spec/DMN/20191111/MODEL/"


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine, as in a worker process."""
    return engine_for_tests()


def dmn(rules: str, *, hit_policy: str = 'hitPolicy="UNIQUE"', decision_id: str = "pick",
        output: str = '<output id="out" label="Result" name="result" typeRef="string" />',
        input_expression: str = "value") -> bytes:
    """A one-input, one-output DMN file with ``rules`` (rule elements)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="{DMN13}" id="defs" name="Test" namespace="http://test">
  <decision id="{decision_id}" name="Pick">
    <decisionTable id="table" {hit_policy}>
      <input id="in" label="Value">
        <inputExpression id="in_expr" typeRef="string"><text>{input_expression}</text></inputExpression>
      </input>
      {output}
{rules}
    </decisionTable>
  </decision>
</definitions>
""".encode()


def rule(rule_id: str, when: str, then: str) -> str:
    """One rule: input cell ``when``, output cell ``then``."""
    return (f'      <rule id="{rule_id}"><inputEntry id="{rule_id}_in"><text>{when}</text></inputEntry>'
            f'<outputEntry id="{rule_id}_out"><text>{then}</text></outputEntry></rule>')


SMALL = dmn("\n".join([rule("small", "&lt; 10", "'small'"), rule("large", "&gt;= 10", "'large'")]))


def bpmn(decision_id: str = "pick", *, extension: str | None = None) -> bytes:
    """A process: start, one business rule task calling ``decision_id``, end."""
    called = extension if extension is not None else (
        f"<bpmn:extensionElements><spiffworkflow:calledDecisionId>{decision_id}</spiffworkflow:calledDecisionId>"
        "</bpmn:extensionElements>")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="http://test">
  <bpmn:process id="decide" name="Decide" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:businessRuleTask id="rule_task" name="Decide">
      {called}
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:businessRuleTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="rule_task" />
    <bpmn:sequenceFlow id="f2" sourceRef="rule_task" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def refusal(engine: Engine, source: bytes) -> ProcessDefinitionError:
    """The error parsing ``source`` as a DMN file raises."""
    with pytest.raises(ProcessDefinitionError) as caught:
        engine.parse_decision(source, "table.dmn")
    return caught.value


def run(engine: Engine, table: DecisionTable, data: dict[str, Any]) -> dict[str, Any]:
    """Run the business rule task on ``data`` through a stored and restored definition; its data after."""
    parsed = engine.parse(bpmn(table.decision_id), "decide.bpmn", [table])
    stored = engine.dump_definition(parsed)
    definition = engine.load_definition(("decide", uuid.uuid4().hex), lambda: stored)
    instance = engine.start(definition, data)
    assert instance.is_completed
    return instance.data


# -- parsing -------------------------------------------------------------------------------------------
def test_the_warranty_table_parses(engine: Engine) -> None:
    table = engine.parse_decision(WARRANTY.read_bytes(), WARRANTY.name)
    assert (table.decision_id, table.name, table.filename) == ("warranty_coverage", "Warranty coverage", "warranty.dmn")
    assert table.text == WARRANTY.read_text(encoding="utf-8")
    assert len(table.sha256) == 64


def test_a_table_runs_in_a_business_rule_task(engine: Engine) -> None:
    table = engine.parse_decision(SMALL, "small.dmn")
    assert run(engine, table, {"value": 3})["result"] == "small"
    assert run(engine, table, {"value": 12})["result"] == "large"


def test_the_catalogue_names_the_decision_each_task_calls(engine: Engine) -> None:
    table = engine.parse_decision(SMALL, "small.dmn")
    definition = engine.parse(bpmn(), "decide.bpmn", [table])
    assert definition.catalogue.decisions == {"rule_task": "pick"}


# -- restricted evaluation -----------------------------------------------------------------------------
def test_cells_run_in_the_restricted_environment(engine: Engine) -> None:
    # open() compiles, so the table deploys; the restricted builtins refuse it when the cell runs.
    table = engine.parse_decision(dmn(rule("r1", "-", "open('/etc/passwd').read()")), "open.dmn")
    with pytest.raises(ScriptError, match="open"):
        run(engine, table, {"value": 1})


def test_cells_run_on_the_script_budget(engine: Engine) -> None:
    table = engine.parse_decision(dmn(rule("r1", "-", "'x' * 10**10")), "huge.dmn")
    with pytest.raises(ScriptError, match="too large"):
        run(engine, table, {"value": 1})


@pytest.mark.parametrize(("when", "then", "what"), [
    ("__import__('os')", "'x'", "input cell 1"),
    ("== ().__class__.__bases__", "'x'", "input cell 1"),
    ("-", "__import__('os').system('id')", "output cell 1"),
    ("-", "[c for c in ().__class__.__base__.__subclasses__()]", "output cell 1"),
    ("-", "exec('1')", "output cell 1"),
    ("-", "import os", "output cell 1"),
], ids=["import in an input cell", "dunder in an input cell", "import in an output cell",
        "subclasses in an output cell", "exec in an output cell", "a statement in an output cell"])
def test_a_hostile_cell_is_refused_with_decision_rule_and_line(engine: Engine, when: str, then: str,
                                                              what: str) -> None:
    source = dmn("\n".join([rule("fine", "1", "'one'"), rule("hostile", when, then)]))
    error = refusal(engine, source)
    assert error.element_id == "hostile"
    assert f"decision 'pick', rule 'hostile': {what}" in error.message
    assert error.line == source.decode().splitlines().index(
        next(line for line in source.decode().splitlines() if 'rule id="hostile"' in line)) + 1


def test_a_hostile_input_expression_is_refused(engine: Engine) -> None:
    error = refusal(engine, dmn(rule("r1", "-", "'x'"), input_expression="__import__('os').getcwd()"))
    assert "decision 'pick'" in error.message and "input 1 expression" in error.message
    assert error.line == 6  # the inputExpression's text


# -- refusals ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("source", "message"), [
    (b"", "empty"),
    (b"<definitions><decision", "not well-formed XML"),
    (dmn(rule("r1", "-", "'x'"), hit_policy='hitPolicy="FIRST"'), "hit policy 'FIRST' is not supported"),
    (dmn(rule("r1", "-", "'x'"), hit_policy='hitPolicy="unique"'), "attribute 'hitPolicy'"),  # the DMN schema
    (dmn(""), "has no rules"),
    (dmn(rule("r1", "-", "'x'"), output='<output id="out" label="Result" typeRef="string" />'), "has no name"),
    (dmn(rule("r1", "-", "'x'"), output=""), "Expected is one of"),  # the DMN schema: an output is required
    (dmn(rule("r1", " ", "'x'")), "input cell 1 is blank"),
    (dmn(rule("r1", "-", "'x'"), decision_id="has-dash"), "not a plain name"),
    (b'<?xml version="1.0"?><bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"/>',
     "not a DMN definitions element"),
    (f'<definitions xmlns="{DMN13}" id="d" name="n" namespace="x"/>'.encode(), "exactly one decision, found 0"),
], ids=["empty", "malformed", "unknown hit policy", "lower-case hit policy", "no rules", "output without a name",
        "no output", "blank cell", "bad decision id", "a BPMN file", "no decision"])
def test_bad_dmn_is_refused(engine: Engine, source: bytes, message: str) -> None:
    assert message in refusal(engine, source).message


def test_an_entity_is_not_expanded(engine: Engine) -> None:
    source = dmn(rule("r1", "-", "&secret;")).replace(
        b"<definitions", b'<!DOCTYPE definitions [<!ENTITY secret SYSTEM "file:///etc/hostname">]>\n<definitions', 1)
    try:
        table = engine.parse_decision(source, "entity.dmn")
    except ProcessDefinitionError:
        return  # refused: fine
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else "\0"
    assert hostname not in table.text.replace("&secret;", "")


def test_a_schema_violation_is_refused(engine: Engine) -> None:
    source = dmn(rule("r1", "-", "'x'")).replace(b'<input id="in"', b'<input id="in" bogus="1"')
    assert "bogus" in refusal(engine, source).message


# -- decisions a process calls -------------------------------------------------------------------------
def test_a_decision_not_in_the_package_is_refused_naming_task_and_decision(engine: Engine) -> None:
    table = engine.parse_decision(SMALL, "small.dmn")
    with pytest.raises(ProcessDefinitionError) as caught:
        engine.parse(bpmn("missing"), "decide.bpmn", [table])
    error = caught.value
    assert error.element_id == "rule_task" and error.line
    assert "business rule task 'rule_task' calls decision 'missing'" in error.message
    assert "decisions in the package: pick" in error.message


def test_a_business_rule_task_must_name_its_decision(engine: Engine) -> None:
    with pytest.raises(ProcessDefinitionError, match="names no decision: it needs spiffworkflow:calledDecisionId"):
        engine.parse(bpmn(extension=""), "decide.bpmn", [])
    with pytest.raises(ProcessDefinitionError, match="names no decision.*camunda:decisionRef is not read"):
        engine.parse(bpmn(extension="<bpmn:extensionElements/>").replace(
            b'name="Decide">', b'name="Decide" camunda:decisionRef="pick">', 1), "decide.bpmn", [])


def test_the_same_decision_twice_is_refused(engine: Engine) -> None:
    table = engine.parse_decision(SMALL, "small.dmn")
    with pytest.raises(ProcessDefinitionError, match="decision 'pick' is defined in small.dmn and in"):
        engine.parse(bpmn(), "decide.bpmn", [table, engine.parse_decision(SMALL, "again.dmn")])


# -- UNIQUE means exactly one ---------------------------------------------------------------------------
def test_unique_with_two_matching_rules_stops_the_case(engine: Engine) -> None:
    table = engine.parse_decision(dmn("\n".join([rule("a", "&lt; 10", "'a'"), rule("b", "&lt; 20", "'b'")])),
                                  "overlap.dmn")
    assert run(engine, table, {"value": 15})["result"] == "b"
    with pytest.raises(ScriptError, match="matched 2: 'a', 'b'"):
        run(engine, table, {"value": 5})


def test_unique_with_no_matching_rule_stops_the_case(engine: Engine) -> None:
    table = engine.parse_decision(dmn(rule("a", "&lt; 10", "'a'")), "gap.dmn")
    with pytest.raises(ScriptError, match="matched 0: none"):
        run(engine, table, {"value": 50})


def test_collect_gathers_every_match(engine: Engine) -> None:
    table = engine.parse_decision(dmn("\n".join([rule("a", "&lt; 10", "'a'"), rule("b", "&lt; 20", "'b'")]),
                                      hit_policy='hitPolicy="COLLECT"'), "collect.dmn")
    assert run(engine, table, {"value": 5})["result"] == ["a", "b"]
