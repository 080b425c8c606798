"""Service tasks: the named operations a process may ask the system to carry out (reserve spare parts,
open a linked case, update an equipment file...).

A BPMN service task names its operation in the spiff dialect (``spiffworkflow:serviceTaskOperator
id="stock.reserve"``) with parameters that are expressions over the case's data, evaluated in the
restricted environment like every other expression. The operations themselves are trusted Python that
the layer above the engine registers (``app.flows.operations``): they act on the database in the same
transaction as the step that reached the task, with the step's actor, so a refusal (say, a part out of
stock) rolls the whole step back and reaches the caller as the operation's own error. Deploy refuses a
service task whose operation is not registered, or that leaves out or invents a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OperationFunc = Callable[..., Any]  # called with the evaluated parameters as keyword arguments


@dataclass(frozen=True)
class Operation:
    """One operation service tasks may call: its name, the parameters it takes and what it does."""

    name: str
    func: OperationFunc
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    description: str = ""

    def check_parameters(self, given: set[str]) -> str | None:
        """Why the parameters a service task passes do not fit this operation, or None when they do."""
        missing = [p for p in self.required if p not in given]
        unknown = sorted(given - set(self.required) - set(self.optional))
        problems = []
        if missing:
            problems.append("it needs the parameter(s) " + ", ".join(missing))
        if unknown:
            known = ", ".join((*self.required, *self.optional)) or "none"
            problems.append(f"it takes no parameter(s) {', '.join(unknown)} (it takes: {known})")
        return "; ".join(problems) or None


@dataclass
class OperationRegistry:
    """The operations of this installation, by name."""

    operations: dict[str, Operation] = field(default_factory=dict)

    def register(self, name: str, func: OperationFunc, *, required: tuple[str, ...] = (),
                 optional: tuple[str, ...] = (), description: str = "") -> None:
        """Make ``name`` callable from service tasks (registering a name again replaces it)."""
        self.operations[name] = Operation(name, func, tuple(required), tuple(optional), description)

    def get(self, name: str) -> Operation | None:
        """The operation registered under ``name``."""
        return self.operations.get(name)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self.operations)


class OperationFailed(Exception):  # noqa: N818 - it carries the operation's own error out of the engine
    """An operation raised: the engine passes ``error`` (the operation's own exception) to its caller."""

    def __init__(self, error: BaseException, *, operation: str, element_id: str | None) -> None:
        super().__init__(f"operation {operation} of service task {element_id}: {error}")
        self.error = error
        self.operation = operation
        self.element_id = element_id


def call_operation(registry: OperationRegistry, *, operation_name: str, operation_params: dict[str, Any],
                   element_id: str | None) -> str:
    """Run one service task's operation with its evaluated parameters; its result as the JSON text
    SpiffWorkflow stores in the task's result variable."""
    operation = registry.get(operation_name)
    if operation is None:  # deploy refuses this; a version deployed before an operation was removed
        raise OperationFailed(LookupError(f"no operation {operation_name!r} is installed"),
                              operation=operation_name, element_id=element_id)
    params = {name: value["value"] for name, value in operation_params.items()}
    try:
        result = operation.func(**params)
    except Exception as exc:
        raise OperationFailed(exc, operation=operation_name, element_id=element_id) from exc
    return json.dumps(result, default=str)


REGISTRY = OperationRegistry()  # the installation's operations, filled by app.flows.operations
