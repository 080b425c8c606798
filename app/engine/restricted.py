"""The restricted environment in which every BPMN expression and script runs.

SpiffWorkflow's default environment hands expressions to ``eval`` and scripts to ``exec`` with task
data as globals, so a gateway condition such as ``__import__('os').system('id')`` runs with the full
power of the worker process. Here every piece of BPMN code is compiled by RestrictedPython (which
rejects names starting with ``_`` and rewrites attribute access, subscripts, iteration, in-place
operators and unpacking into calls to guard functions) and run against a small builtins table and an
import allow-list. Modules are handed out as stripped copies so that ``statistics.sys`` or
``re.copyreg`` cannot be used as a way back to ``sys.modules``.

Every call also runs on a budget (app.engine.budget): a time budget, checked by the code itself at
every loop iteration, every function and lambda entry and every N items of a long iteration, and a
size budget, checked before ``+ * ** << %``, ``range``, ``pow``, ``bytes``, padding string methods,
format specs, ``math.factorial`` and the like build a value. ``re`` is backed by the ``regex``
package, whose matching stops when the time budget runs out. Exceeding a budget raises
ScriptBudgetError. Not covered: memory used by many small values within the time budget, and
``str(container)`` of a container holding one large string many times (``str`` must stay the type);
f-string fields, ``%``, ``repr`` and ``print`` do check that size.
"""

from __future__ import annotations

import ast
import importlib
import operator
import re
import textwrap
import threading
import types
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from RestrictedPython import (
    RestrictingNodeTransformer,
    compile_restricted_eval,
    compile_restricted_exec,
    safe_builtins,
)
from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from . import budget as _b
from .budget import Budget, ScriptBudgetError

__all__ = [
    "ALLOWED_MODULES",
    "DEFAULT_FUNCTIONS",
    "Budget",
    "RestrictedEnvironment",
    "ScriptBudgetError",
    "ScriptCompileError",
    "ScriptSecurityError",
    "add_duration",
    "check_expression",
    "check_script",
    "date_of",
]

# Filename given to compiled code: SpiffWorkflow looks for "<string>" frames in a traceback to find
# the failing line of a script.
_FILENAME = "<string>"


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------
class ScriptSecurityError(Exception):
    """BPMN code tried something the restricted environment forbids."""


class ScriptCompileError(Exception):
    """BPMN code does not compile under the restricted policy (syntax or forbidden construct)."""

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        self.message = message
        self.source = source
        self.line = line
        # args[0] must be a str: SpiffWorkflow concatenates it into its own error message.
        super().__init__(f"line {line}: {message}" if line else message)


# --------------------------------------------------------------------------------------------------
# Compilation
# --------------------------------------------------------------------------------------------------
def _located(new: Any, old: Any) -> Any:
    """Give every node of ``new`` that has no position the position of ``old``."""
    for child in ast.walk(new):
        if "lineno" in child._attributes:
            for attr in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
                if getattr(child, attr, None) is None:
                    setattr(child, attr, getattr(old, attr, None) or (1 if attr == "lineno" else 0))
    return new


def _budget_call() -> ast.Call:
    return ast.Call(func=ast.Name("_budget_", ast.Load()), args=[], keywords=[])


# Binary operators that can build a huge value from small operands, and the guard each becomes.
_GUARDED_BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "_add_", ast.Mult: "_mul_", ast.Pow: "_pow_", ast.LShift: "_lshift_", ast.Mod: "_mod_",
}


