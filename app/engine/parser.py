"""Reading BPMN: XML safety, XSD validation, SpiffWorkflow parsing and a catalogue of what the app needs."""

from __future__ import annotations

import ast
import codecs
import re
import textwrap
from collections.abc import Collection, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR

from .clock import now
from .decisions import DecisionParser, DecisionTable
from .errors import ProcessDefinitionError
from .operations import REGISTRY, OperationRegistry
from .restricted import ALLOWED_MODULES, ScriptCompileError, check_expression, check_script

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS, "spiffworkflow": SPIFF_NS}

# No entity expansion, no network: a deployed file is untrusted input.
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False,
                              huge_tree=False)

_FLOW_CONTAINERS = ("process", "subProcess", "transaction", "adHocSubProcess")

# A byte order mark decides the encoding before any declaration (XML 1.0, appendix F); lxml reads it,
# but docinfo still reports the declared (or default) encoding, so it is looked at here too.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
         (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))

# A timer further away than this is a typo (P99999999D), not a deadline; it would also overflow dates.
MAX_TIMER_SPAN = timedelta(days=3653)  # ten years
# The repetitions of a cycle end up in integer columns (the schedule of a recurring process).
MAX_CYCLE_REPETITIONS = 2**31 - 1
_NUMBER = r"\d+(?:[.,]\d+)?"
_ISO_DURATION = re.compile(
    rf"P(?:(?P<years>{_NUMBER})Y)?(?:(?P<months>{_NUMBER})M)?(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?",
    re.ASCII)
# Upper bounds of each unit in days, to measure a duration before anything computes with it.
_DAYS_PER_UNIT = {"years": 366, "months": 31, "weeks": 7, "days": 1, "hours": 1 / 24, "minutes": 1 / 1440,
                  "seconds": 1 / 86400}
_CYCLE = re.compile(r"R(?P<count>\d*)/(?:(?P<start>[^/]+)/)?(?P<period>[^/]+)", re.ASCII)


@dataclass(frozen=True)
class HumanTaskInfo:
    """What the app needs to know about one user or manual task of a process."""

    id: str
    name: str
    role: str | None  # the first of ``roles``: the queue it is shown in first
    form_key: str | None
    lane: str | None
    documentation: str = ""
    roles: tuple[str, ...] = ()  # every candidate group (camunda:candidateGroups), else the lane's role

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HumanTaskInfo:
        """Rebuild one stored with a catalogue; catalogues stored before ``roles`` hold only ``role``."""
        values = dict(data)
        role = values.get("role")
        values["roles"] = tuple(values.get("roles") or ((role,) if role else ()))
        return cls(**values)


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
class ServiceTaskInfo:
    """A service task: the operation it asks the system for and the parameters it passes."""

    id: str
    name: str
    operation: str
    parameters: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServiceTaskInfo:
        """Rebuild one stored with a catalogue."""
        return cls(id=data["id"], name=data["name"], operation=data["operation"],
                   parameters=tuple(data.get("parameters") or ()))


# Settings a process may carry in its extension properties (camunda:properties on bpmn:process): what
# the generic code shows and does for its cases. Other property names are refused, so a typo is found at
# deploy. Values are text; PROCESS_SETTINGS says what each means.
PROCESS_SETTINGS = {
    "case_prefix": "the prefix of its case numbers: 1 to 4 capital letters (FH-2026-000123)",
    "summary_fields": "the data fields its case summary shows, in order, separated by commas",
    "documents": "the documents made when a case closes, separated by commas (processing_report...)",
    "startable": "true or false: whether people open cases on it (false for a process only called by others)",
}
# The documents this installation can make (app.documents registers them at start-up): a process naming
# another in its ``documents`` setting is refused at deploy. Empty (nothing registered): any name passes.
DOCUMENT_KINDS: set[str] = set()
_CASE_PREFIX = re.compile(r"[A-Z]{1,4}\Z")
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,99}\Z")


