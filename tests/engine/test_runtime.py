"""Running instances at the engine seam, without a database: state storage, refusals, failing code."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.engine import (
    Engine,
    Instance,
    ManualClock,
    ProcessDefinition,
    ScriptError,
    TaskNotReadyError,
    UnknownTaskError,
)
from tests.support import engine_for_tests, workflow_decisions

ROOT = Path(__file__).resolve().parents[2]
FAULT = ROOT / "workflows" / "fault_handling.bpmn"
RUNTIME_FAILURE = ROOT / "tests" / "data" / "runtime_failure.bpmn"
DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}
REVIEW = {"escalation_action": "expedited", "escalation_note": "Called the engineer"}


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine, as in a worker process."""
    return engine_for_tests()


def _stored(engine: Engine, path: Path, source: bytes | None = None) -> ProcessDefinition:
    """A definition as a process version restores it: parsed, stored as JSON, restored."""
    parsed = engine.parse(source if source is not None else path.read_bytes(), path.name,
                          workflow_decisions(path.parent))
    stored = engine.dump_definition(parsed)
    return engine.load_definition((path.name, uuid.uuid4().hex), lambda: stored)


@pytest.fixture(scope="module")
def fault(engine: Engine) -> ProcessDefinition:
    """The fault-handling process."""
    return _stored(engine, FAULT)


def start_fault(engine: Engine, definition: ProcessDefinition, clock: ManualClock) -> Instance:
    """A fault case (no equipment) reported an hour ago."""
    return engine.start(definition, {
        "case_number": "FH-2026-000001", "reported_at": (clock.now() - timedelta(hours=1)).isoformat(),
        "channel": "phone", "priority": "normal", "description": "UPS alarm", "customer": None, "equipment": None})


def ready(instance: Instance) -> list[tuple[str, str]]:
    """(spec id, task id) of every ready human task."""
    return sorted((t.spec_id, t.id) for t in instance.ready_human_tasks())


def human(instance: Instance, spec: str) -> str:
    """The id of the ready human task ``spec``."""
    return next(t.id for t in instance.ready_human_tasks() if t.spec_id == spec)


def fingerprint(instance: Instance) -> tuple[Any, ...]:
    """Everything observable about an instance, to compare before and after a refused call."""
    return (instance.dump(), ready(instance), instance.waiting_timers(), instance.data, instance.is_completed)


def behaviour(instance: Instance) -> tuple[Any, ...]:
    """What an instance waits for and knows, without task ids (new tasks get new ids in every copy)."""
    return ([(t.spec_id, t.role, t.form_key, t.due_at, t.data) for t in sorted(
                instance.ready_human_tasks(), key=lambda t: t.spec_id)],
            sorted((t.spec_id, t.due_at, t.interrupting) for t in instance.waiting_timers()),
            instance.data, instance.is_completed)


# -- the spec is stored once, per process version ------------------------------------------------------
def test_instance_state_does_not_contain_the_spec(engine: Engine, fault: ProcessDefinition,
                                                  clock: ManualClock) -> None:
    definition_json = engine.dump_definition(fault)
    instance = start_fault(engine, fault, clock)
    for step in range(2):
        state_json = instance.dump()
        state = json.loads(state_json)
        assert "spec" not in state and "subprocess_specs" not in state
        assert len(state_json) * 2 < len(definition_json)
        # Script text lives in the spec; a state that carried the spec would carry it too.
        script = "removal_due_at = add_duration(reported_at, 'PT48H')"
        assert script in definition_json and script not in state_json
        if step == 0:
            instance.complete(human(instance, "diagnose_fault"), DIAGNOSIS)


def test_a_definition_is_restored_once_and_then_shared(fault: ProcessDefinition) -> None:
    engine = engine_for_tests(cache_size=1)
    stored = engine.dump_definition(fault)
    calls: list[str] = []

    def source(key: str) -> Callable[[], str]:
        return lambda: calls.append(key) or stored

    first = engine.load_definition("v1", source("v1"))
    assert engine.load_definition("v1", source("v1")) is first
    assert calls == ["v1"]
    assert engine.load_definition("v2", source("v2")) is not first  # evicts v1 (cache of one)
    assert engine.load_definition("v1", source("v1")) is not first
    assert calls == ["v1", "v2", "v1"]
    assert first.catalogue == fault.catalogue