class _Policy(RestrictingNodeTransformer):
    """RestrictedPython's policy, minus class definitions, plus the budget checks.

    Classes need a ``__metaclass__`` hook and open the door to dunder methods defined in user code;
    BPMN scripts have no use for them, so refuse them at deploy time with a clear message. Loops and
    functions get a ``_budget_()`` call at the top of their body (outside any ``try`` in it, so a
    script cannot swallow the stop and go on looping); size-building operators become guard calls.
    """

    def visit_ClassDef(self, node: Any) -> Any:
        self.error(node, "class definitions are not allowed")
        return node

    def _check_first(self, node: Any) -> Any:
        node.body.insert(0, _located(ast.Expr(value=_budget_call()), node.body[0] if node.body else node))
        return node

    def visit_While(self, node: ast.While) -> Any:
        return self._check_first(super().visit_While(node))

    def visit_For(self, node: ast.For) -> Any:
        return self._check_first(super().visit_For(node))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        return self._check_first(super().visit_FunctionDef(node))

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        node = super().visit_Lambda(node)  # type: ignore[assignment]
        # `_budget_() or body`: the check returns None, so the lambda's value is unchanged.
        node.body = _located(ast.BoolOp(op=ast.Or(), values=[_budget_call(), node.body]), node.body)
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = super().visit_BinOp(node)  # type: ignore[assignment]
        guard = _GUARDED_BINOPS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(func=ast.Name(guard, ast.Load()), args=[node.left, node.right], keywords=[])
        return _located(call, node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        # Every field, even a plain {value}: the text of a list holding one big string many times is huge.
        node = super().visit_FormattedValue(node)  # type: ignore[assignment]
        spec = node.format_spec if node.format_spec is not None else ast.Constant("")
        node.value = _located(ast.Call(func=ast.Name("_format_", ast.Load()),
                                       args=[node.value, ast.Constant(node.conversion), spec], keywords=[]),
                              node.value)
        node.conversion, node.format_spec = -1, None
        return node


_LINE_PREFIX = re.compile(r"^Line (\d+|None): ")


def _compile(source: str, mode: Literal["eval", "exec"]) -> types.CodeType:
    """Compile one expression or script with the restricted policy, or raise ScriptCompileError."""
    if not isinstance(source, str):
        raise ScriptCompileError(f"expected source text, got {type(source).__name__}", source=repr(source))
    # eval() strips surrounding whitespace but compile() does not, and BPMN editors indent text
    # inside XML elements; stripping or dedenting keeps line numbers unchanged for scripts.
    text = source.strip() if mode == "eval" else textwrap.dedent(source)
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    result = compiler(text, filename=_FILENAME, policy=_Policy)
    if result.errors or result.code is None:
        errors = list(result.errors) or ["does not compile"]
        match = _LINE_PREFIX.match(errors[0])
        line = int(match.group(1)) if match and match.group(1) != "None" else None
        message = "; ".join(_LINE_PREFIX.sub("", e) for e in errors)
        raise ScriptCompileError(message, source=source, line=line)
    return result.code


def check_expression(source: str) -> None:
    """Raise ScriptCompileError unless ``source`` compiles as a restricted expression."""
    _compile(source, "eval")


def check_script(source: str) -> None:
    """Raise ScriptCompileError unless ``source`` compiles as a restricted script."""
    _compile(source, "exec")


class _CodeCache:
    """Thread-safe LRU of compiled code objects keyed by (mode, source).

    Code objects are immutable and carry no globals, so sharing them between evaluations is safe;
    compiling is what costs (RestrictedPython walks and rewrites the AST each time).
    """

    def __init__(self, size: int) -> None:
        self._size = max(1, size)
        self._entries: OrderedDict[tuple[str, str], types.CodeType] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, source: str, mode: Literal["eval", "exec"]) -> types.CodeType:
        """Return the compiled code for ``source``, compiling it on a miss."""
        key = (mode, source)
        with self._lock:
            code = self._entries.get(key)
            if code is not None:
                self._entries.move_to_end(key)
                return code
        code = _compile(source, mode)  # outside the lock: compiling is slow
        with self._lock:
            self._entries[key] = code
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return code


# --------------------------------------------------------------------------------------------------
# Helpers the BPMN files call
# --------------------------------------------------------------------------------------------------
_NUMBER = r"\d+(?:[.,]\d+)?"
_DURATION = re.compile(
    rf"P(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_NUMBER})S)?)?"
)


def _parse_duration(duration_iso: str) -> timedelta:
    """Parse an ISO-8601 duration made of weeks, days, hours, minutes and seconds."""
    if not isinstance(duration_iso, str):
        raise TypeError(f"duration must be an ISO-8601 string, got {type(duration_iso).__name__}")
    text = duration_iso.strip().upper()
    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        date_part = text.split("T", 1)[0]
        if text.startswith("P") and ("Y" in date_part or "M" in date_part):
            # A month is 28 to 31 days and a year 365 or 366: a deadline must not depend on that.
            raise ValueError(f"duration {duration_iso!r} uses months or years, which have no fixed "
                             "length; use days (P30D) or weeks instead")
        raise ValueError(f"{duration_iso!r} is not an ISO-8601 duration such as 'PT24H' or 'P2D'")
    parts = {name: float(value.replace(",", ".")) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)


