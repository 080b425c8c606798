"""Orchestration: the steps that combine several domains (a case, its work items, timers, history, stock).

Domain packages below this one never import each other's services upwards; what needs more than one of
them lives here."""
