"""The warranty rule (service plan 5.7-5.9), workflows/warranty.dmn: a test per row, through the table alone
and through the whole fault-handling process."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from app.engine import DecisionTable, Engine, Instance, ManualClock, ProcessDefinition, set_clock
from tests.engine.test_decisions import bpmn
from tests.support import engine_for_tests, workflow_decisions

ROOT = Path(__file__).resolve().parents[2]
WARRANTY = ROOT / "workflows" / "warranty.dmn"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CAUSES = [v["value"] for c in json.loads((ROOT / "forms" / "fault_diagnosis.form.json").read_text())["components"]
          if c.get("key") == "cause" for v in c["values"]]
IN_WARRANTY = {"id": 1, "warranty_ends_on": "2099-12-31"}
OUT_OF_WARRANTY = {"id": 2, "warranty_ends_on": "2020-01-01"}
DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False, "parts_requested": []}

# Every row of the table: (rule id, under_warranty, cause) -> (free_of_charge, charge_basis, charge_reason).
ROWS = {
    ("warranty_ended", False, "quality"): (False, "quote", "warranty ended"),
    ("covered_quality", True, "quality"): (True, "warranty", "repaired free under the warranty: a product quality "
                                                             "problem"),
    ("covered_natural_damage", True, "natural_damage"): (True, "warranty", "repaired free under the warranty: "
                                                                           "natural damage"),
    ("covered_design", True, "design"): (True, "warranty", "repaired free under the warranty: unreasonable "
                                                           "technical design"),
    ("not_covered_wear", True, "wear"): (False, "quote", "cause not covered by the warranty: wear"),
    ("not_covered_misuse", True, "misuse"): (False, "quote", "cause not covered by the warranty: improper use"),
    ("not_covered_external", True, "external"): (False, "quote", "cause not covered by the warranty: an external "
                                                                 "cause"),
    ("not_covered_unknown", True, "unknown"): (False, "quote", "cause not covered by the warranty: an unknown cause"),
}


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine, as in a worker process."""
    return engine_for_tests()


@pytest.fixture(scope="module")
def table(engine: Engine) -> DecisionTable:
    """workflows/warranty.dmn, checked."""
    return engine.parse_decision(WARRANTY.read_bytes(), WARRANTY.name)


@pytest.fixture(scope="module")
def rule_task(engine: Engine, table: DecisionTable) -> ProcessDefinition:
    """A process that only runs the warranty table."""
    parsed = engine.parse(bpmn("warranty_coverage"), "decide.bpmn", [table])
    stored = engine.dump_definition(parsed)
    return engine.load_definition(("warranty", uuid.uuid4().hex), lambda: stored)


@pytest.fixture(scope="module")
def fault(engine: Engine) -> ProcessDefinition:
    """workflows/fault_handling.bpmn with the tables of workflows/, stored and restored as a version."""
    parsed = engine.parse((ROOT / "workflows" / "fault_handling.bpmn").read_bytes(), "fault_handling.bpmn",
                          workflow_decisions())
    stored = engine.dump_definition(parsed)
    return engine.load_definition(("fault_handling", uuid.uuid4().hex), lambda: stored)


@pytest.fixture
def clock() -> Iterator[ManualClock]:
    """A stopped clock at T0."""
    manual = ManualClock(T0)
    previous = set_clock(manual)
    yield manual
    set_clock(previous)


def decide(engine: Engine, definition: ProcessDefinition, under_warranty: bool, cause: str) -> tuple[Any, ...]:
    """(free_of_charge, charge_basis, charge_reason) as the table decides them."""
    data = engine.start(definition, {"under_warranty": under_warranty, "cause": cause}).data
    return data["free_of_charge"], data["charge_basis"], data["charge_reason"]


def test_the_rows_tested_are_the_rows_of_the_table() -> None:
    ids = [r.get("id") for r in etree.parse(str(WARRANTY)).getroot().iter("{*}rule")]
    assert sorted(ids) == sorted(rule_id for rule_id, _, _ in ROWS)


@pytest.mark.parametrize(("key", "expected"), list(ROWS.items()), ids=[k[0] for k in ROWS])
def test_each_row_through_the_table(engine: Engine, rule_task: ProcessDefinition, key: tuple[str, bool, str],
                                    expected: tuple[Any, ...]) -> None:
    _, under_warranty, cause = key
    assert decide(engine, rule_task, under_warranty, cause) == expected