def _parse_aware(iso: str) -> datetime:
    """Parse an ISO-8601 datetime that carries an explicit UTC offset."""
    if not isinstance(iso, str):
        raise TypeError(f"datetime must be an ISO-8601 string, got {type(iso).__name__}")
    try:
        value = datetime.fromisoformat(iso.strip())
    except ValueError:
        raise ValueError(f"{iso!r} is not an ISO-8601 datetime") from None
    if value.tzinfo is None or value.utcoffset() is None:
        # Which zone a naive time is in is a guess; deadlines must not be guesses.
        raise ValueError(f"datetime {iso!r} has no UTC offset; write it with an offset such as "
                         "'+00:00' or 'Z'")
    return value


def add_duration(start_iso: str, duration_iso: str) -> str:
    """Return ``start_iso`` plus an ISO-8601 duration (days are 24 hours) as a UTC ISO-8601 string."""
    start = _parse_aware(start_iso).astimezone(UTC)
    # Adding in UTC makes P1D exactly 24 hours, whatever daylight-saving change lies in between.
    return (start + _parse_duration(duration_iso)).isoformat()


def date_of(iso: str) -> str:
    """Return the UTC calendar date ("YYYY-MM-DD") of an ISO-8601 datetime with offset."""
    return _parse_aware(iso).astimezone(UTC).date().isoformat()


DEFAULT_FUNCTIONS: dict[str, Callable[..., Any]] = {"add_duration": add_duration, "date_of": date_of}


# --------------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------------
# Attributes that lead from an ordinary object to frames, code or globals. RestrictedPython refuses
# them when written literally; these checks refuse them when the name is computed at run time.
_FORBIDDEN_ATTRIBUTES = frozenset(INSPECT_ATTRIBUTES | {
    "mro",  # type.mro() hands out `object`, the root of the __subclasses__() walk
})
# str.format / format_map resolve "{0.__class__}" with the real getattr, bypassing every guard.
_STR_FORMAT_ATTRIBUTES = frozenset({"format", "format_map"})


