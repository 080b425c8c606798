"""Reading BPMN: XML safety, XSD validation, SpiffWorkflow parsing and a catalogue of what the app needs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser

from .errors import ProcessDefinitionError
from .restricted import ScriptCompileError, check_expression, check_script

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS, "spiffworkflow": SPIFF_NS}

# No entity expansion, no network: a deployed file is untrusted input.
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False,
                              huge_tree=False)

_FLOW_CONTAINERS = ("process", "subProcess", "transaction", "adHocSubProcess")


@dataclass(frozen=True)
class HumanTaskInfo:
    """What the app needs to know about one user or manual task of a process."""

    id: str
    name: str
    role: str | None
    form_key: str | None
    lane: str | None
    documentation: str = ""


@dataclass(frozen=True)
class TimerInfo:
    """A timer event of a process: where it sits, what kind it is and its expression."""

    id: str
    name: str
    kind: str  # "date" | "duration" | "cycle"
    expression: str
    placement: str  # "boundary" | "intermediate" | "start"
    attached_to: str | None = None
    interrupting: bool = True


@dataclass(frozen=True)
class Catalogue:
    """The app's index of a process: its human tasks, timers and lanes, read from the XML once."""

    process_id: str
    name: str
    documentation: str
    human_tasks: dict[str, HumanTaskInfo] = field(default_factory=dict)
    timers: dict[str, TimerInfo] = field(default_factory=dict)
    lanes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data for storage with the process version."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalogue:
        """Rebuild a catalogue stored with ``to_dict``."""
        return cls(
            process_id=data["process_id"], name=data["name"], documentation=data.get("documentation", ""),
            human_tasks={k: HumanTaskInfo(**v) for k, v in data.get("human_tasks", {}).items()},
            timers={k: TimerInfo(**v) for k, v in data.get("timers", {}).items()},
            lanes=dict(data.get("lanes", {})),
        )

    @property
    def start_timer(self) -> TimerInfo | None:
        """The process's timer start event, if it is started by a schedule."""
        return next((t for t in self.timers.values() if t.placement == "start"), None)


@dataclass(frozen=True)
class ParsedProcess:
    """A parsed, checked process: SpiffWorkflow specs plus the catalogue."""

    catalogue: Catalogue
    spec: Any
    subprocess_specs: dict[str, Any]


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _text(node: etree._Element | None) -> str:
    return (node.text or "").strip() if node is not None else ""


def _fail(message: str, filename: str, node: etree._Element | None = None,
          line: int | None = None) -> ProcessDefinitionError:
    element_id = node.get("id") if node is not None else None
    if line is None and node is not None:
        line = node.sourceline
    return ProcessDefinitionError(message, filename=filename, element_id=element_id, line=line)