# -- round trip ----------------------------------------------------------------------------------------
def test_state_round_trips_exactly(engine: Engine, fault: ProcessDefinition, clock: ManualClock) -> None:
    instance = start_fault(engine, fault, clock)
    loaded = engine.load(fault, instance.dump())
    assert fingerprint(loaded) == fingerprint(instance)

    # The restored instance goes on exactly as the original would have.
    for each in (instance, loaded):
        each.complete(human(each, "diagnose_fault"), DIAGNOSIS)
    assert [t.spec_id for t in loaded.ready_human_tasks()] == ["quote_maintenance_cost"]
    assert behaviour(loaded) == behaviour(instance)
    assert loaded.data["removal_due_at"] == instance.data["removal_due_at"]


def test_a_loaded_instance_fires_a_timer_that_fell_due_while_stored(engine: Engine, fault: ProcessDefinition,
                                                                    clock: ManualClock) -> None:
    instance = start_fault(engine, fault, clock)
    (timer,) = instance.waiting_timers()
    state = instance.dump()
    clock.set(timer.due_at + timedelta(seconds=1))
    loaded = engine.load(fault, state)
    loaded.run()
    assert [spec for spec, _ in ready(loaded)] == ["diagnose_fault", "review_overdue_diagnosis"]
    assert loaded.task_state(timer.task_id) == "COMPLETED"


# -- refused completions leave the instance untouched -------------------------------------------------
@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", ""], ids=["random uuid", "garbage", "empty"])
def test_completing_an_unknown_task_raises_and_changes_nothing(engine: Engine, fault: ProcessDefinition,
                                                               clock: ManualClock, task_id: str) -> None:
    instance = start_fault(engine, fault, clock)
    before = fingerprint(instance)
    with pytest.raises(UnknownTaskError):
        instance.complete(task_id, DIAGNOSIS)
    assert fingerprint(instance) == before


def _predicted_task(instance: Instance) -> str:
    """A human task the engine predicts but has not reached (LIKELY/MAYBE/FUTURE)."""
    waiting = {t.id for t in instance.ready_human_tasks()}
    for task in instance.workflow.get_tasks():
        if task.task_spec.manual and str(task.id) not in waiting:
            assert instance.task_state(str(task.id)) in ("LIKELY", "MAYBE", "FUTURE")
            return str(task.id)
    raise AssertionError("no predicted human task")


NOT_READY: dict[str, Callable[[Instance], str]] = {
    "waiting timer": lambda instance: instance.waiting_timers()[0].task_id,
    "task not reached yet": _predicted_task,
    "script task already run": lambda instance: next(
        str(t.id) for t in instance.workflow.get_tasks() if t.task_spec.name == "assess_warranty"),
}


@pytest.mark.parametrize("pick", NOT_READY.values(), ids=list(NOT_READY))
def test_completing_a_task_that_is_not_ready_raises_and_changes_nothing(
        engine: Engine, fault: ProcessDefinition, clock: ManualClock, pick: Callable[[Instance], str]) -> None:
    instance = start_fault(engine, fault, clock)
    task_id = pick(instance)
    before = fingerprint(instance)
    with pytest.raises(TaskNotReadyError):
        instance.complete(task_id, DIAGNOSIS)
    assert fingerprint(instance) == before


def test_completing_a_task_twice_raises_and_changes_nothing(engine: Engine, fault: ProcessDefinition,
                                                            clock: ManualClock) -> None:
    instance = start_fault(engine, fault, clock)
    diagnose = human(instance, "diagnose_fault")
    cancelled_timer = instance.waiting_timers()[0].task_id
    instance.complete(diagnose, DIAGNOSIS)
    instance = engine.load(fault, instance.dump())  # as the next request would see it
    before = fingerprint(instance)
    for task_id, state in ((diagnose, "COMPLETED"), (cancelled_timer, "CANCELLED")):
        assert instance.task_state(task_id) == state
        with pytest.raises(TaskNotReadyError) as caught:
            instance.complete(task_id, {**DIAGNOSIS, "fault_class": "complex"})
        assert state.lower() in str(caught.value)  # the message says what became of the task
        assert fingerprint(instance) == before


