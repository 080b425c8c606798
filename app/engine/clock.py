"""The system's one clock: every read of "now" goes through here, SpiffWorkflow's timers included."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
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


class OffsetClock:
    """Wall clock plus an offset read from a shared store (the database), so every process of a
    rehearsal agrees.

    The offset is re-read at most every ``refresh`` seconds: reading it costs a round trip.
    """

    def __init__(self, read_offset: Callable[[], float], *, refresh: float = 0.25) -> None:
        self._read_offset = read_offset
        self._refresh = refresh
        self._offset = 0.0
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def offset(self, *, fresh: bool = False) -> timedelta:
        """The current offset from the wall clock."""
        with self._lock:
            tick = time.monotonic()
            if fresh or tick - self._read_at >= self._refresh:
                self._offset = float(self._read_offset())
                self._read_at = tick
            return timedelta(seconds=self._offset)

    def now(self) -> datetime:
        """Wall clock plus the shared offset."""
        return datetime.now(UTC) + self.offset()


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


def parse_duration(text: str) -> timedelta:
    """Parse ``25h``, ``90m``, ``2d``, ``1d2h30m``, ``45s`` or an ISO-8601 duration like ``PT25H``."""
    source = text.strip()
    iso = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", source.upper())
    if iso and source.upper() not in ("P", "PT"):
        days, hours, minutes, seconds = (int(g or 0) for g in iso.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    parts = re.findall(r"(\d+)\s*([dhms])", source.lower())
    if not parts or re.sub(r"(\d+)\s*([dhms])", "", source.lower()).strip():
        raise ValueError(f"cannot read {text!r} as a duration; write e.g. 25h, 90m, 2d, 1d2h or PT25H")
    unit = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
    total = timedelta()
    for amount, letter in parts:
        total += timedelta(**{unit[letter]: int(amount)})
    return total


def ensure_utc(moment: datetime) -> datetime:
    """Return ``moment`` in UTC; naive datetimes are refused because their zone is a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} has no UTC offset")
    return moment.astimezone(UTC)
