"""Service tasks call the installation's operations: checked at deploy (an unknown operation, a missing or
unknown parameter, a parameter that does not compile), parameters evaluated in the restricted
environment, the result stored in the result variable, and an operation's own error passed out of the
engine unchanged."""

from __future__ import annotations

from typing import Any

import pytest

from app.engine import Engine, ProcessDefinitionError
from app.engine.operations import OperationRegistry
from app.errors import ConflictError

OPERATOR = """<spiffworkflow:serviceTaskOperator id="{op}" resultVariable="answer">
            <spiffworkflow:parameters>{params}</spiffworkflow:parameters>
          </spiffworkflow:serviceTaskOperator>"""


def bpmn(op: str = "demo.echo", params: str = '<spiffworkflow:parameter id="text" type="str" value="greeting" />',
         operator: str | None = None) -> bytes:
    body = OPERATOR.format(op=op, params=params) if operator is None else operator
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="d" targetNamespace="http://example.org/t">
  <bpmn:process id="svc" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:serviceTask id="call" name="Call it">
      <bpmn:extensionElements>
          {body}
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="done" />
    <bpmn:endEvent id="done" />
  </bpmn:process>
</bpmn:definitions>""".encode()


@pytest.fixture
def calls() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def engine(calls: list[dict[str, Any]]) -> Engine:
    registry = OperationRegistry()

    def echo(text: Any, times: Any = 1) -> dict[str, Any]:
        calls.append({"text": text, "times": times})
        if text == "refuse":
            raise ConflictError("the stock ran out", errors={"lines": {"0": {"quantity": ["only 0 available"]}}})
        return {"echo": text * times}

    registry.register("demo.echo", echo, required=("text",), optional=("times",))
    return Engine(operations=registry)


def test_the_operation_runs_with_evaluated_parameters_and_its_result_is_kept(engine: Engine,
                                                                             calls: list[dict[str, Any]]) -> None:
    definition = engine.parse(bpmn(params='<spiffworkflow:parameter id="text" type="str" value="greeting + \'!\'" />'
                                          '<spiffworkflow:parameter id="times" type="int" value="2" />'), "svc.bpmn")
    assert definition.catalogue.service_tasks["call"].operation == "demo.echo"
    instance = engine.start(definition, {"greeting": "hi"})
    assert instance.is_completed
    assert calls == [{"text": "hi!", "times": 2}]
    assert instance.data["answer"] == {"echo": "hi!hi!"}


def test_an_operations_refusal_leaves_the_engine_as_itself(engine: Engine) -> None:
    definition = engine.parse(bpmn(), "svc.bpmn")
    with pytest.raises(ConflictError) as refused:
        engine.start(definition, {"greeting": "refuse"})
    assert refused.value.errors == {"lines": {"0": {"quantity": ["only 0 available"]}}}


@pytest.mark.parametrize(("source", "words"), [
    (bpmn(op="demo.nope"), "calls the operation 'demo.nope', which is not installed (installed: demo.echo)"),
    (bpmn(params=""), "it needs the parameter(s) text"),
    (bpmn(params='<spiffworkflow:parameter id="text" type="str" value="1" />'
                 '<spiffworkflow:parameter id="colour" type="str" value="2" />'),
     "it takes no parameter(s) colour (it takes: text, times)"),
    (bpmn(operator=""), "names no operation"),
    (bpmn(params='<spiffworkflow:parameter id="text" type="str" value="__import__(\'os\')" />'), "is not allowed"),
])
def test_deploy_refuses_what_cannot_be_called(engine: Engine, source: bytes, words: str) -> None:
    with pytest.raises(ProcessDefinitionError) as refused:
        engine.parse(source, "svc.bpmn")
    assert words in str(refused.value)
    assert refused.value.element_id == "call"
    assert refused.value.line is not None