def test_submitted_and_start_data_are_copied_not_shared(engine: Engine, fault: ProcessDefinition,
                                                        clock: ManualClock) -> None:
    start = {"case_number": "FH-1", "reported_at": clock.now().isoformat(), "channel": "phone",
             "priority": "normal", "description": "d", "customer": None, "equipment": None,
             "notes": ["first"]}
    instance = engine.start(fault, start)
    start["notes"].append("changed afterwards")
    submitted = {**DIAGNOSIS, "parts_needed": False, "parts_requested": []}
    instance.complete(human(instance, "diagnose_fault"), submitted)
    submitted["diagnosis"] = "changed afterwards"
    assert instance.data["notes"] == ["first"]
    assert instance.data["diagnosis"] == DIAGNOSIS["diagnosis"]


# -- code that fails while the process runs --------------------------------------------------------------
RUNTIME_FAILURES = {
    "missing key": "d['missing'] == 1",
    "forbidden attribute by name": "getattr(d, '__class__') is None",
    "forbidden builtin": "open('/etc/passwd') is None",
    "division by zero": "d['present'] / 0 == 1",
}


@pytest.mark.parametrize("condition", RUNTIME_FAILURES.values(), ids=list(RUNTIME_FAILURES))
def test_a_condition_failing_at_run_time_raises_script_error(engine: Engine, clock: ManualClock,
                                                             condition: str) -> None:
    source = RUNTIME_FAILURE.read_text().replace("d['missing'] == 1", condition).encode()
    definition = _stored(engine, RUNTIME_FAILURE, source)  # the deploy-time check lets it through
    instance = engine.start(definition, {"reported_at": clock.now().isoformat()})
    state = instance.dump()
    review = human(instance, "review")

    with pytest.raises(ScriptError) as caught:
        instance.complete(review, REVIEW)
    assert caught.value.element_id == "check"
    assert condition in str(caught.value)

    # The failed instance is discarded; the stored state is what the next request loads, unchanged.
    reloaded = engine.load(definition, state)
    assert reloaded.dump() == state
    assert [spec for spec, _ in ready(reloaded)] == ["review"]
    with pytest.raises(ScriptError):
        reloaded.complete(review, REVIEW)


def test_the_same_process_with_a_sound_condition_completes(engine: Engine, clock: ManualClock) -> None:
    # Control for the test above: only the condition is to blame.
    source = RUNTIME_FAILURE.read_text().replace("d['missing'] == 1", "d['present'] == 1").encode()
    definition = _stored(engine, RUNTIME_FAILURE, source)
    instance = engine.start(definition, {"reported_at": clock.now().isoformat()})
    instance.complete(human(instance, "review"), REVIEW)
    assert instance.is_completed
    assert instance.task_state(next(str(t.id) for t in instance.workflow.get_tasks()
                                    if t.task_spec.name == "end_missing")) == "COMPLETED"


@pytest.mark.parametrize("script,reason", [
    ("d = {'present': 1}\nx = d['absent']", "absent"),
    ("d = {'present': 1}\nf = open('/etc/passwd')", "open"),
], ids=["missing key", "open a file"])
def test_a_script_failing_at_start_raises_script_error(engine: Engine, clock: ManualClock, script: str,
                                                       reason: str) -> None:
    source = RUNTIME_FAILURE.read_text().replace("d = {'present': 1}", script).encode()
    definition = _stored(engine, RUNTIME_FAILURE, source)
    with pytest.raises(ScriptError) as caught:
        engine.start(definition, {"reported_at": clock.now().isoformat()})
    assert caught.value.element_id == "prepare"
    assert reason in str(caught.value)


