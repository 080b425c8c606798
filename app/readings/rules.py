"""What counts as an anomaly in a day's operating data: one rule per measure, configurable.

The same rules mark the out-of-range days on the monthly inspection's charts and make its anomaly list.
Defaults fit a 220 V single-phase UPS; a department with other equipment sets
``SERVICECASE_READING_RULES`` to JSON such as ``{"input_voltage": [340, 420], "temperature_c": [null, 35]}``
(each measure: [lowest normal, highest normal], null for no bound), checked when the app starts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.readings.models import MEASURES

# Values no UPS can report: refused at input, whatever the rules (a sensor fault or a unit mix-up).
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "input_voltage": (0, 1000), "output_voltage": (0, 1000), "load_percent": (0, 300),
    "battery_health_percent": (0, 100), "temperature_c": (-50, 120),
}
UNITS = {"input_voltage": "V", "output_voltage": "V", "load_percent": "%", "battery_health_percent": "%",
         "temperature_c": "°C"}
LABELS = {"input_voltage": "Input voltage", "output_voltage": "Output voltage", "load_percent": "Load",
          "battery_health_percent": "Battery health", "temperature_c": "Temperature"}


class RulesError(ValueError):
    """SERVICECASE_READING_RULES does not describe rules."""


@dataclass(frozen=True)
class Rule:
    """The normal range of one measure; outside it a day is an anomaly."""

    measure: str
    low: float | None
    high: float | None

    def breached_by(self, value: float) -> bool:
        """True when ``value`` is outside the normal range."""
        return (self.low is not None and value < self.low) or (self.high is not None and value > self.high)

    def describe(self, value: float) -> str:
        """In words: 'Input voltage 150 V is below 176 V'."""
        unit = UNITS[self.measure]
        if self.low is not None and value < self.low:
            return f"{LABELS[self.measure]} {value:g} {unit} is below {self.low:g} {unit}"
        return f"{LABELS[self.measure]} {value:g} {unit} is above {self.high:g} {unit}"


DEFAULT_RULES: dict[str, tuple[float | None, float | None]] = {
    "input_voltage": (176, 264),  # 220 V −20 % / +20 %: beyond it the UPS runs on battery
    "output_voltage": (209, 231),  # 220 V ± 5 %: what the load is promised
    "load_percent": (None, 90),  # above 90 % of rated power there is no reserve for a fault
    "battery_health_percent": (80, None),  # below 80 % the battery is due for replacement
    "temperature_c": (None, 40),  # batteries age twice as fast for each 10 °C above 25 °C
}


def parse_rules(text: str | None) -> tuple[Rule, ...]:
    """The rules: defaults, overridden per measure by the JSON ``text`` (RulesError naming what is wrong)."""
    ranges: dict[str, tuple[float | None, float | None]] = dict(DEFAULT_RULES)
    if text:
        try:
            given: Any = json.loads(text)
        except ValueError as exc:
            raise RulesError(f"SERVICECASE_READING_RULES is not JSON: {exc}") from None
        if not isinstance(given, dict):
            raise RulesError("SERVICECASE_READING_RULES must be a JSON object of measure: [low, high]")
        for measure, bounds in given.items():
            if measure not in MEASURES:
                raise RulesError(f"SERVICECASE_READING_RULES: unknown measure {measure!r} (known: "
                                 f"{', '.join(MEASURES)})")
            if (not isinstance(bounds, list) or len(bounds) != 2
                    or not all(b is None or (isinstance(b, int | float) and not isinstance(b, bool)) for b in bounds)):
                raise RulesError(f"SERVICECASE_READING_RULES: {measure} must be [low, high], numbers or null")
            low, high = bounds
            if low is not None and high is not None and low > high:
                raise RulesError(f"SERVICECASE_READING_RULES: {measure} has its low bound above its high bound")
            ranges[measure] = (low, high)
    return tuple(Rule(measure, *ranges[measure]) for measure in MEASURES)


@dataclass(frozen=True)
class Finding:
    """One anomaly of one day: a measure out of its range, or an alarm raised."""

    measure: str  # a measure name, or "alarm_codes"
    value: Any
    text: str


def findings(values: dict[str, Any], rules: tuple[Rule, ...]) -> list[Finding]:
    """The anomalies of one day's values under ``rules``; alarms always count."""
    found = [Finding(rule.measure, values[rule.measure], rule.describe(values[rule.measure]))
             for rule in rules if rule.breached_by(values[rule.measure])]
    if values.get("alarm_codes"):
        found.append(Finding("alarm_codes", list(values["alarm_codes"]),
                             "Alarms raised: " + ", ".join(values["alarm_codes"])))
    return found