@pytest.mark.parametrize(("under_warranty", "cause"), list(itertools.product([True, False], CAUSES)))
def test_every_combination_matches_exactly_one_row(engine: Engine, rule_task: ProcessDefinition,
                                                   under_warranty: bool, cause: str) -> None:
    # The engine refuses a UNIQUE table that matches none or several rules; so a result is one row.
    free, basis, reason = decide(engine, rule_task, under_warranty, cause)
    assert free is (under_warranty and cause in ("quality", "natural_damage", "design"))
    row = next(value for (_, warranty, row_cause), value in ROWS.items()
               if warranty == under_warranty and (row_cause == cause or not under_warranty))
    assert (free, basis, reason) == row


# -- through the whole process -------------------------------------------------------------------------
def diagnosed(engine: Engine, fault: ProcessDefinition, *, equipment: dict[str, Any], cause: str) -> Instance:
    """A fault case opened at T0 on ``equipment``, its diagnosis recorded with ``cause``, stored and loaded."""
    instance = engine.start(fault, {
        "case_number": "FH-2026-000001", "reported_at": T0.isoformat(), "channel": "phone",
        "priority": "normal", "description": "UPS alarm", "customer": None, "equipment": equipment})
    (task,) = instance.ready_human_tasks()
    instance.complete(task.id, {**DIAGNOSIS, "cause": cause})
    return engine.load(fault, instance.dump())


@pytest.mark.parametrize(("key", "expected"), list(ROWS.items()), ids=[k[0] for k in ROWS])
def test_each_row_through_the_fault_process(engine: Engine, fault: ProcessDefinition, clock: ManualClock,
                                            key: tuple[str, bool, str], expected: tuple[Any, ...]) -> None:
    _, under_warranty, cause = key
    instance = diagnosed(engine, fault, equipment=IN_WARRANTY if under_warranty else OUT_OF_WARRANTY, cause=cause)
    free, basis, reason = expected
    ready = {t.spec_id: t for t in instance.ready_human_tasks()}
    if free:
        assert "quote_maintenance_cost" not in ready and "repair_remotely" in ready
    else:
        assert list(ready) == ["quote_maintenance_cost"]
        assert ready["quote_maintenance_cost"].data["charge_reason"] == reason
    assert (instance.data["free_of_charge"], instance.data["charge_basis"], instance.data["charge_reason"]) == expected


def test_in_warranty_quality_is_free_without_a_quote(engine: Engine, fault: ProcessDefinition,
                                                     clock: ManualClock) -> None:
    instance = diagnosed(engine, fault, equipment=IN_WARRANTY, cause="quality")
    assert [t.spec_id for t in instance.ready_human_tasks()] == ["repair_remotely"]
    assert instance.data["free_of_charge"] is True and instance.data["charge_basis"] == "warranty"


def test_out_of_warranty_asks_for_a_quote_saying_why(engine: Engine, fault: ProcessDefinition,
                                                     clock: ManualClock) -> None:
    instance = diagnosed(engine, fault, equipment=OUT_OF_WARRANTY, cause="quality")
    (quote,) = instance.ready_human_tasks()
    assert quote.spec_id == "quote_maintenance_cost" and quote.form_key == "maintenance_quote"
    assert quote.data["charge_reason"] == "warranty ended"
    # The quote path still runs on: accepted, the repair follows.
    instance.complete(quote.id, {"quote_amount": 900.0, "quote_currency": "CNY", "quote_accepted": "yes",
                                 "quote_note": None})
    assert [t.spec_id for t in instance.ready_human_tasks()] == ["repair_remotely"]
    assert instance.data["charge_reason"] == "warranty ended"


def test_in_warranty_wear_asks_for_a_quote_cause_not_covered(engine: Engine, fault: ProcessDefinition,
                                                            clock: ManualClock) -> None:
    instance = diagnosed(engine, fault, equipment=IN_WARRANTY, cause="wear")
    (quote,) = instance.ready_human_tasks()
    assert quote.spec_id == "quote_maintenance_cost"
    assert quote.data["charge_reason"] == "cause not covered by the warranty: wear"


def test_no_equipment_means_no_warranty(engine: Engine, fault: ProcessDefinition, clock: ManualClock) -> None:
    instance = engine.start(fault, {
        "case_number": "FH-2026-000002", "reported_at": T0.isoformat(), "channel": "phone",
        "priority": "normal", "description": "UPS alarm", "customer": None, "equipment": None})
    (task,) = instance.ready_human_tasks()
    instance.complete(task.id, DIAGNOSIS)
    assert instance.data["charge_reason"] == "warranty ended"