class _SafeModule(types.ModuleType):
    """A copy of an allow-listed module holding only its public, non-module attributes."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _SafeModule:
        # Shared and read-only (see _guard_write), so a copy may be the same object; without this a
        # module left in task data would make SpiffWorkflow's deep copy of the data fail.
        return self

    def __copy__(self) -> _SafeModule:
        return self


def _check_attribute(obj: Any, name: Any) -> None:
    """Raise ScriptSecurityError if reading attribute ``name`` of ``obj`` is forbidden."""
    if type(name) is not str:
        raise ScriptSecurityError("attribute names must be plain strings")
    if name.startswith("_") or name in _FORBIDDEN_ATTRIBUTES:
        raise ScriptSecurityError(f"access to {name!r} is not allowed")
    if name in _STR_FORMAT_ATTRIBUTES and (
            isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))):
        raise ScriptSecurityError(f"str.{name}() is not allowed; use an f-string or '%' instead")


def _checked_value(value: Any) -> Any:
    """Refuse real module objects reached through an attribute (e.g. ``statistics.sys``), and regex
    patterns (a match object's ``.re``), whose methods would match without the time budget."""
    if isinstance(value, types.ModuleType) and not isinstance(value, _SafeModule):
        raise ScriptSecurityError(f"access to module {value.__name__!r} is not allowed")
    if isinstance(value, _b.RAW_REGEX_TYPES):
        raise ScriptSecurityError("access to the underlying regex pattern is not allowed")
    return value


# Types whose unbound methods (str.ljust(s, n)) get the same size checks as bound ones.
_GUARDED_METHOD_TYPES = frozenset(kind for kind, _ in _b.GUARDED_METHODS)


def _guarded_unbound(kind: type, name: str) -> Callable[..., Any]:
    """``str.ljust`` and the like, read from the type: the guarded method of the first argument."""
    def call(obj: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(obj, kind):
            return getattr(kind, name)(obj, *args, **kwargs)  # raises TypeError as the real one does
        method = _b.guarded_method(obj, name) or getattr(obj, name)
        return method(*args, **kwargs)
    return call


def _guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """``getattr`` for restricted code: the attribute guard, also behind the builtin ``getattr``."""
    if len(default) > 1:
        raise TypeError(f"getattr expected at most 3 arguments, got {2 + len(default)}")
    _check_attribute(obj, name)
    if name in _b.GUARDED_METHOD_NAMES:
        if type(obj) is type and obj in _GUARDED_METHOD_TYPES and hasattr(obj, name):
            return _guarded_unbound(obj, name)
        method = _b.guarded_method(obj, name)
        if method is not None:
            return method
    return _checked_value(getattr(obj, name, *default))


def _guarded_hasattr(obj: Any, name: str) -> bool:
    """``hasattr`` for restricted code: forbidden names raise instead of answering."""
    _check_attribute(obj, name)
    return hasattr(obj, name)


def _guarded_getitem(obj: Any, key: Any) -> Any:
    """``obj[key]`` for restricted code."""
    return obj[key]


class _ReadOnly:
    """Stands in for an object that restricted code tried to modify: every write raises."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def _refuse(self, *args: Any) -> None:
        target = object.__getattribute__(self, "_target")
        what = (f"module {target.__name__!r}" if isinstance(target, types.ModuleType)
                else f"{type(target).__name__} objects")
        raise ScriptSecurityError(f"modifying {what} is not allowed")

    __setattr__ = _refuse
    __delattr__ = _refuse
    __setitem__ = _refuse
    __delitem__ = _refuse


# Task data is plain JSON-shaped data: those containers may be changed in place, nothing else may
# (otherwise `math.pi = 3` or `decimal_context.prec = 1` would change shared state for every case).
_WRITABLE_TYPES = frozenset({dict, list, set})


def _guard_write(obj: Any) -> Any:
    """Target of ``obj.x = ...`` / ``obj[k] = ...``: plain containers only."""
    return obj if type(obj) in _WRITABLE_TYPES else _ReadOnly(obj)


_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
    "@=": operator.imatmul,
}


def _inplace(op: str, target: Any, value: Any) -> Any:
    """``target op= value`` for restricted code (RestrictedPython rewrites ``x += 1`` to this)."""
    function = _INPLACE_OPERATORS.get(op)
    if function is None:
        raise ScriptSecurityError(f"operator {op!r} is not allowed")
    return _b.guarded_inplace(op, function, target, value)


def _apply(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)`` for restricted code."""
    return function(*args, **kwargs)


class _Forbidden:
    """Placeholder for a builtin that restricted code may name but not call."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise ScriptSecurityError(f"{self._name}() is not allowed")

    def __repr__(self) -> str:
        return f"<forbidden builtin {self._name}>"


# Modules restricted code may import, each with the public names it keeps hidden. Each holds pure functions
# on values; nothing here reaches files, processes, the network or interpreter internals.
# `datetime` reads the real clock (datetime.now()), not the engine's controllable one.
ALLOWED_MODULES: Mapping[str, frozenset[str]] = types.MappingProxyType({
    "math": frozenset(),
    "statistics": frozenset(),
    "re": frozenset(),
    # No datetime: it reads the wall clock, not the system clock, so a replay would differ.
    # BPMN code uses the add_duration/date_of helpers instead.
    # The shared decimal contexts are process/thread state: changing their traps or precision would
    # alter arithmetic in the engine itself.
    "decimal": frozenset({"getcontext", "setcontext", "DefaultContext", "BasicContext",
                          "ExtendedContext"}),
})

# Builtins restricted code cannot call; naming them gives a clear error instead of a NameError.
_FORBIDDEN_BUILTINS = (
    "open", "eval", "exec", "compile", "globals", "locals", "vars", "dir", "type", "object",
    "input", "breakpoint", "help", "exit", "quit", "memoryview", "super", "classmethod",
    "staticmethod", "property", "setattr", "delattr", "__build_class__",
)
# Exceptions that are not Exception subclasses: SpiffWorkflow only catches Exception, so raising
# one of these from a script would go straight through the engine and could stop a worker.
_WITHHELD_EXCEPTIONS = ("BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit")

_EXTRA_BUILTINS: dict[str, Any] = {
    "min": min, "max": max, "any": any, "all": all, "enumerate": enumerate,
    "sorted": sorted, "reversed": reversed, "map": map, "filter": filter, "dict": dict,
    "list": list, "set": set, "frozenset": frozenset, "round": round, "abs": abs, "len": len,
    "iter": _b.guarded_iter_builtin, "next": next, "getattr": _guarded_getattr, "hasattr": _guarded_hasattr,
    # Builtins that would build (or loop in C over) a value above the size budget refuse it first.
    "range": _b.guarded_range, "pow": _b.guarded_pow, "bytes": _b.guarded_bytes, "sum": _b.guarded_sum,
    # str stays the type (isinstance(x, str), str.upper); only repr() is a function that can be guarded.
    "repr": _b.guarded_repr,
}
# Modules whose functions are replaced (math.factorial...) or which are rebuilt entirely (re).
_MODULE_OVERRIDES: Mapping[str, Mapping[str, Any]] = types.MappingProxyType({
    "math": _b.MATH_OVERRIDES, "decimal": _b.DECIMAL_OVERRIDES,
})


def _safe_module(name: str, hidden: frozenset[str]) -> _SafeModule:
    """Build the stripped copy of an allow-listed module (``re`` is the budgeted one over ``regex``)."""
    if name == "re":
        module = _SafeModule("re")
        for attr, value in _b.RE_NAMES.items():
            if attr not in hidden and attr != "Pattern":
                setattr(module, attr, value)
        return module
    real = importlib.import_module(name)
    names = getattr(real, "__all__", None) or [n for n in dir(real) if not n.startswith("_")]
    copy = _SafeModule(name)
    for attr in names:
        if attr.startswith("_") or attr in hidden or not hasattr(real, attr):
            continue
        value = getattr(real, attr)
        if isinstance(value, types.ModuleType):
            continue  # statistics.sys, datetime.sys, re.copyreg: each a way back to sys.modules
        setattr(copy, attr, value)
    for attr, value in _MODULE_OVERRIDES.get(name, {}).items():
        if attr not in hidden and hasattr(copy, attr):
            setattr(copy, attr, value)
    return copy


# Names the environment puts into every scope; task data may neither shadow nor keep them.
_RESERVED_NAMES = frozenset({
    "__builtins__", "_getattr_", "_getitem_", "_getiter_", "_write_", "_inplacevar_",
    "_iter_unpack_sequence_", "_unpack_sequence_", "_apply_", "_print_",
    "_budget_", "_add_", "_mul_", "_pow_", "_lshift_", "_mod_", "_format_",
})


_RECURSION_MESSAGE = "script recursed deeper than the interpreter allows"


# --------------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------------
class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Script environment with TaskDataEnvironment's semantics, run under RestrictedPython."""

    def __init__(self, functions: dict[str, Callable[..., Any]] | None = None, *,
                 cache_size: int = 2048, budget: Budget | None = None) -> None:
        helpers = {**DEFAULT_FUNCTIONS, **(functions or {})}
        for name in helpers:
            if not name.isidentifier() or name.startswith("_") or name in _RESERVED_NAMES:
                # Restricted code cannot name identifiers starting with "_"; refuse early.
                raise ValueError(f"helper function name {name!r} cannot be used from BPMN code")
        # Helpers are trusted Python: they run unrestricted, so they must not hand out modules,
        # frames or mutable engine state.
        super().__init__(environment_globals=helpers)
        self.budget = budget or Budget()  # replaced as a whole by configure_script_budget()
        self._cache = _CodeCache(cache_size)
        self._modules = {name: _safe_module(name, hidden) for name, hidden in ALLOWED_MODULES.items()}
        builtins: dict[str, Any] = {
            name: value for name, value in safe_builtins.items()
            if name not in _WITHHELD_EXCEPTIONS and not name.startswith("_")
        }
        builtins.update(_EXTRA_BUILTINS)
        builtins.update({name: _Forbidden(name) for name in _FORBIDDEN_BUILTINS})
        builtins["__import__"] = self._import
        self._scope: dict[str, Any] = {
            "__builtins__": builtins,
            "_getattr_": _guarded_getattr,
            "_getitem_": _guarded_getitem,
            "_getiter_": _b.guarded_iter,
            "_write_": _guard_write,
            "_inplacevar_": _inplace,
            "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
            "_unpack_sequence_": guarded_unpack_sequence,
            "_apply_": _apply,
            # print() output is collected into a throw-away collector; scripts have no stdout.
            "_print_": _b.BudgetPrintCollector,
            "_budget_": _b.budget_check,
            "_add_": _b.guarded_add,
            "_mul_": _b.guarded_mul,
            "_pow_": _b.guarded_pow,
            "_lshift_": _b.guarded_lshift,
            "_mod_": _b.guarded_mod,
            "_format_": _b.guarded_format,
        }

    def _import(self, name: str, globals: Any = None, locals: Any = None,
                fromlist: Any = (), level: int = 0) -> _SafeModule:
        """``__import__`` for restricted code: allow-listed modules only, as stripped copies."""
        if level != 0:
            raise ScriptSecurityError("relative imports are not allowed")
        module = self._modules.get(name)
        if module is None:
            raise ScriptSecurityError(f"import of {name!r} is not allowed")
        # Checked here because `from m import x` reads x with the real getattr, after this returns;
        # a missing name would otherwise fall back to sys.modules["m.x"].
        for attr in fromlist or ():
            if not isinstance(attr, str) or attr.startswith("_") or not hasattr(module, attr):
                raise ScriptSecurityError(f"import of {name}.{attr} is not allowed")
        return module

    def compiled(self, source: str, mode: Literal["eval", "exec"]) -> types.CodeType:
        """Return the cached restricted code object for ``source`` (raises ScriptCompileError)."""
        return self._cache.get(source, mode)

    def evaluate(self, expression: str, context: dict[str, Any],
                 external_context: dict[str, Any] | None = None) -> Any:
        """Evaluate an expression with task data as globals and return its value."""
        code = self._cache.get(expression, "eval")
        scope = dict(self.globals)
        scope.update(external_context or {})
        scope.update(context)
        scope.update(self._scope)  # last, so task data can never replace a guard or the builtins
        # open_budget(), inlined: this runs for every gateway condition.
        state = _b.state
        previous = state.current
        current = state.current = (_b.monotonic() + self.budget.seconds, self.budget)
        try:
            result = eval(code, scope)
        except RecursionError:
            raise ScriptBudgetError(_RECURSION_MESSAGE) from None
        finally:
            state.current = previous
        if _b.monotonic() > current[0]:  # it finished late: it must have swallowed the stop
            raise _b.time_error(current)
        return result

    def execute(self, script: str, context: dict[str, Any],
                external_context: dict[str, Any] | None = None) -> bool:
        """Run a script with task data as globals; assignments become task data."""
        external = external_context or {}
        self.check_for_overwrite(context, external)
        code = self._cache.get(script, "exec")  # before touching the data: a bad script changes nothing
        present = set(context)
        context.update(self.globals)
        context.update(external)
        context.update(self._scope)
        state = _b.state
        previous = state.current
        current = state.current = (_b.monotonic() + self.budget.seconds, self.budget)
        try:
            exec(code, context)
        except RecursionError:
            raise ScriptBudgetError(_RECURSION_MESSAGE) from None
        finally:
            state.current = previous
            self._remove_globals_and_functions_from_context(context, external, present)
        if _b.monotonic() > current[0]:  # it finished late: it must have swallowed the stop
            raise _b.time_error(current)
        return True

    def check_for_overwrite(self, context: Mapping[str, Any], external_context: Mapping[str, Any]) -> None:
        """Refuse task data that would replace a helper function or a guard (as TaskDataEnvironment)."""
        clashes = (set(self.globals) | set(external_context) | _RESERVED_NAMES).intersection(context)
        if clashes:
            raise ValueError("You have task data that overwrites a predefined function(s). Please "
                             "change the following variable or field name(s) to something else: "
                             f"{sorted(clashes)}")

    def _remove_globals_and_functions_from_context(self, context: dict[str, Any],
                                                   external_context: Mapping[str, Any] | None = None,
                                                   present: set[str] | None = None) -> None:
        """Remove everything the run added that is not data: guards, helpers, functions, modules."""
        external_context = external_context or {}
        for key in list(context):
            value = context[key]
            if (key in _RESERVED_NAMES or key in self.globals or key in external_context
                    # RestrictedPython's own temporaries (_print, _tmp0, ...)
                    or (key.startswith("_") and (present is None or key not in present))
                    or callable(value)
                    # modules and iterators/generators cannot be deep-copied or serialized
                    or isinstance(value, (types.ModuleType, Iterator))):
                del context[key]
