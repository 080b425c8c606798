"""Who is acting: the actor every service call takes, and the roles of the department."""

from __future__ import annotations

from dataclasses import dataclass

STAFF_ROLES = ("agent", "engineer", "regional_engineer", "technical_dept", "supervisor", "warehouse")
ROLES = (*STAFF_ROLES, "process_owner", "admin", "auditor")
ROLE_NAMES = {
    "agent": "Customer service agent",
    "engineer": "Technical support engineer",
    "regional_engineer": "Regional engineer",
    "technical_dept": "Technical department",
    "supervisor": "Supervisor",
    "warehouse": "Warehouse keeper",
    "process_owner": "Process owner",
    "admin": "Administrator",
    "auditor": "Auditor",
}


@dataclass(frozen=True)
class Actor:
    """A user (or the system) acting on cases, with the roles they hold."""

    username: str
    roles: frozenset[str]

    def has_role(self, *roles: str) -> bool:
        """True when the actor holds any of ``roles``."""
        return bool(self.roles.intersection(roles))

    def can_work_on(self, role: str | None) -> bool:
        """Staff may work tasks of their own role; supervisors may step in on any staff task."""
        if role is None:
            return self.has_role(*STAFF_ROLES)
        return self.has_role(role, "supervisor")

    @property
    def can_open_cases(self) -> bool:
        """Agents, engineers and supervisors take customers' reports."""
        return self.has_role("agent", "engineer", "regional_engineer", "supervisor")


SYSTEM = Actor("system", frozenset({"system"}))
TIMER = Actor("timer", frozenset({"system"}))


def demo_actor(username: str) -> Actor:
    """The actor used until sign-in exists: one person holding every staff role."""
    return Actor(username, frozenset(STAFF_ROLES) | {"process_owner", "admin"})


def request_actor() -> Actor:
    """The acting user of the current request (pages and API alike). Until sign-in exists every request
    acts as a demo user holding every staff role; ``X-Actor`` names which demo user, so histories show
    different people."""
    from flask import current_app, request

    name = (request.headers.get("X-Actor") or current_app.config["DEMO_ACTOR"]).strip()[:100]
    return demo_actor(name or "demo")
