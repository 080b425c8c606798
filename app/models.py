"""Imports every model so SQLAlchemy's metadata (and Alembic) sees the whole schema."""

from app.attachments.models import Attachment
from app.audit.models import CaseEvent
from app.cases.models import Case, CaseLink
from app.documents.models import Document
from app.processes.models import ProcessVersion
from app.readings.models import Reading
from app.registry.models import Customer, Equipment
from app.stock.models import Part, Reservation, StockLevel, StockMovement, Warehouse
from app.tasks.models import WorkItem
from app.timers.models import Schedule, ScheduleOccurrence, Timer
from app.users.models import ApiToken, User, UserEvent, UserRole

__all__ = ["ApiToken", "Attachment", "Case", "CaseEvent", "CaseLink", "Customer", "Document", "Equipment", "Part",
           "ProcessVersion", "Reading", "Reservation", "Schedule", "ScheduleOccurrence", "StockLevel", "StockMovement",
           "Timer", "User", "UserEvent", "UserRole", "Warehouse", "WorkItem"]
