"""The engine seam: start, load, advance and store process instances; the only SpiffWorkflow runtime."""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask
from SpiffWorkflow.util.task import TaskState

from . import timesource
from .decisions import DecisionTable, UniqueBusinessRuleTaskConverter, parse_decision
from .errors import ProcessDefinitionError, ScriptError, TaskNotReadyError, UnknownTaskError
from .operations import REGISTRY, OperationFailed, OperationRegistry, call_operation
from .parser import Catalogue, HumanTaskInfo, ParsedProcess, TimerInfo, parse_process, process_id_of
from .restricted import Budget, RestrictedEnvironment

timesource.install()


class _StateOnlyWorkflowConverter(BpmnWorkflowConverter):
    """Serializes an instance without its spec: the spec is stored once per process version."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: Any = None,  # type: ignore[override]
                  subprocess_specs: dict[str, Any] | None = None) -> BpmnWorkflow:
        if spec is None:
            raise ValueError("a stored instance needs its process version's spec to load")
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


@dataclass(frozen=True)
class ProcessDefinition:
    """One deployed process version as the engine runs it: specs plus the catalogue."""

    catalogue: Catalogue
    spec: Any
    subprocess_specs: dict[str, Any]

    @property
    def process_id(self) -> str:
        """The BPMN process id."""
        return self.catalogue.process_id

    def timers_leading_to(self, task_spec: str) -> tuple[str, ...]:
        """The timer events (BPMN ids) whose firing leads straight to the human task ``task_spec``, through
        gateways and script tasks but no other human task: the deadlines an escalation task is about."""
        specs = {**self.spec.task_specs}
        for sub in self.subprocess_specs.values():
            specs.update(sub.task_specs)
        start = specs.get(task_spec)
        found: list[str] = []
        seen: set[str] = set()
        pending = list(start.inputs) if start is not None else []
        while pending:
            spec = pending.pop()
            if spec.name in seen:
                continue
            seen.add(spec.name)
            if isinstance(getattr(spec, "event_definition", None), TimerEventDefinition):
                found.append(spec.name)
            elif not getattr(spec, "manual", False):
                pending.extend(spec.inputs)
        return tuple(sorted(found))


@dataclass(frozen=True)
class HumanTask:
    """A ready user or manual task waiting for a person."""

    id: str
    spec_id: str
    name: str
    role: str | None
    form_key: str | None
    lane: str | None
    data: dict[str, Any]
    due_at: datetime | None = None
    roles: tuple[str, ...] = ()  # every role that may work it; ``role`` is the first


@dataclass(frozen=True)
class WaitingTimer:
    """A timer event with the due time the engine fixed for it; ``state`` WAITING until it fires
    (then COMPLETED, or CANCELLED when its activity ended first)."""

    task_id: str
    spec_id: str
    name: str
    kind: str
    due_at: datetime
    attached_task_id: str | None
    interrupting: bool
    state: str = "WAITING"

    @property
    def fired(self) -> bool:
        """True once the timer fired (its task ran or is about to)."""
        return self.state in ("READY", "STARTED", "COMPLETED")


def _parse_due(value: Any) -> datetime | None:
    if isinstance(value, dict):  # cycle timers keep {"cycles", "next", "duration"}
        value = value.get("next")
    if not value:
        return None
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class Instance:
    """A loaded process instance; not thread-safe: one writer per case holds it."""

    def __init__(self, engine: Engine, definition: ProcessDefinition, workflow: BpmnWorkflow) -> None:
        self.engine = engine
        self.definition = definition
        self.workflow = workflow

    # -- reading ---------------------------------------------------------------------------
    @property
    def is_completed(self) -> bool:
        """True when the whole process has ended."""
        return bool(self.workflow.is_completed())

    @property
    def data(self) -> dict[str, Any]:
        """The process data: the last completed task's data (the workflow's own data once ended)."""
        if self.workflow.is_completed() and self.workflow.data:
            return dict(self.workflow.data)
        last = self.workflow.last_task
        return dict(last.data) if last is not None else {}

    def _enclosing_task_ids(self, task: Any) -> set[str]:
        """The task itself and every subprocess task it runs inside."""
        ids = {str(task.id)}
        workflow = task.workflow
        while getattr(workflow, "parent_task_id", None) is not None:
            ids.add(str(workflow.parent_task_id))
            parent = self.workflow.get_task_from_id(workflow.parent_task_id)
            workflow = parent.workflow
        return ids

    def _human(self, task: Any, timers: list[WaitingTimer] | None = None) -> HumanTask:
        info = self.definition.catalogue.human_tasks.get(task.task_spec.name) or HumanTaskInfo(
            id=task.task_spec.name, name=task.task_spec.bpmn_name or task.task_spec.name,
            role=None, form_key=None, lane=getattr(task.task_spec, "lane", None))
        enclosing = self._enclosing_task_ids(task)
        # A deadline that already fired (non-interrupting) still dates the task: it is overdue.
        dues = [t.due_at for t in (timers or []) if t.attached_task_id in enclosing
                and (t.state == "WAITING" or t.fired)]
        return HumanTask(id=str(task.id), spec_id=task.task_spec.name, name=info.name, role=info.role,
                         form_key=info.form_key, lane=info.lane, data=copy.deepcopy(task.data),
                         due_at=min(dues) if dues else None, roles=info.roles)

    def ready_human_tasks(self, timers: list[WaitingTimer] | None = None) -> list[HumanTask]:
        """Every human task that can be worked on now, with the earliest deadline that guards it, fired
        or not (pass ``timers`` from ``timer_events()`` when you have them already)."""
        timers = self.timer_events() if timers is None else timers
        return [self._human(t, timers) for t in self.workflow.get_tasks(state=TaskState.READY, manual=True)]

    def waiting_timers(self) -> list[WaitingTimer]:
        """Every timer event waiting to fire, with its fixed due time."""
        return [t for t in self.timer_events() if t.state == "WAITING"]

    def timer_events(self) -> list[WaitingTimer]:
        """Every timer event that has a due time, whatever its state: waiting, fired (the due time stays
        in the task's internal data after it completes) or cancelled."""
        timers = []
        catalogue = self.definition.catalogue.timers
        states = TaskState.WAITING | TaskState.READY | TaskState.STARTED | TaskState.COMPLETED | TaskState.CANCELLED
        for task in self.workflow.get_tasks(state=states):
            event = getattr(task.task_spec, "event_definition", None)
            if not isinstance(event, TimerEventDefinition):
                continue
            due = _parse_due(task._get_internal_data("event_value"))
            if due is None:
                continue
            info: TimerInfo | None = catalogue.get(task.task_spec.name)
            state = TaskState.get_name(task.state)
            if state != "WAITING" and info is not None and info.placement == "start":
                continue  # a schedule's start event: the schedule fired it, not a deadline of the case
            attached = None
            if info and info.attached_to and task.parent is not None:
                # A boundary event and its activity are siblings under a hidden split task.
                attached = next((str(s.id) for s in task.parent.children
                                 if s.task_spec.name == info.attached_to), None)
            timers.append(WaitingTimer(
                task_id=str(task.id), spec_id=task.task_spec.name,
                name=info.name if info else task.task_spec.name, kind=info.kind if info else "date",
                due_at=due, attached_task_id=attached, interrupting=info.interrupting if info else True,
                state=state))
        return timers

    def element_states(self) -> dict[str, str]:
        """Where the case stands on its diagram: {BPMN element id: "done" | "active" | "waiting"}.

        ``active``: a human task ready for someone, a timer waiting for its due time; ``waiting``: an
        element reached that waits on something else (a subprocess running its inside, a join waiting for
        another branch, a message); ``done``: completed at least once. An element in a loop that is both
        done and active again shows as active. Elements not reached (future, cancelled) are left out, and
        so are the engine's hidden helper tasks (they have no BPMN id)."""
        rank = {"done": 0, "waiting": 1, "active": 2}
        states: dict[str, str] = {}
        for task in self.workflow.get_tasks():
            element = getattr(task.task_spec, "bpmn_id", None)
            state = _element_state(task)
            if element and state and rank[state] > rank.get(states.get(element, ""), -1):
                states[element] = state
        return states

    def task_state(self, task_id: str) -> str | None:
        """The state name (READY, COMPLETED, CANCELLED...) of a task, or None if it is gone."""
        task = self._find(task_id)
        return TaskState.get_name(task.state) if task is not None else None

    def task_data(self, task_id: str) -> dict[str, Any]:
        """A copy of the data a task sees (empty if the task is gone)."""
        task = self._find(task_id)
        return copy.deepcopy(dict(task.data)) if task is not None else {}

    def _find(self, task_id: str) -> Any:
        try:
            return self.workflow.get_task_from_id(UUID(task_id))
        except (ValueError, TypeError, WorkflowException, KeyError):
            return None

    # -- changing --------------------------------------------------------------------------
    def run(self) -> None:
        """Run the engine until it waits for people or time, firing timers already due."""
        try:
            self.workflow.do_engine_steps()
            self.workflow.refresh_timers()
            self.workflow.do_engine_steps()
            # A due time the store could not read is refused here, with the step that made it.
            self.waiting_timers()
        except OperationFailed as exc:  # a service task's operation refused: its own error, unchanged
            raise exc.error from None
        except Exception as exc:  # noqa: BLE001 - see _script_error
            raise _script_error(exc) from exc

    def complete(self, task_id: str, data: dict[str, Any]) -> None:
        """Complete a ready human task with the submitted data and run on."""
        task = self._find(task_id)
        if task is None:
            raise UnknownTaskError(f"task {task_id} is not part of this case")
        # run() does not check state itself (ENGINE_NOTES): a cancelled or future task must not run.
        if task.state != TaskState.READY or not task.task_spec.manual:
            raise TaskNotReadyError(
                f"task '{task.task_spec.bpmn_name or task.task_spec.name}' is "
                f"{TaskState.get_name(task.state).lower()}, no longer ready")
        # Replace values rather than share nested objects with other tasks' data (ENGINE_NOTES).
        try:
            task.data.update(copy.deepcopy(data))
            task.run()
        except OperationFailed as exc:
            raise exc.error from None
        except Exception as exc:  # noqa: BLE001 - see _script_error
            raise _script_error(exc) from exc
        self.run()

    def dump(self) -> str:
        """Serialize the instance state (without the spec) to JSON."""
        return self.engine._serializer.serialize_json(self.workflow)


def _element_state(task: Any) -> str | None:
    """One engine task's share of its element's state on the diagram (see Instance.element_states)."""
    if task.state == TaskState.COMPLETED:
        return "done"
    if task.state == TaskState.READY:
        return "active"
    if task.state == TaskState.WAITING:
        timer = isinstance(getattr(task.task_spec, "event_definition", None), TimerEventDefinition)
        return "active" if timer else "waiting"
    if task.state == TaskState.STARTED:
        return "waiting"  # a subprocess (or call activity) whose inside is at work
    return None  # FUTURE, LIKELY, MAYBE: not reached; CANCELLED: the path not taken after all


def _failing_task(exc: BaseException) -> Any:
    """The engine task a failure happened in: the one SpiffWorkflow names, else the innermost task that
    the failing code was working on (its timer parsing raises plain ValueError, TypeError...)."""
    task = getattr(exc, "task", None)
    if task is not None:
        return task
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("my_task")
        if candidate is not None and hasattr(candidate, "task_spec"):
            task = candidate
        tb = tb.tb_next
    return task


class _ScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's script engine with service tasks calling the registered operations."""

    def __init__(self, *, environment: RestrictedEnvironment, operations: OperationRegistry) -> None:
        super().__init__(environment=environment)
        self.operations = operations

    def call_service(self, task: Any, **kwargs: Any) -> str:
        """Run a service task's operation (SpiffWorkflow's own would call the environment, which has none)."""
        return call_operation(self.operations, operation_name=kwargs["operation_name"],
                              operation_params=kwargs.get("operation_params") or {},
                              element_id=getattr(task.task_spec, "bpmn_id", None))


def _script_error(exc: BaseException) -> ScriptError:
    """Turn any failure while the engine ran into a ScriptError naming the element.

    Beyond its own exceptions, SpiffWorkflow lets through whatever a timer's value makes its parsing
    raise (ValueError for 'not a date', OverflowError for P99999999D, AttributeError for 1e308, bare
    Exception('Invalid duration'), IndexError, TypeError): each means the instance cannot go on, and the
    caller discards it, exactly as for a failing script."""
    task = _failing_task(exc)
    element = task.task_spec.name if task is not None else None
    if isinstance(exc, SpiffWorkflowException):
        # SpiffWorkflow raises its wrapper inside an except block: the real reason is the context.
        cause = exc.__cause__ or exc.__context__ or getattr(exc, "error", None)
        detail = str(exc)
        # SpiffWorkflow often quotes the cause already ("ScriptBudgetError:script ran longer..."): once is enough.
        if cause is not None and not (str(cause) and str(cause) in detail and type(cause).__name__ in detail):
            detail = f"{detail}: {type(cause).__name__}: {cause}" if str(cause) else f"{detail}: {type(cause).__name__}"
        return ScriptError(detail, element_id=element)
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    event = getattr(getattr(task, "task_spec", None), "event_definition", None)
    if isinstance(event, TimerEventDefinition):
        value = task._get_internal_data("event_value")
        shown = f" {value!r}" if value is not None else ""
        return ScriptError(f"the timer's expression {event.expression!r} gave a value{shown} that is not a usable "
                           f"{_TIMER_WORDS.get(type(event).__name__, 'time')}: {reason}", element_id=element)
    return ScriptError(f"the process failed: {reason}", element_id=element)


_TIMER_WORDS = {"TimeDateEventDefinition": "ISO-8601 date and time with a UTC offset",
                "DurationTimerEventDefinition": "ISO-8601 duration",
                "CycleTimerEventDefinition": "ISO-8601 cycle R[n]/[start/]period"}


class Engine:
    """Parser, serializer, restricted script environment and spec cache: the one way to run BPMN."""

    def __init__(self, *, functions: dict[str, Callable[..., Any]] | None = None,
                 cache_size: int = 64, budget: Budget | None = None,
                 operations: OperationRegistry | None = None) -> None:
        registry = BpmnWorkflowSerializer.configure(
            {**SPIFF_CONFIG, BpmnWorkflow: _StateOnlyWorkflowConverter,
             BusinessRuleTask: UniqueBusinessRuleTaskConverter})
        self._serializer = BpmnWorkflowSerializer(registry=registry)
        self._registry = registry
        self.operations = operations if operations is not None else REGISTRY
        self.script_engine = _ScriptEngine(environment=RestrictedEnvironment(functions=functions, budget=budget),
                                           operations=self.operations)
        self._cache: OrderedDict[Any, ProcessDefinition] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    # -- definitions -----------------------------------------------------------------------
    def parse(self, source: bytes, filename: str, decisions: Iterable[DecisionTable] = (),
              processes: Iterable[tuple[str, bytes]] = ()) -> ProcessDefinition:
        """Validate and parse a BPMN file with the decision tables and the other BPMN files (file name, bytes)
        deployed with it (raises ProcessDefinitionError; a business rule task calling a decision not among
        them, or a call activity calling a process not among them, too)."""
        library: dict[str, tuple[str, bytes]] = {}
        twice: set[str] = set()
        for other_name, other in processes:
            if other_name == filename:
                continue
            try:
                other_id = process_id_of(other, other_name)
            except ProcessDefinitionError:
                continue  # a broken file is refused by its own check, with its own message
            if other_id in library:
                twice.add(other_id)  # ambiguous: not callable (a deployment refuses the package anyway)
            library[other_id] = (other_name, other)
        for other_id in twice:
            del library[other_id]
        tables: dict[str, DecisionTable] = {}
        for table in decisions:
            if table.decision_id in tables:
                raise ProcessDefinitionError(
                    f"decision '{table.decision_id}' is defined in {tables[table.decision_id].filename} and in "
                    f"{table.filename}", filename=table.filename, element_id=table.decision_id)
            tables[table.decision_id] = table
        parsed: ParsedProcess = parse_process(source, filename, tables, self.operations, library)
        return ProcessDefinition(parsed.catalogue, parsed.spec, parsed.subprocess_specs)

    @staticmethod
    def parse_decision(source: bytes, filename: str) -> DecisionTable:
        """Validate a DMN file holding one decision table, every cell compiled in the restricted environment
        (raises ProcessDefinitionError naming the decision, the rule and the line)."""
        return parse_decision(source, filename)

    def dump_definition(self, definition: ProcessDefinition) -> str:
        """Serialize a definition's specs and catalogue, to store once per process version."""
        return json.dumps({
            "spec": self._registry.convert(definition.spec),
            "subprocess_specs": {k: self._registry.convert(v) for k, v in definition.subprocess_specs.items()},
            "catalogue": definition.catalogue.to_dict(),
        })

    def load_definition(self, key: Any, stored: Callable[[], str]) -> ProcessDefinition:
        """Return the definition under ``key``, calling ``stored`` for its JSON only on a cache miss."""
        with self._cache_lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        data = json.loads(stored())
        definition = ProcessDefinition(
            catalogue=Catalogue.from_dict(data["catalogue"]),
            spec=self._registry.restore(data["spec"]),
            subprocess_specs={k: self._registry.restore(v) for k, v in data["subprocess_specs"].items()},
        )
        with self._cache_lock:
            self._cache[key] = definition
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return definition

    def clear_cache(self) -> None:
        """Forget every cached definition (tests that empty the database reuse version ids)."""
        with self._cache_lock:
            self._cache.clear()

    # -- instances -------------------------------------------------------------------------
    def start(self, definition: ProcessDefinition, data: dict[str, Any]) -> Instance:
        """Start an instance with ``data`` as its initial variables and run to the first wait."""
        try:
            workflow = BpmnWorkflow(definition.spec, definition.subprocess_specs, script_engine=self.script_engine)
            start = workflow.get_tasks(state=TaskState.READY)[0]
            start.data.update(copy.deepcopy(data))
        except Exception as exc:  # noqa: BLE001 - start data that cannot be copied, a spec without a start
            raise _script_error(exc) from exc
        instance = Instance(self, definition, workflow)
        instance.run()
        return instance

    def load(self, definition: ProcessDefinition, state: str) -> Instance:
        """Restore an instance from its stored state."""
        dct = json.loads(state)
        self._serializer.migrate(dct)
        workflow = self._serializer.from_dict(dct, spec=definition.spec,
                                              subprocess_specs=definition.subprocess_specs)
        workflow.script_engine = self.script_engine
        return Instance(self, definition, workflow)
