"""The system's one clock: every read of "now" goes through here, SpiffWorkflow's timers included."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that can tell the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests and rehearsals."""

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = ensure_utc(start) if start else datetime.now(UTC)

    def now(self) -> datetime:
        """Return the clock's current time."""
        with self._lock:
            return self._now

    def set(self, moment: datetime) -> None:
        """Move the clock to an absolute moment."""
        with self._lock:
            self._now = ensure_utc(moment)

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time."""
        with self._lock:
            self._now = self._now + delta
            return self._now


_current: Clock = SystemClock()


def get_clock() -> Clock:
    """Return the clock the whole process uses."""
    return _current


def set_clock(clock: Clock) -> Clock:
    """Install ``clock`` for the whole process and return the previous one."""
    global _current
    previous, _current = _current, clock
    return previous


def now() -> datetime:
    """Shortcut for ``get_clock().now()``."""
    return _current.now()


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; naive datetimes are refused because their zone is a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} has no UTC offset")
    return moment.astimezone(UTC)
