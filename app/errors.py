"""Errors that services raise; the web and API layers turn them into status codes."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP status it maps to."""

    status = 400

    def __init__(self, message: str, *, errors: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or {}


class NotFoundError(ServiceError):
    """The thing asked for does not exist."""

    status = 404


class PermissionDeniedError(ServiceError):
    """The actor may not do this."""

    status = 403


class ConflictError(ServiceError):
    """The thing changed under the request: the task is no longer ready, someone else wrote first."""

    status = 409


class InvalidDataError(ServiceError):
    """The submitted data does not satisfy the form or schema; ``errors`` says where."""

    status = 422


class ProcessFailedError(ServiceError):
    """The process itself could not continue (a script or expression failed); nothing was saved."""

    status = 422