@dataclass(frozen=True)
class Catalogue:
    """The app's index of a process: its human tasks, timers and lanes, read from the XML once."""

    process_id: str
    name: str
    documentation: str
    human_tasks: dict[str, HumanTaskInfo] = field(default_factory=dict)
    timers: dict[str, TimerInfo] = field(default_factory=dict)
    lanes: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, str] = field(default_factory=dict)  # business rule task id -> decision id it runs
    service_tasks: dict[str, ServiceTaskInfo] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # PROCESS_SETTINGS read from the process
    calls: dict[str, str] = field(default_factory=dict)  # call activity id -> process id it calls (its own only)
    called: tuple[str, ...] = ()  # every process it runs through call activities, directly or not, sorted

    @property
    def startable(self) -> bool:
        """Whether people open cases on the process (``startable`` setting; a called-only process says false)."""
        return self.settings.get("startable", "true") == "true"

    @property
    def case_prefix(self) -> str | None:
        """The prefix of the process's case numbers, when it sets one."""
        return self.settings.get("case_prefix")

    @property
    def summary_fields(self) -> tuple[str, ...]:
        """The data fields the case summary shows, in order."""
        return tuple(f.strip() for f in self.settings.get("summary_fields", "").split(",") if f.strip())

    @property
    def documents(self) -> tuple[str, ...]:
        """The documents made when a case closes."""
        return tuple(d.strip() for d in self.settings.get("documents", "").split(",") if d.strip())

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data for storage with the process version."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalogue:
        """Rebuild a catalogue stored with ``to_dict``."""
        return cls(
            process_id=data["process_id"], name=data["name"], documentation=data.get("documentation", ""),
            human_tasks={k: HumanTaskInfo.from_dict(v) for k, v in data.get("human_tasks", {}).items()},
            timers={k: TimerInfo(**v) for k, v in data.get("timers", {}).items()},
            lanes=dict(data.get("lanes", {})),
            decisions=dict(data.get("decisions", {})),
            service_tasks={k: ServiceTaskInfo.from_dict(v) for k, v in data.get("service_tasks", {}).items()},
            settings=dict(data.get("settings", {})),
            calls=dict(data.get("calls", {})),
            called=tuple(data.get("called", ())),
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


def _bom_encoding(source: bytes) -> str | None:
    return next((name for bom, name in _BOMS if source.startswith(bom)), None)


def _declared_encoding(source: bytes) -> str:
    """The encoding named by the BOM or the XML declaration, without parsing (for messages)."""
    found = _bom_encoding(source)
    if found:
        return found
    match = re.match(rb"<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']", source.lstrip())
    return match.group(1).decode("ascii") if match else "UTF-8"


def _undecodable_line(source: bytes, encoding: str) -> int | None:
    """The line of the first byte that ``encoding`` cannot decode (None if all decode or it is unknown)."""
    try:
        codec = codecs.lookup(encoding).name
        source.decode(codec)
    except LookupError:
        return None
    except UnicodeDecodeError as exc:
        return source[:exc.start].decode(codec, errors="replace").count("\n") + 1
    return None


def read_xml(source: bytes, filename: str) -> etree._ElementTree:
    """Parse bytes as XML, turning syntax errors into a ProcessDefinitionError with the line."""
    if not source.strip():
        raise ProcessDefinitionError("the file is empty", filename=filename)
    try:
        root = etree.fromstring(source, parser=_XML_PARSER)
    except etree.XMLSyntaxError as exc:
        message, line = f"not well-formed XML: {exc.msg}", exc.lineno
        if "encoding" in (exc.msg or "").lower() or "utf-8" in (exc.msg or "").lower():
            encoding = _declared_encoding(source)
            message += (f" (the file is read as {encoding}: save it in that encoding, or "
                        "declare the one it is in, e.g. <?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>)")
            # libxml2 converts in chunks and may report the chunk's first line: find the byte ourselves.
            line = _undecodable_line(source, encoding) or line
        raise ProcessDefinitionError(message, filename=filename, line=line) from None
    tree = etree.ElementTree(root)
    source_text(source, filename, tree)  # a file whose text cannot be stored is refused with the parse
    return tree


def source_text(source: bytes, filename: str, tree: etree._ElementTree | None = None) -> str:
    """The text of a BPMN file, decoded as its BOM or XML declaration says (UTF-8 without either).

    The text is what is stored as the deployed source; it keeps its XML declaration, so to parse it
    again, encode it in the declared encoding first (or strip the declaration)."""
    if tree is None:
        return source_text(source, filename, read_xml(source, filename))
    encoding = _bom_encoding(source) or tree.docinfo.encoding or "UTF-8"
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise ProcessDefinitionError(f"the file's encoding {encoding!r} is not supported here; save it as UTF-8",
                                     filename=filename, line=1) from None
    try:
        text = source.decode(codec)
    except UnicodeDecodeError as exc:
        raise ProcessDefinitionError(f"the file is not valid {encoding} (byte {exc.start}: {exc.reason}); save "
                                     "it in its declared encoding or declare the one it is in",
                                     filename=filename, line=_undecodable_line(source, codec)) from None
    return text.removeprefix("\ufeff")


def element_line(source: bytes, element_id: str) -> int | None:
    """The line on which the element with ``element_id`` starts, or None (for messages after parsing)."""
    try:
        root = etree.fromstring(source, parser=_XML_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    found = root.xpath("//*[@id=$id]", id=element_id)
    return int(found[0].sourceline) if found and found[0].sourceline else None


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


def _duration_span(text: str) -> timedelta:
    """Measure an ISO-8601 duration (at most ``MAX_TIMER_SPAN``) as the engine will, from now."""
    match = _ISO_DURATION.fullmatch(text.upper())
    if match is None or text.upper() in ("P", "PT") or text.upper().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO-8601 duration such as 'PT24H', 'P2D' or 'P1M'")
    parts = {unit: float(value.replace(",", ".")) for unit, value in match.groupdict().items() if value}
    if sum(value * _DAYS_PER_UNIT[unit] for unit, value in parts.items()) > MAX_TIMER_SPAN.days:
        raise ValueError(f"duration {text!r} is longer than {MAX_TIMER_SPAN.days // 365} years")
    start = now()
    try:  # then exactly as SpiffWorkflow will read it: months and years from today's calendar
        span = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(text), start)
        span = (start + span) - start  # overflows here, not in a case, if the end is past year 9999
    except Exception as exc:  # noqa: BLE001 - its parser raises bare Exception, ValueError, OverflowError...
        raise ValueError(f"duration {text!r} cannot be read: {exc}") from None
    if span > MAX_TIMER_SPAN:
        raise ValueError(f"duration {text!r} is longer than {MAX_TIMER_SPAN.days // 365} years")
    return span


def _aware_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date and time such as '2026-03-01T09:00:00+00:00'") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        # SpiffWorkflow would read it in the server's zone: a deadline must not depend on that.
        raise ValueError(f"{text!r} has no UTC offset; write it with one, such as +00:00 or +08:00")
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is out of the range of dates") from None
    return moment


def check_timer_value(kind: str, value: Any) -> None:
    """Raise ValueError unless ``value`` is what a timer of ``kind`` needs, read as the engine reads it:
    date: an ISO-8601 date-time with a UTC offset; duration: an ISO-8601 duration of at most ten years;
    cycle: ``R[n]/[start/]period`` with such a start and a period that is not zero."""
    if not isinstance(value, str):
        raise ValueError(f"a {kind} timer needs text, not {type(value).__name__} {str(value)[:40]}")
    if kind == "date":
        if value.upper().startswith("P") or "W" in value.upper():
            raise ValueError(f"{value!r} is not a date and time such as '2026-03-01T09:00:00+00:00'")
        _aware_datetime(value)
        return
    if kind == "duration":
        _duration_span(value)
        return
    match = _CYCLE.fullmatch(value.upper())
    if match is None:
        raise ValueError(f"{value!r} is not a cycle R[n]/[start/]period such as 'R/2026-01-01T00:00:00+00:00/P1D' "
                         "or 'R3/PT1H'")
    if match.group("count") and int(match.group("count")) > MAX_CYCLE_REPETITIONS:
        raise ValueError(f"cycle {value!r} repeats more than {MAX_CYCLE_REPETITIONS} times")
    if match.group("start"):
        _aware_datetime(value.split("/")[1])
    if _duration_span(match.group("period")) <= timedelta(0):
        raise ValueError(f"cycle {value!r} has a zero period")
    try:
        TimerEventDefinition.parse_iso_recurring_interval(value)
    except Exception as exc:  # noqa: BLE001 - as above
        raise ValueError(f"cycle {value!r} cannot be read: {exc}") from None


def _constant(expression: str) -> tuple[bool, Any]:
    """(True, value) for an expression that is a plain literal (no names, no operations), else (False, None)."""
    try:
        return True, ast.literal_eval(expression.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _check_timer(info: TimerInfo, event: etree._Element, filename: str) -> None:
    """Refuse a timer whose expression is a constant the engine could not use (checked at run time otherwise)."""
    if info.placement == "start":
        return  # read by the app's calendar schedule, which checks it itself when the version is stored
    is_constant, value = _constant(info.expression)
    if not is_constant:
        return
    tag = {"date": "timeDate", "duration": "timeDuration", "cycle": "timeCycle"}[info.kind]
    node = event.find(f"bpmn:timerEventDefinition/bpmn:{tag}", NS)
    try:
        check_timer_value(info.kind, value)
    except ValueError as exc:
        raise _fail(f"the timer's {tag} {info.expression.strip()[:80]} is not usable: {exc}", filename, event,
                    node.sourceline if node is not None else None) from None


def _check_imports(source: str) -> tuple[str, int] | None:
    """(message, line in the script) for the first import the restricted environment would refuse."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None  # it compiled under RestrictedPython, so this does not happen
    allowed = ", ".join(sorted(ALLOWED_MODULES))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_MODULES:
                    return (f"import of {alias.name!r} is not allowed (scripts may import only {allowed})",
                            node.lineno)
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.level or module not in ALLOWED_MODULES:
                return f"import from {module!r} is not allowed (scripts may import only {allowed})", node.lineno
            for alias in node.names:
                if alias.name == "*" or alias.name.startswith("_") or alias.name in ALLOWED_MODULES[module]:
                    return f"import of {module}.{alias.name} is not allowed", node.lineno
    return None


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
    for parameter in process.iterfind(".//spiffworkflow:serviceTaskOperator/spiffworkflow:parameters/"
                                      "spiffworkflow:parameter", NS):
        owner = parameter
        while owner is not None and _local(owner.tag) != "serviceTask":
            owner = owner.getparent()
        yield owner, "expression", parameter.get("value") or "", parameter.sourceline
    for tag in ("preScript", "postScript"):
        for script in process.iterfind(f".//spiffworkflow:{tag}", NS):
            owner = script
            while owner is not None and not owner.get("id"):
                owner = owner.getparent()
            yield owner, "script", script.text or "", script.sourceline


def _business_rules(process: etree._Element, filename: str, available: Mapping[str, DecisionTable]) -> dict[str, str]:
    """{task id: decision id} of the process's business rule tasks, each naming a decision of the package."""
    found: dict[str, str] = {}
    for node in process.iter(f"{{{BPMN_NS}}}businessRuleTask"):
        called = node.find("bpmn:extensionElements/spiffworkflow:calledDecisionId", NS)
        decision_id = _text(called)
        if not decision_id:
            hint = (" (camunda:decisionRef is not read here: write "
                    "<spiffworkflow:calledDecisionId> in its extensionElements)"
                    if node.get(f"{{{CAMUNDA_NS}}}decisionRef") else "")
            raise _fail(f"business rule task '{node.get('id')}' names no decision: it needs "
                        f"spiffworkflow:calledDecisionId{hint}", filename, node)
        if decision_id not in available:
            known = ", ".join(sorted(available)) or "none"
            raise _fail(f"business rule task '{node.get('id')}' calls decision '{decision_id}', which is not "
                        f"deployed with it (decisions in the package: {known})", filename, node,
                        called.sourceline if called is not None else None)
        found[node.get("id")] = decision_id
    return found


def _service_tasks(process: etree._Element, filename: str, operations: OperationRegistry) -> dict[str, ServiceTaskInfo]:
    """{task id: info} of the process's service tasks, each calling an installed operation with the
    parameters it takes."""
    found: dict[str, ServiceTaskInfo] = {}
    for node in process.iter(f"{{{BPMN_NS}}}serviceTask"):
        operator = node.find("bpmn:extensionElements/spiffworkflow:serviceTaskOperator", NS)
        name = operator.get("id") if operator is not None else None
        if not name:
            raise _fail(f"service task '{node.get('id')}' names no operation: it needs "
                        "<spiffworkflow:serviceTaskOperator id=\"...\"> in its extensionElements (installed: "
                        f"{', '.join(operations.names()) or 'none'})", filename, node)
        operation = operations.get(name)
        if operation is None:
            raise _fail(f"service task '{node.get('id')}' calls the operation '{name}', which is not installed "
                        f"(installed: {', '.join(operations.names()) or 'none'})", filename, node, operator.sourceline)
        parameters = [p.get("id") or "" for p in operator.iterfind("spiffworkflow:parameters/spiffworkflow:parameter",
                                                                   NS)]
        problem = operation.check_parameters(set(parameters))
        if problem is None and len(set(parameters)) != len(parameters):
            problem = "a parameter is given twice"
        if problem:
            raise _fail(f"service task '{node.get('id')}' cannot call '{name}': {problem}", filename, node,
                        operator.sourceline)
        found[node.get("id")] = ServiceTaskInfo(id=node.get("id"), name=node.get("name") or node.get("id"),
                                                operation=name, parameters=tuple(parameters))
    return found


def _settings(process: etree._Element, filename: str) -> dict[str, str]:
    """The PROCESS_SETTINGS of the process (camunda:properties), each checked."""
    found: dict[str, str] = {}
    for prop in process.iterfind("bpmn:extensionElements/camunda:properties/camunda:property", NS):
        name, value = prop.get("name") or "", (prop.get("value") or "").strip()
        if name not in PROCESS_SETTINGS:
            raise _fail(f"the process property {name!r} is not a setting (settings: "
                        f"{', '.join(f'{k}: {v}' for k, v in PROCESS_SETTINGS.items())})", filename, prop)
        if name in found:
            raise _fail(f"the process property {name!r} is given twice", filename, prop)
        if name == "case_prefix" and not _CASE_PREFIX.match(value):
            raise _fail(f"case_prefix {value!r} must be 1 to 4 capital letters", filename, prop)
        if name == "startable" and value not in ("true", "false"):
            raise _fail(f"startable {value!r} must be true or false", filename, prop)
        if name in ("summary_fields", "documents"):
            bad = [part for part in value.split(",") if not _FIELD_NAME.match(part.strip())]
            if bad or not value:
                raise _fail(f"{name} {value!r} must be names separated by commas", filename, prop)
        if name == "documents" and DOCUMENT_KINDS:
            unknown = [part.strip() for part in value.split(",") if part.strip() not in DOCUMENT_KINDS]
            if unknown:
                raise _fail(f"documents names {', '.join(map(repr, unknown))}, which the system cannot make "
                            f"(documents: {', '.join(sorted(DOCUMENT_KINDS))})", filename, prop)
        found[name] = value
    return found


def _executable_process(tree: etree._ElementTree, filename: str) -> etree._Element:
    processes = tree.getroot().findall("bpmn:process", NS)
    executable = [p for p in processes if p.get("isExecutable", "false") == "true"] or processes
    if len(executable) != 1:
        raise ProcessDefinitionError(
            f"expected exactly one executable process, found {len(executable)}", filename=filename)
    return executable[0]


def process_id_of(source: bytes, filename: str) -> str:
    """The id of the one executable process of a BPMN file (to find the processes a package offers)."""
    return str(_executable_process(read_xml(source, filename), filename).get("id") or "")


def _call_activities(process: etree._Element, filename: str, callable_ids: Collection[str]) -> dict[str, str]:
    """{call activity id: process id} of the process's call activities, each calling a process of the package."""
    found: dict[str, str] = {}
    own = process.get("id")
    for node in process.iter(f"{{{BPMN_NS}}}callActivity"):
        called = (node.get("calledElement") or "").strip()
        if not called:
            raise _fail(f"call activity '{node.get('id')}' names no process: it needs calledElement", filename, node)
        if called == own:
            raise _fail(f"call activity '{node.get('id')}' calls its own process '{own}'", filename, node)
        if called not in callable_ids:
            known = ", ".join(sorted(set(callable_ids) - {own})) or "none"
            raise _fail(f"call activity '{node.get('id')}' calls process '{called}', which is not deployed with it "
                        f"(other processes in the package: {known})", filename, node)
        found[node.get("id")] = called
    return found


def catalogue_of(tree: etree._ElementTree, filename: str,
                 decisions: Mapping[str, DecisionTable] | None = None,
                 operations: OperationRegistry | None = None,
                 callable_ids: Collection[str] = ()) -> Catalogue:
    """Read the catalogue of the one executable process in ``tree`` and check its code compiles; every
    business rule task must call one of ``decisions`` (decision id -> table deployed with the process), every
    call activity one of ``callable_ids`` (the other processes of the package)."""
    process = _executable_process(tree, filename)
    lane_names, members = _lanes(process)
    human: dict[str, HumanTaskInfo] = {}
    for node in process.iter(f"{{{BPMN_NS}}}userTask", f"{{{BPMN_NS}}}manualTask"):
        lane = _lane_of(node, members)
        groups = list(dict.fromkeys(g.strip() for g in (node.get(f"{{{CAMUNDA_NS}}}candidateGroups") or "")
                                    .split(",") if g.strip()))  # in order, each once
        if not groups and (lane_role := _role_from_lane(lane)):
            groups = [lane_role]
        form_key = node.get(f"{{{CAMUNDA_NS}}}formKey") or None
        if _local(node.tag) == "userTask" and not form_key:
            raise _fail("a user task needs camunda:formKey naming its record form", filename, node)
        human[node.get("id")] = HumanTaskInfo(
            id=node.get("id"), name=node.get("name") or node.get("id"),
            role=groups[0] if groups else None, form_key=form_key, lane=lane,
            documentation=_text(node.find("bpmn:documentation", NS)), roles=tuple(groups),
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
        # An import compiles; the environment refuses it only when the script runs, in a case.
        refused = _check_imports(source) if kind == "script" else None
        if refused is not None:
            message, at = refused
            raise _fail(f"script {source.strip()[:80]!r}: {message}", filename, owner,
                        line + at - 1 if line else None)
    for definition in process.iterfind(".//bpmn:timerEventDefinition", NS):
        _check_timer(timers[definition.getparent().get("id")], definition.getparent(), filename)
    return Catalogue(
        process_id=process.get("id"), name=process.get("name") or process.get("id"),
        documentation=_text(process.find("bpmn:documentation", NS)),
        human_tasks=human, timers=timers, lanes=lane_names,
        decisions=_business_rules(process, filename, decisions or {}),
        service_tasks=_service_tasks(process, filename, operations if operations is not None else REGISTRY),
        settings=_settings(process, filename),
        calls=_call_activities(process, filename, callable_ids),
    )


def _merge_called(catalogue: Catalogue, called: list[tuple[str, bytes, Catalogue]]) -> Catalogue:
    """The caller's catalogue with the human tasks, timers, business rule and service tasks of the processes
    it calls: the engine runs their tasks inside the caller's case, under their own element ids, so an id
    used by two of them is refused."""
    owners: dict[str, str] = {}
    merged: dict[str, dict[str, Any]] = {"human_tasks": {}, "timers": {}, "decisions": {}, "service_tasks": {}}
    lanes = dict(catalogue.lanes)
    for filename, source, part in [("", b"", catalogue), *called]:
        if part is not catalogue:
            start = part.start_timer
            if start is not None:
                raise ProcessDefinitionError(
                    f"process '{part.process_id}' is called by '{catalogue.process_id}' but has a timer start event "
                    "(a called process starts when its call activity is reached)",
                    filename=filename, element_id=start.id, line=element_line(source, start.id))
        for kind, entries in merged.items():
            for element_id, entry in getattr(part, kind).items():
                owner = owners.setdefault(element_id, part.process_id)
                if owner != part.process_id:
                    raise ProcessDefinitionError(
                        f"element id '{element_id}' of process '{part.process_id}' is also used in process "
                        f"'{owner}', which calls it or is called with it: the tasks of a called process run "
                        "inside the caller's case, so their ids must differ", filename=filename,
                        element_id=element_id, line=element_line(source, element_id))
                entries[element_id] = entry
        for lane_id, name in part.lanes.items():
            lanes.setdefault(lane_id, name)
    return replace(catalogue, human_tasks=merged["human_tasks"], timers=merged["timers"],
                   decisions=merged["decisions"], service_tasks=merged["service_tasks"], lanes=lanes,
                   called=tuple(sorted(part.process_id for _, _, part in called)))


def parse_process(source: bytes, filename: str,
                  decisions: Mapping[str, DecisionTable] | None = None,
                  operations: OperationRegistry | None = None,
                  processes: Mapping[str, tuple[str, bytes]] | None = None) -> ParsedProcess:
    """Validate and parse one BPMN file with the decision tables it may call (decision id -> table, see
    ``decisions.parse_decision``) and the other processes of its package its call activities may call
    (process id -> (file name, BPMN bytes)); every problem becomes a ProcessDefinitionError.

    The called processes' specs go into ``subprocess_specs`` (stored with the caller's version, so a running
    case keeps the called process as deployed) and their human tasks and timers into the caller's catalogue."""
    library = dict(processes or {})
    tree = read_xml(source, filename)
    if _local(tree.getroot().tag) != "definitions" or etree.QName(tree.getroot()).namespace != BPMN_NS:
        raise ProcessDefinitionError("the root element is not bpmn:definitions", filename=filename,
                                     line=tree.getroot().sourceline)
    parser = DecisionParser(validator=VALIDATOR)
    try:
        parser.add_bpmn_xml(tree, filename=filename)
        catalogue = catalogue_of(tree, filename, decisions, operations, library)
        library.pop(catalogue.process_id, None)
        called: list[tuple[str, bytes, Catalogue]] = []
        pending, seen = list(catalogue.calls.values()), {catalogue.process_id}
        while pending:  # every process reached through call activities, each once (a cycle ends here too)
            process_id = pending.pop(0)
            if process_id in seen:
                continue
            seen.add(process_id)
            called_file, called_source = library[process_id]
            called_tree = read_xml(called_source, called_file)
            parser.add_bpmn_xml(called_tree, filename=called_file)
            part = catalogue_of(called_tree, called_file, decisions, operations,
                                {*library, catalogue.process_id})
            called.append((called_file, called_source, part))
            pending.extend(part.calls.values())
        catalogue = _merge_called(catalogue, called)
        for decision_id in sorted(set(catalogue.decisions.values())):
            table = (decisions or {})[decision_id]
            parser.add_dmn_xml(table.root, filename=table.filename)  # checked by parse_decision already
        spec = parser.get_spec(catalogue.process_id)
        subprocess_specs = parser.get_subprocess_specs(catalogue.process_id)
        if catalogue.start_timer is not None:
            # The app starts one case per occurrence from a calendar-aware schedule read from this
            # timer; left in the spec, SpiffWorkflow would run every (drifting) cycle inside one case.
            spec.task_specs[catalogue.start_timer.id].event_definition = NoneEventDefinition()
    except ValidationException as exc:
        element = getattr(exc, "id", "") or None
        line = getattr(exc, "line_number", "") or None
        in_file = getattr(exc, "file_name", "") or filename  # a called process's file, or this one
        if element and not line:
            other = next((s for f, s in (processes or {}).values() if f == in_file and in_file != filename), None)
            line = element_line(other, element) if other is not None else None
            if other is None:
                found = tree.getroot().xpath("//*[@id=$id]", id=element)
                line = found[0].sourceline if found else None
        message = str(exc.args[0]) if exc.args else str(exc)
        raise ProcessDefinitionError(message, filename=in_file, element_id=element,
                                     line=int(line) if line else None) from None
    except SpiffWorkflowException as exc:
        spec = getattr(exc, "task_spec", None)
        element = getattr(spec, "bpmn_id", None) or getattr(spec, "name", None)
        found = tree.getroot().xpath("//*[@id=$id]", id=element) if element else []
        raise ProcessDefinitionError(str(exc), filename=filename, element_id=element if found else None,
                                     line=found[0].sourceline if found else None) from None
    except ProcessDefinitionError:
        raise
    except Exception as exc:  # noqa: BLE001 - the file is untrusted: whatever the library trips over refuses it
        raise ProcessDefinitionError(f"the file cannot be read as a process ({type(exc).__name__}: {exc})",
                                     filename=filename) from None
    return ParsedProcess(catalogue=catalogue, spec=spec, subprocess_specs=subprocess_specs)