def test_an_import_that_slipped_past_the_deploy_check_is_still_refused_when_it_runs(
        engine: Engine, clock: ManualClock) -> None:
    # Deploy refuses `import os` (tests/engine/test_parser.py); the environment must refuse it on its own too,
    # for a spec that never went through the check (one stored before it existed).
    definition = _stored(engine, RUNTIME_FAILURE)
    definition.spec.task_specs["prepare"].script = "import os\nd = {'present': 1}"
    with pytest.raises(ScriptError) as caught:
        engine.start(definition, {"reported_at": clock.now().isoformat()})
    assert caught.value.element_id == "prepare"
    assert "import of 'os' is not allowed" in str(caught.value)


# -- timer values that only exist at run time ------------------------------------------------------------
TIMER_FROM_DATA = ROOT / "tests" / "data" / "deploy_timer_from_data.bpmn"
# SpiffWorkflow lets each of these through as a plain ValueError, TypeError, AttributeError, OverflowError,
# IndexError or bare Exception from its timer parsing.
BAD_TIMER_VALUES = {
    "date: not a date": ("timeDate", "not a date"),
    "date: a duration": ("timeDate", "PT24H"),
    "date: a float": ("timeDate", 1e308),
    "date: past year 9999 in UTC": ("timeDate", "9999-12-31T23:00:00-05:00"),
    "duration: not a duration": ("timeDuration", "not a date"),
    "duration: overflows": ("timeDuration", "P99999999D"),
    "duration: a float": ("timeDuration", 1e308),
    "cycle: R alone": ("timeCycle", "R"),
    "cycle: not a cycle": ("timeCycle", "not a date"),
}


@pytest.mark.parametrize("tag,value", BAD_TIMER_VALUES.values(), ids=list(BAD_TIMER_VALUES))
def test_a_timer_value_the_engine_cannot_use_raises_script_error_at_start(
        engine: Engine, clock: ManualClock, tag: str, value: Any) -> None:
    text = TIMER_FROM_DATA.read_text().replace("<bpmn:timeDate>first_deadline</bpmn:timeDate>",
                                               f"<bpmn:{tag}>first_deadline</bpmn:{tag}>")
    definition = _stored(engine, TIMER_FROM_DATA, text.encode())
    with pytest.raises(ScriptError) as caught:
        engine.start(definition, {"first_deadline": value})
    assert caught.value.element_id == "first_deadline_event"
    assert "first_deadline" in str(caught.value) and "not a usable" in str(caught.value)


def test_a_timer_value_the_engine_cannot_use_raises_script_error_on_complete(
        engine: Engine, clock: ManualClock) -> None:
    definition = _stored(engine, TIMER_FROM_DATA)
    instance = engine.start(definition, {"first_deadline": (clock.now() + timedelta(hours=1)).isoformat(),
                                         "second_deadline": "P99999999D"})
    state = instance.dump()
    with pytest.raises(ScriptError) as caught:
        instance.complete(human(instance, "first"), REVIEW)
    assert caught.value.element_id == "second_deadline_event"
    assert "OverflowError" in str(caught.value)
    assert engine.load(definition, state).dump() == state  # what was stored is untouched


def test_a_timer_value_the_engine_cannot_use_raises_script_error_when_a_timer_fires(
        engine: Engine, clock: ManualClock) -> None:
    definition = _stored(engine, TIMER_FROM_DATA)
    instance = engine.start(definition, {"first_deadline": (clock.now() + timedelta(hours=1)).isoformat(),
                                         "late_wait": "soon"})
    loaded = engine.load(definition, instance.dump())
    clock.advance(timedelta(hours=2))
    with pytest.raises(ScriptError) as caught:
        loaded.run()
    assert caught.value.element_id == "late_wait_event"
    assert "Invalid duration" in str(caught.value)


def test_a_timer_value_from_data_that_the_engine_can_use_still_works(engine: Engine, clock: ManualClock) -> None:
    # Control for the three tests above: the same process with sound values waits on its timers.
    definition = _stored(engine, TIMER_FROM_DATA)
    first_due = clock.now() + timedelta(hours=1)
    instance = engine.start(definition, {"first_deadline": first_due.isoformat(), "second_deadline": "PT4H"})
    assert [t.due_at for t in instance.waiting_timers()] == [first_due]
    instance.complete(human(instance, "first"), REVIEW)
    assert [t.due_at for t in instance.waiting_timers()] == [clock.now() + timedelta(hours=4)]
