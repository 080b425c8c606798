"""The engine seam: the only package that imports SpiffWorkflow."""

from __future__ import annotations

import threading

from .budget import Budget, ScriptBudgetError
from .clock import (
    Clock,
    ManualClock,
    OffsetClock,
    SystemClock,
    ensure_utc,
    get_clock,
    now,
    parse_duration,
    set_clock,
)
from .decisions import DecisionTable
from .errors import (
    EngineError,
    ProcessDefinitionError,
    ScriptError,
    TaskNotReadyError,
    UnknownTaskError,
)
from .parser import Catalogue, HumanTaskInfo, TimerInfo
from .runtime import Engine, HumanTask, Instance, ProcessDefinition, WaitingTimer

__all__ = [
    "Budget", "ScriptBudgetError", "configure_script_budget",
    "Catalogue", "Clock", "DecisionTable", "Engine", "EngineError", "HumanTask", "HumanTaskInfo", "Instance",
    "ManualClock", "OffsetClock",
    "ProcessDefinition", "ProcessDefinitionError", "ScriptError", "SystemClock", "TaskNotReadyError",
    "TimerInfo", "UnknownTaskError", "WaitingTimer", "ensure_utc", "get_clock", "get_engine", "now", "parse_duration",
    "set_clock",
]

_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """Return the process-wide engine (parsed specs are shared; instances are not)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = Engine()
    return _engine


def configure_script_budget(*, time_ms: int, size: int) -> Budget:
    """Set the time and size budget every expression and script of the process-wide engine runs on."""
    budget = Budget(time_ms=time_ms, size=size)
    get_engine().script_engine.environment.budget = budget
    return budget
