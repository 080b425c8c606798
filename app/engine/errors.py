"""Errors the engine seam raises; callers never see SpiffWorkflow's own exception types."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for everything the engine seam raises."""


class ProcessDefinitionError(EngineError):
    """A BPMN file that cannot be deployed: names the file, the element and (when known) the line."""

    def __init__(self, message: str, *, filename: str, element_id: str | None = None,
                 line: int | None = None) -> None:
        self.message = message
        self.filename = filename
        self.element_id = element_id
        self.line = line
        where = filename
        if line:
            where += f":{line}"
        if element_id:
            where += f" (element '{element_id}')"
        super().__init__(f"{where}: {message}")

    def to_dict(self) -> dict[str, object]:
        """Return the error as JSON-ready data."""
        return {"file": self.filename, "element": self.element_id, "line": self.line,
                "message": self.message}


class TaskNotReadyError(EngineError):
    """The task exists but cannot be completed now (already done, cancelled or not yet reached)."""


class UnknownTaskError(EngineError):
    """No task with that id exists in the instance."""


class ScriptError(EngineError):
    """A BPMN expression or script failed while the engine ran; the instance must be discarded."""

    def __init__(self, message: str, *, element_id: str | None = None) -> None:
        self.element_id = element_id
        super().__init__(message if not element_id else f"{message} (element '{element_id}')")
