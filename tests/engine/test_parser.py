"""Reading BPMN at the engine seam: the catalogue the app relies on, and every way a file is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from app.engine import Catalogue, ProcessDefinitionError
from app.engine.parser import ParsedProcess, parse_process, source_text
from tests.support import workflow_decisions

ROOT = Path(__file__).resolve().parents[2]
FAULT = ROOT / "workflows" / "fault_handling.bpmn"
ONE_TASK = ROOT / "tests" / "data" / "one_task.bpmn"
RUNTIME_FAILURE = ROOT / "tests" / "data" / "runtime_failure.bpmn"
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"


@pytest.fixture(scope="module")
def xml() -> etree._Element:
    """The fault-handling process element, read independently of the parser under test."""
    return etree.parse(str(FAULT)).getroot().find("bpmn:process", NS)


@pytest.fixture(scope="module")
def parsed() -> ParsedProcess:
    """The fault-handling process as the parser reads it."""
    return parse_process(FAULT.read_bytes(), FAULT.name, {t.decision_id: t for t in workflow_decisions()})


def _doc(node: etree._Element) -> str:
    found = node.find("bpmn:documentation", NS)
    return (found.text or "").strip() if found is not None else ""


# -- the catalogue -------------------------------------------------------------------------------------
def test_catalogue_names_the_process(parsed: ParsedProcess, xml: etree._Element) -> None:
    catalogue = parsed.catalogue
    assert catalogue.process_id == xml.get("id") == FAULT.stem
    assert catalogue.name == xml.get("name")
    assert catalogue.documentation == _doc(xml) != ""
    assert parsed.spec.name == catalogue.process_id


def test_catalogue_lists_every_user_task_with_its_role_and_form(parsed: ParsedProcess,
                                                                xml: etree._Element) -> None:
    expected = {node.get("id"): (node.get("name"), node.get(f"{CAMUNDA}candidateGroups"),
                                 node.get(f"{CAMUNDA}formKey"), _doc(node))
                for node in xml.iterfind(".//bpmn:userTask", NS)}
    found = {k: (v.name, v.role, v.form_key, v.documentation) for k, v in parsed.catalogue.human_tasks.items()}
    assert found == expected
    assert len(found) >= 9


def test_every_form_key_names_a_record_form(parsed: ParsedProcess) -> None:
    for task in parsed.catalogue.human_tasks.values():
        assert (ROOT / "forms" / f"{task.form_key}.form.json").is_file(), task


def test_human_tasks_sit_in_the_lane_that_lists_them_or_their_subprocess(parsed: ParsedProcess,
                                                                          xml: etree._Element) -> None:
    members = {ref.text.strip(): lane.get("id") for lane in xml.iterfind(".//bpmn:lane", NS)
               for ref in lane.iterfind("bpmn:flowNodeRef", NS)}
    for task_id, task in parsed.catalogue.human_tasks.items():
        node = xml.find(f".//*[@id='{task_id}']")
        while node.get("id") not in members:  # a task inside a subprocess is in the subprocess's lane
            node = node.getparent()
        assert task.lane == members[node.get("id")], task_id
    assert parsed.catalogue.lanes == {lane.get("id"): lane.get("name")
                                      for lane in xml.iterfind(".//bpmn:lane", NS)}


def test_catalogue_lists_every_timer_with_its_expression(parsed: ParsedProcess, xml: etree._Element) -> None:
    expected = {}
    for definition in xml.iterfind(".//bpmn:timerEventDefinition", NS):
        event = definition.getparent()
        (expression,) = list(definition)
        expected[event.get("id")] = (expression.text.strip(), event.get("attachedToRef"),
                                     event.get("cancelActivity", "true") != "false")
    found = {k: (v.expression, v.attached_to, v.interrupting) for k, v in parsed.catalogue.timers.items()}
    assert found == expected and found
    assert all(t.placement == "boundary" and t.kind == "date" for t in parsed.catalogue.timers.values())
    assert parsed.catalogue.start_timer is None


def test_catalogue_survives_storage(parsed: ParsedProcess) -> None:
    stored = json.loads(json.dumps(parsed.catalogue.to_dict()))
    assert Catalogue.from_dict(stored) == parsed.catalogue


def test_role_comes_from_the_lane_without_candidate_groups() -> None:
    source = ONE_TASK.read_text().replace(' camunda:candidateGroups="agent"', "").replace(
        '<bpmn:startEvent id="start" name="Start"/>',
        '<bpmn:laneSet id="lanes"><bpmn:lane id="lane_warehouse" name="Warehouse">'
        "<bpmn:flowNodeRef>answer</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>\n"
        '    <bpmn:startEvent id="start" name="Start"/>')
    task = parse_process(source.encode(), ONE_TASK.name).catalogue.human_tasks["answer"]
    assert (task.role, task.lane) == ("warehouse", "lane_warehouse")


def test_a_timer_start_event_is_the_start_timer() -> None:
    source = ONE_TASK.read_text().replace(
        '<bpmn:startEvent id="start" name="Start"/>',
        '<bpmn:startEvent id="start" name="Every month"><bpmn:timerEventDefinition id="monthly">'
        "<bpmn:timeCycle>'R/2026-01-01T00:00:00+00:00/P30D'</bpmn:timeCycle>"
        "</bpmn:timerEventDefinition></bpmn:startEvent>")
    timer = parse_process(source.encode(), ONE_TASK.name).catalogue.start_timer
    assert timer is not None
    assert (timer.id, timer.kind, timer.placement) == ("start", "cycle", "start")


# -- refusals -------------------------------------------------------------------------------------------
def _line(text: str, needle: str) -> int:
    return text.count("\n", 0, text.index(needle)) + 1


def _replace(old: str, new: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        assert old in text
        return text.replace(old, new)
    return change


_XXE = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE bpmn:definitions [<!ENTITY secret SYSTEM "file:///etc/hostname">]>')
REFUSED = {
    # name: (base file, change, message part, element, line finder on the changed text)
    "empty": (ONE_TASK, lambda text: "", "empty", None, None),
    "whitespace only": (ONE_TASK, lambda text: "\n  \n", "empty", None, None),
    "malformed XML": (ONE_TASK, _replace('name="Done"/>', 'name="Done">'), "not well-formed XML", None,
                      lambda text: _line(text, "</bpmn:process>")),
    "not XML at all": (ONE_TASK, lambda text: "just some words", "not well-formed XML", None,
                       lambda text: 1),
    "foreign root": (ONE_TASK, lambda text: "<?xml version='1.0'?>\n<svg><g/></svg>",
                     "not bpmn:definitions", None, lambda text: 2),
    "definitions in another namespace": (
        ONE_TASK, lambda text: "<definitions xmlns='http://example.org/not-bpmn'><process id='p'/></definitions>",
        "not bpmn:definitions", None, lambda text: 1),
    "schema violation": (ONE_TASK, _replace('<bpmn:endEvent id="late" name="Late"/>',
                                            '<bpmn:endEvent id="late" name="Late"/>\n    <bpmn:bogus id="b"/>'),
                         "not expected", None, lambda text: _line(text, "<bpmn:bogus")),
    "user task without formKey": (ONE_TASK, _replace(' camunda:formKey="escalation_review"', ""), "formKey",
                                  "answer", lambda text: _line(text, 'camunda:candidateGroups="agent"')),
    "__import__ in a timer": (ONE_TASK, _replace("add_duration(reported_at, 'PT24H')", "__import__('os')"),
                              "__import__", "answer_deadline", lambda text: _line(text, "__import__")),
    "dunder attribute in a condition": (
        RUNTIME_FAILURE, _replace("d['missing'] == 1", "d.__class__.__subclasses__() == 1"), "__class__",
        "to_end_missing", lambda text: _line(text, "__subclasses__")),
    "syntax error in a condition": (RUNTIME_FAILURE, _replace("d['missing'] == 1", "d[ == 1"), "SyntaxError",
                                    "to_end_missing", lambda text: _line(text, "d[ == 1")),
    "class in a script": (RUNTIME_FAILURE, _replace("d = {'present': 1}", "d = {'present': 1}\nclass X:\n    pass"),
                          "class definitions", "prepare", lambda text: _line(text, "class X")),
    "empty timer expression": (ONE_TASK, _replace("add_duration(reported_at, 'PT24H')", ""), "empty",
                               "answer_deadline", lambda text: _line(text, '<bpmn:boundaryEvent id="answer_deadline"')),
    "two executable processes": (ONE_TASK, _replace(
        "</bpmn:process>", '</bpmn:process>\n  <bpmn:process id="second" isExecutable="true">'
        '<bpmn:startEvent id="s2"/></bpmn:process>'), "exactly one executable process", None, None),
    **{f"constant {tag} {value}": (
        ONE_TASK, _replace("<bpmn:timeDate>add_duration(reported_at, 'PT24H')</bpmn:timeDate>",
                           f"<bpmn:{tag}>{value}</bpmn:{tag}>"),
        f"the timer's {tag} {value} is not usable", "answer_deadline",
        lambda text, tag=tag: _line(text, f"<bpmn:{tag}>"))
       for tag in ("timeDate", "timeDuration", "timeCycle") for value in ("'not a date'", "'P99999999D'", "1e308")},
    "constant timeDate without an offset": (
        ONE_TASK, _replace("add_duration(reported_at, 'PT24H')", "'2026-03-02T08:00:00'"), "no UTC offset",
        "answer_deadline", lambda text: _line(text, "'2026-03-02T08:00:00'")),
    "constant timeCycle with a zero period": (
        ONE_TASK, _replace("<bpmn:timeDate>add_duration(reported_at, 'PT24H')</bpmn:timeDate>",
                           "<bpmn:timeCycle>'R3/PT0S'</bpmn:timeCycle>"), "zero period", "answer_deadline",
        lambda text: _line(text, "'R3/PT0S'")),
    "import os in a script": (RUNTIME_FAILURE, _replace("d = {'present': 1}", "d = {'present': 1}\nimport os"),
                              "import of 'os' is not allowed", "prepare", lambda text: _line(text, "import os")),
    "import os.path in a script": (RUNTIME_FAILURE, _replace("d = {'present': 1}", "import math, os.path"),
                                   "import of 'os.path' is not allowed", "prepare",
                                   lambda text: _line(text, "import math")),
    "from subprocess import run": (
        RUNTIME_FAILURE, _replace("d = {'present': 1}", "d = {'present': 1}\nif d:\n    from subprocess import run"),
        "import from 'subprocess' is not allowed", "prepare", lambda text: _line(text, "from subprocess")),
    "from decimal import getcontext": (
        RUNTIME_FAILURE, _replace("d = {'present': 1}", "from decimal import Decimal, getcontext"),
        "decimal.getcontext is not allowed", "prepare", lambda text: _line(text, "from decimal")),
    "an encoding nobody knows": (ONE_TASK, _replace('encoding="UTF-8"', 'encoding="x-no-such-encoding"'),
                                 "Unsupported encoding", None, lambda text: 1),
    "external entity": (ONE_TASK, lambda text: text.replace('<?xml version="1.0" encoding="UTF-8"?>', _XXE)
                        .replace('isExecutable="true">', 'isExecutable="true">\n    '
                                 "<bpmn:documentation>&secret;</bpmn:documentation>"), "entit", None, None),
}


@pytest.mark.parametrize("base,change,message,element,find_line", REFUSED.values(), ids=list(REFUSED))
def test_a_bad_file_is_refused_naming_file_element_and_line(base: Path, change: Callable[[str], str],
                                                            message: str, element: str | None,
                                                            find_line: Callable[[str], int] | None) -> None:
    text = change(base.read_text())
    with pytest.raises(ProcessDefinitionError) as caught:
        parse_process(text.encode(), base.name)
    error = caught.value
    assert error.filename == base.name
    assert message in error.message, error.message
    assert error.element_id == element
    if find_line is not None:
        assert error.line == find_line(text), str(error)
    assert str(error).startswith(base.name)
    assert error.to_dict() == {"file": base.name, "element": element, "line": error.line,
                               "message": error.message}


def test_an_external_entity_is_never_read() -> None:
    secret = Path("/etc/hostname")
    if not secret.is_file() or not secret.read_text().strip():
        pytest.skip("no /etc/hostname to try to leak")
    text = REFUSED["external entity"][1](ONE_TASK.read_text())
    with pytest.raises(ProcessDefinitionError) as caught:
        parse_process(text.encode(), ONE_TASK.name)
    assert secret.read_text().strip() not in str(caught.value)


def test_code_that_only_fails_when_it_runs_passes_the_deploy_check() -> None:
    # Reading a missing key or a forbidden attribute by name at run time is not visible in the source.
    for condition in ("d['missing'] == 1", "getattr(d, '__class__') is None"):
        text = RUNTIME_FAILURE.read_text().replace("d['missing'] == 1", condition)
        assert parse_process(text.encode(), RUNTIME_FAILURE.name).catalogue.process_id == "runtime_failure"


# -- constant timer values are checked at deploy; sound ones pass ------------------------------------------
@pytest.mark.parametrize("tag,value", [
    ("timeDuration", '"PT24H"'), ("timeDuration", "'P1M'"), ("timeDuration", "'P1DT12H'"),
    ("timeDate", "'2026-03-02T08:00:00+00:00'"), ("timeDate", "'2026-03-02T16:00:00Z'"),
    ("timeCycle", "'R3/PT1H'"), ("timeCycle", "'R/2026-01-01T00:00:00+08:00/P1D'"),
    # Not constants: only the running case knows their value (tests/engine/test_runtime.py).
    ("timeDate", "reported_at"), ("timeDuration", "'P' + str(days) + 'D'"),
])
def test_a_sound_or_computed_timer_expression_deploys(tag: str, value: str) -> None:
    text = ONE_TASK.read_text().replace("<bpmn:timeDate>add_duration(reported_at, 'PT24H')</bpmn:timeDate>",
                                        f"<bpmn:{tag}>{value}</bpmn:{tag}>")
    timer = parse_process(text.encode(), ONE_TASK.name).catalogue.timers["answer_deadline"]
    assert timer.expression == value


@pytest.mark.parametrize("script", ["import math\nx = math.floor(2.5)", "from decimal import Decimal\nx = 1",
                                    "import re, statistics\nx = 1"])
def test_imports_of_allowed_modules_deploy(script: str) -> None:
    text = RUNTIME_FAILURE.read_text().replace("d = {'present': 1}", script + "\nd = {'present': 1}")
    assert parse_process(text.encode(), RUNTIME_FAILURE.name).catalogue.process_id == "runtime_failure"


# -- encodings ----------------------------------------------------------------------------------------------
NAMED = 'name="Größe prüfen – Ärger vermeiden"'


def _declared(encoding: str | None) -> str:
    text = ONE_TASK.read_text().replace('name="Answer the question"', NAMED.replace(" – ", " - "))
    if encoding is None:
        return text.split("\n", 1)[1]
    return text.replace('encoding="UTF-8"', f'encoding="{encoding}"')


@pytest.mark.parametrize("declared,codec", [
    ("UTF-16", "utf-16"), ("UTF-16LE", "utf-16-le"), ("ISO-8859-1", "latin-1"), ("windows-1252", "cp1252"),
    ("UTF-8", "utf-8-sig"), (None, "utf-16"), (None, "utf-8-sig"),
], ids=["UTF-16 with BOM", "UTF-16LE", "Latin-1", "windows-1252", "UTF-8 with BOM", "UTF-16 BOM, no declaration",
        "UTF-8 BOM, no declaration"])
def test_a_file_in_its_declared_encoding_is_read_by_its_declaration(declared: str | None, codec: str) -> None:
    text = _declared(declared)
    source = text.encode(codec)
    assert source != text.encode("utf-8")
    parsed = parse_process(source, ONE_TASK.name)
    assert parsed.catalogue.human_tasks["answer"].name == "Größe prüfen - Ärger vermeiden"
    assert source_text(source, ONE_TASK.name) == text  # the stored text: decoded, without the BOM


def test_latin_1_bytes_under_a_utf_8_declaration_are_refused_with_the_line() -> None:
    text = _declared("UTF-8")
    with pytest.raises(ProcessDefinitionError) as caught:
        parse_process(text.encode("latin-1"), ONE_TASK.name)
    assert caught.value.line == _line(text, "Größe")
    assert "read as UTF-8" in caught.value.message and "encoding=" in caught.value.message


def test_bytes_that_do_not_fit_a_declared_single_byte_encoding_are_refused() -> None:
    # 0x81 is unassigned in windows-1252: libxml2 refuses it before Python would.
    source = _declared("windows-1252").encode("cp1252").replace(b"Gr\xf6\xdfe", b"Gr\x81e")
    with pytest.raises(ProcessDefinitionError) as caught:
        parse_process(source, ONE_TASK.name)
    assert caught.value.filename == ONE_TASK.name and caught.value.line == 11
