"""Shared fixtures of the workflow path tests: one engine, and the shipped processes parsed as a package."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.engine import Engine, ManualClock, ProcessDefinition, set_clock
from tests.support import engine_for_tests

ROOT = Path(__file__).resolve().parents[2]
NOTICE = datetime(2026, 5, 4, 2, 0, tzinfo=UTC)


def parse_shipped(engine: Engine, process_id: str) -> ProcessDefinition:
    """A process of workflows/, parsed with the other files of the package (the ones it calls), stored and
    restored as a deployed version is."""
    package = [(path.name, path.read_bytes()) for path in (ROOT / "workflows").glob("*.bpmn")]
    parsed = engine.parse((ROOT / "workflows" / f"{process_id}.bpmn").read_bytes(), f"{process_id}.bpmn", (), package)
    stored = engine.dump_definition(parsed)
    return engine.load_definition((process_id, "package"), lambda: stored)


@pytest.fixture(scope="module")
def engine() -> Engine:
    """One engine for the module, like a worker process."""
    return engine_for_tests()


@pytest.fixture(scope="module")
def judgement(engine: Engine) -> ProcessDefinition:
    """The shared quality judgement."""
    return parse_shipped(engine, "quality_judgement")


@pytest.fixture(scope="module")
def complaints(engine: Engine) -> ProcessDefinition:
    """Complaint handling, with the judgement it calls."""
    return parse_shipped(engine, "complaint_handling")


@pytest.fixture(scope="module")
def consultation(engine: Engine) -> ProcessDefinition:
    """Consultation."""
    return parse_shipped(engine, "consultation")


@pytest.fixture
def notice_clock() -> Iterator[ManualClock]:
    """A stopped clock an hour after the customer's notice."""
    manual = ManualClock(NOTICE.replace(hour=3))
    previous = set_clock(manual)
    yield manual
    set_clock(previous)
