"""One day's operating readings of one piece of equipment."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import JSONData, UTCDateTime, db

# The measured values of a day, in the order pages and imports list them.
MEASURES = ("input_voltage", "output_voltage", "load_percent", "battery_health_percent", "temperature_c")


class Reading(db.Model):  # type: ignore[name-defined,misc]
    """The day's operating data a monitored UPS sent: one row per equipment and calendar day (the department's).

    Sending the same day again with the same values changes nothing; different values are refused unless
    the sender says it corrects the day (see app.readings.service)."""

    __tablename__ = "readings"
    __table_args__ = (UniqueConstraint("equipment_id", "day", name="uq_readings_equipment_id_day"),)

    id: Mapped[int] = mapped_column(primary_key=True)  # surrogate key
    equipment_id: Mapped[int] = mapped_column(ForeignKey("equipment.id"))  # whose data (indexed by the unique day)
    day: Mapped[date] = mapped_column(Date)  # the calendar day measured, in the department's time zone
    input_voltage: Mapped[float] = mapped_column()  # mains input, volts (daily mean)
    output_voltage: Mapped[float] = mapped_column()  # UPS output, volts (daily mean)
    load_percent: Mapped[float] = mapped_column()  # load as % of rated power (daily peak)
    battery_health_percent: Mapped[float] = mapped_column()  # battery state of health, %
    temperature_c: Mapped[float] = mapped_column()  # cabinet temperature, °C (daily peak)
    alarm_codes: Mapped[list[str]] = mapped_column(JSONData, default=list)  # alarm codes raised that day
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when the system first received the day
    received_by: Mapped[str] = mapped_column(String(100))  # the user (feed) that sent it
    corrected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last correction, if any
    corrected_by: Mapped[str | None] = mapped_column(String(100))  # who corrected it

    def values(self) -> dict[str, Any]:
        """The measured values and alarms, as sent."""
        return {**{name: getattr(self, name) for name in MEASURES}, "alarm_codes": list(self.alarm_codes or [])}