def read_xml(source: bytes, filename: str) -> etree._ElementTree:
    """Parse bytes as XML, turning syntax errors into a ProcessDefinitionError with the line."""
    if not source.strip():
        raise ProcessDefinitionError("the file is empty", filename=filename)
    try:
        root = etree.fromstring(source, parser=_XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise ProcessDefinitionError(f"not well-formed XML: {exc.msg}", filename=filename,
                                     line=exc.lineno) from None
    return etree.ElementTree(root)


def _enclosing_activity(node: etree._Element) -> etree._Element | None:
    parent = node.getparent()
    while parent is not None and _local(parent.tag) not in _FLOW_CONTAINERS:
        parent = parent.getparent()
    return parent


def _lanes(process: etree._Element) -> tuple[dict[str, str], dict[str, str]]:
    """Return (lane id -> lane name, flow node id -> lane id)."""
    names: dict[str, str] = {}
    members: dict[str, str] = {}
    for lane in process.iterfind(".//bpmn:lane", NS):
        names[lane.get("id")] = lane.get("name") or lane.get("id")
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            members[_text(ref)] = lane.get("id")
    return names, members


def _lane_of(node: etree._Element, members: dict[str, str]) -> str | None:
    current: etree._Element | None = node
    while current is not None:
        lane = members.get(current.get("id") or "")
        if lane:
            return lane
        current = _enclosing_activity(current)
        if current is not None and _local(current.tag) == "process":
            return None
    return None


def _role_from_lane(lane_id: str | None) -> str | None:
    if not lane_id:
        return None
    return lane_id[5:] if lane_id.startswith("lane_") else lane_id


def _timer(event: etree._Element, definition: etree._Element, filename: str) -> TimerInfo:
    kinds = {"timeDate": "date", "timeDuration": "duration", "timeCycle": "cycle"}
    found = [(kinds[_local(c.tag)], c) for c in definition if _local(c.tag) in kinds]
    if len(found) != 1:
        raise _fail("a timer needs exactly one of timeDate, timeDuration or timeCycle", filename, event)
    kind, expr_node = found[0]
    expression = _text(expr_node)
    if not expression:
        raise _fail(f"the timer's {_local(expr_node.tag)} expression is empty", filename, event)
    tag = _local(event.tag)
    placement = {"boundaryEvent": "boundary", "startEvent": "start"}.get(tag, "intermediate")
    return TimerInfo(
        id=event.get("id"), name=event.get("name") or event.get("id"), kind=kind, expression=expression,
        placement=placement, attached_to=event.get("attachedToRef"),
        interrupting=event.get("cancelActivity", "true") != "false"
        if placement == "boundary" else event.get("isInterrupting", "true") != "false",
    )


def _code_to_check(process: etree._Element) -> Iterator[tuple[etree._Element, str, str, int | None]]:
    """Yield (element, kind, source, line) for every expression and script in the process."""
    for cond in process.iterfind(".//bpmn:conditionExpression", NS):
        yield cond.getparent(), "expression", _text(cond), cond.sourceline
    for tag in ("completionCondition", "loopCardinality", "loopCondition"):
        for node in process.iterfind(f".//bpmn:{tag}", NS):
            yield node.getparent().getparent(), "expression", _text(node), node.sourceline
    for timer in process.iterfind(".//bpmn:timerEventDefinition", NS):
        for expr in timer:
            yield timer.getparent(), "expression", _text(expr), expr.sourceline
    for script in process.iterfind(".//bpmn:scriptTask/bpmn:script", NS):
        yield script.getparent(), "script", script.text or "", script.sourceline
    for tag in ("preScript", "postScript"):
        for script in process.iterfind(f".//spiffworkflow:{tag}", NS):
            owner = script
            while owner is not None and not owner.get("id"):
                owner = owner.getparent()
            yield owner, "script", script.text or "", script.sourceline


def catalogue_of(tree: etree._ElementTree, filename: str) -> Catalogue:
    """Read the catalogue of the one executable process in ``tree`` and check its code compiles."""
    processes = tree.getroot().findall("bpmn:process", NS)
    executable = [p for p in processes if p.get("isExecutable", "false") == "true"] or processes
    if len(executable) != 1:
        raise ProcessDefinitionError(
            f"expected exactly one executable process, found {len(executable)}", filename=filename)
    process = executable[0]
    lane_names, members = _lanes(process)
    human: dict[str, HumanTaskInfo] = {}
    for node in process.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask"):
        lane = _lane_of(node, members)
        groups = [g.strip() for g in (node.get(f"{{{CAMUNDA_NS}}}candidateGroups") or "").split(",")
                  if g.strip()]
        form_key = node.get(f"{{{CAMUNDA_NS}}}formKey") or None
        if _local(node.tag) == "userTask" and not form_key:
            raise _fail("a user task needs camunda:formKey naming its record form", filename, node)
        human[node.get("id")] = HumanTaskInfo(
            id=node.get("id"), name=node.get("name") or node.get("id"),
            role=groups[0] if groups else _role_from_lane(lane), form_key=form_key, lane=lane,
            documentation=_text(node.find("bpmn:documentation", NS)),
        )
    timers: dict[str, TimerInfo] = {}
    for definition in process.iterfind(".//bpmn:timerEventDefinition", NS):
        info = _timer(definition.getparent(), definition, filename)
        timers[info.id] = info
    for owner, kind, source, line in _code_to_check(process):
        if not source.strip():
            raise _fail(f"empty {kind}", filename, owner, line)
        try:
            (check_expression if kind == "expression" else check_script)(source)
        except ScriptCompileError as exc:
            at = line + (exc.line - 1) if (line and exc.line and kind == "script") else line
            raise _fail(f"{kind} {source.strip()[:80]!r} is not allowed: {exc.message}",
                        filename, owner, at) from None
    return Catalogue(
        process_id=process.get("id"), name=process.get("name") or process.get("id"),
        documentation=_text(process.find("bpmn:documentation", NS)),
        human_tasks=human, timers=timers, lanes=lane_names,
    )


def parse_process(source: bytes, filename: str) -> ParsedProcess:
    """Validate and parse one BPMN file; every problem becomes a ProcessDefinitionError."""
    tree = read_xml(source, filename)
    if _local(tree.getroot().tag) != "definitions" or etree.QName(tree.getroot()).namespace != BPMN_NS:
        raise ProcessDefinitionError("the root element is not bpmn:definitions", filename=filename,
                                     line=tree.getroot().sourceline)
    parser = SpiffBpmnParser(validator=VALIDATOR)
    try:
        parser.add_bpmn_xml(tree, filename=filename)
        catalogue = catalogue_of(tree, filename)
        spec = parser.get_spec(catalogue.process_id)
        subprocess_specs = parser.get_subprocess_specs(catalogue.process_id)
        if catalogue.start_timer is not None:
            # The app starts one case per occurrence from a calendar-aware schedule read from this
            # timer; left in the spec, SpiffWorkflow would run every (drifting) cycle inside one case.
            spec.task_specs[catalogue.start_timer.id].event_definition = NoneEventDefinition()
    except ValidationException as exc:
        element = getattr(exc, "id", "") or None
        line = getattr(exc, "line_number", "") or None
        if element and not line:
            found = tree.getroot().xpath("//*[@id=$id]", id=element)
            line = found[0].sourceline if found else None
        message = str(exc.args[0]) if exc.args else str(exc)
        raise ProcessDefinitionError(message, filename=filename, element_id=element,
                                     line=int(line) if line else None) from None
    except SpiffWorkflowException as exc:
        raise ProcessDefinitionError(str(exc), filename=filename) from None
    return ParsedProcess(catalogue=catalogue, spec=spec, subprocess_specs=subprocess_specs)
