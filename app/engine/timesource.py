"""Points SpiffWorkflow's timer arithmetic at the system clock instead of the wall clock."""

from __future__ import annotations

from datetime import datetime, tzinfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _timer_module

from .clock import get_clock


class _ClockDatetime(datetime):
    """``datetime`` whose ``now()`` reads the system clock; everything else is unchanged."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _ClockDatetime:
        current = get_clock().now()
        if tz is not None:
            current = current.astimezone(tz)
        return cls.combine(current.date(), current.timetz())


def install() -> None:
    """Replace the ``datetime`` the timer module reads (it calls ``datetime.now`` directly)."""
    _timer_module.datetime = _ClockDatetime  # type: ignore[misc]
