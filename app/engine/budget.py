"""Time and size budgets for BPMN expressions and scripts.

Every evaluate/execute of the restricted environment opens a budget for the calling thread: a deadline
(the time budget) and a size limit (the largest value one operation may build). Restricted code checks
itself: the policy inserts ``_budget_()`` into every loop body and at every function and lambda entry,
and rewrites ``+ * ** << %`` into the guarded calls below; builtins and methods that loop in C over a
huge input are replaced by versions that refuse the input first. Nothing here uses signals or threads,
so it holds the same way in a gunicorn thread, an RQ job and the CLI.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from decimal import Context as _DecimalContext
from decimal import localcontext as _decimal_localcontext
from typing import Any

import regex

__all__ = [
    "Budget",
    "ScriptBudgetError",
    "budget_check",
    "state",
    "time_error",
]

DEFAULT_TIME_MS = 300
DEFAULT_SIZE = 1_000_000
# Sized iterables up to this length are iterated at full speed (the time is checked once per loop
# start); longer or unsized ones are checked every CHECK_EVERY items.
CHECK_EVERY = 1000


class ScriptBudgetError(Exception):
    """BPMN code ran out of its time budget or tried to build a value above its size budget.

    An Exception subclass so that SpiffWorkflow wraps it like any script error (and the request
    answers 422 naming the element); a script that swallows it is stopped again at its next loop
    iteration or call, and the environment raises it at the end of the call anyway.
    """


class Budget:
    """The limits one evaluate/execute runs under."""

    __slots__ = ("seconds", "size", "time_ms")

    def __init__(self, time_ms: int = DEFAULT_TIME_MS, size: int = DEFAULT_SIZE) -> None:
        if int(time_ms) <= 0 or int(size) <= 0:
            raise ValueError("script budgets must be positive")
        self.time_ms = int(time_ms)
        self.seconds = self.time_ms / 1000
        self.size = int(size)

    def __repr__(self) -> str:
        return f"Budget(time_ms={self.time_ms}, size={self.size})"


# What "no call is running" looks like: a deadline long past, so restricted code run outside a call
# (a lambda that escaped into returned data) is refused rather than unlimited.
_NO_CALL: tuple[float, Budget | None] = (0.0, None)


class _State(threading.local):
    """The running call's (deadline, budget), per thread: one attribute, read by every check."""

    current: tuple[float, Budget | None] = _NO_CALL


state = _State()
monotonic = time.monotonic


def time_error(current: tuple[float, Budget | None]) -> ScriptBudgetError:
    """The error for a call that ran out of time."""
    budget = current[1]
    if budget is None:
        return ScriptBudgetError("restricted code ran outside a budgeted call")
    return ScriptBudgetError(f"script ran longer than its {budget.time_ms} ms budget")


def _expired() -> None:
    raise time_error(state.current)


def budget_check(_now: Callable[[], float] = monotonic, _s: _State = state) -> None:
    """``_budget_()``: raise ScriptBudgetError once the running call is past its deadline."""
    if _now() > _s.current[0]:
        _expired()


def remaining_seconds() -> float:
    """Seconds left in the running call's budget (raises if there are none)."""
    left = state.current[0] - monotonic()
    if left <= 0:
        _expired()
    return left


def _limit() -> int:
    budget = state.current[1]
    if budget is None:
        _expired()
    return budget.size  # type: ignore[union-attr]


def _too_large(what: str, amount: int, unit: str = "items") -> ScriptBudgetError:
    return ScriptBudgetError(f"value too large: {what} would have {amount:,} {unit} "
                             f"(budget {_limit():,})")


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, (str, bytes, bytearray, list, tuple)) or len(value) < 20 \
        else f"<{type(value).__name__} of {len(value):,}>"
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------------------------
# Iteration
# --------------------------------------------------------------------------------------------------
_SIZED = frozenset({list, tuple, dict, set, frozenset, str, bytes, range, type({}.keys()),
                    type({}.values()), type({}.items())})


def _checked_iterator(iterator: Iterator[Any]) -> Iterator[Any]:
    n = 0
    for item in iterator:
        n += 1
        if n >= CHECK_EVERY:
            n = 0
            budget_check()
        yield item


def guarded_iter(obj: Any) -> Iterator[Any]:
    """``_getiter_``: check the time at every loop start; long or unsized iterables every N items."""
    budget_check()
    if type(obj) in _SIZED and len(obj) <= CHECK_EVERY:
        return iter(obj)
    return _checked_iterator(iter(obj))


def guarded_iter_builtin(obj: Any, *sentinel: Any) -> Iterator[Any]:
    """The ``iter`` builtin; ``iter(f, sentinel)`` can be endless, so it is iterated with checks."""
    if sentinel:
        return _checked_iterator(iter(obj, *sentinel))
    return iter(obj)


# --------------------------------------------------------------------------------------------------
# Operators
# --------------------------------------------------------------------------------------------------
_SEQUENCES = (str, bytes, bytearray, list, tuple)


_SMALL = 1 << 32


def guarded_mul(a: Any, b: Any) -> Any:
    """``a * b``: sequence repetition by resulting length, int × int by resulting bits."""
    ta, tb = type(a), type(b)
    if ta is float or tb is float:
        return a * b
    if ta is int and tb is int:
        if -_SMALL < a < _SMALL and -_SMALL < b < _SMALL:
            return a * b  # at most 64 bits: always allowed, and the common case in loops
        if a.bit_length() + b.bit_length() > _limit():
            raise _too_large(f"{_short(a)} * {_short(b)}", a.bit_length() + b.bit_length(), "bits")
        return a * b
    if isinstance(a, _SEQUENCES) and isinstance(b, int):
        _check_length(f"{_short(a)} * {b}", len(a) * b)
    elif isinstance(b, _SEQUENCES) and isinstance(a, int):
        _check_length(f"{a} * {_short(b)}", len(b) * a)
    return a * b


def _check_length(what: str, length: int) -> None:
    if length > _limit():
        raise _too_large(what, length)


def guarded_add(a: Any, b: Any) -> Any:
    """``a + b``: concatenation by resulting length (numbers cannot grow much by adding)."""
    ta = type(a)
    if ta is int or ta is float:
        return a + b
    if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
        _check_length(f"{_short(a)} + {_short(b)}", len(a) + len(b))
    return a + b


def _pow_bits(base: int, exponent: int) -> float:
    magnitude = abs(base)
    if magnitude <= 1 or exponent <= 0:
        return 1.0
    return exponent * math.log2(magnitude)


def guarded_pow(a: Any, b: Any, modulo: Any = None) -> Any:
    """``a ** b`` and the ``pow`` builtin: int ** int by estimated bits; with a modulus it is small."""
    if modulo is not None:
        return pow(a, b, modulo)
    if type(a) is float or type(b) is float:
        return a ** b
    if isinstance(a, int) and isinstance(b, int):
        bits = _pow_bits(a, b)
        if bits > _limit():
            raise _too_large(f"{_short(a)} ** {_short(b)}", math.ceil(bits), "bits")
    return a ** b


def guarded_lshift(a: Any, b: Any) -> Any:
    """``a << b``: by resulting bits."""
    if isinstance(a, int) and isinstance(b, int) and b > 0 and a:
        bits = a.bit_length() + b
        if bits > _limit():
            raise _too_large(f"{_short(a)} << {_short(b)}", bits, "bits")
    return a << b


_CONTAINERS = (list, tuple, set, frozenset, dict)


def check_text_size(value: Any, what: str = "the text of a value") -> None:
    """Refuse to turn ``value`` into text when its str()/repr() would exceed the size budget.

    A list holding one large string many times is small in memory but huge as text; the walk
    stops as soon as the estimate is over the limit, so it costs at most the budget in steps."""
    if not isinstance(value, _CONTAINERS):
        return
    limit = _limit()
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes, bytearray)):
            total += len(item) + 3
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 8
        if total > limit:
            raise _too_large(what, total, "characters or more")


def guarded_repr(value: Any) -> str:
    """The ``repr`` builtin: a container's text within the size budget."""
    check_text_size(value, "repr(...)")
    return repr(value)


# printf-style conversion specs: the numbers of width and precision, or '*' (taken from the values).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_DIGITS = re.compile(r"\d+")


def _check_width(what: str, width: int) -> None:
    if width > _limit():
        raise _too_large(what, width, "characters")


def guarded_mod(a: Any, b: Any) -> Any:
    """``a % b``: for printf-style formatting, widths and precisions by resulting length."""
    if type(a) is str or type(a) is bytes:
        text = a if isinstance(a, str) else a.decode("latin-1")
        starred = False
        for width, precision in _PERCENT_SPEC.findall(text):
            for number in (width, precision):
                if number == "*":
                    starred = True
                elif number:
                    _check_width(f"{_short(a)} % ...", int(number))
        values = b if isinstance(b, tuple) else tuple(b.values()) if isinstance(b, dict) else (b,)
        for value in values:
            if starred and isinstance(value, int):
                _check_width(f"{_short(a)} % ...", abs(value))
            check_text_size(value, f"{_short(a)} % ...")
        result = a % b
        _check_length("the formatted string", len(result))
        return result
    return a % b


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": guarded_add, "*": guarded_mul, "**": guarded_pow, "<<": guarded_lshift, "%": guarded_mod,
}


def guarded_inplace(op: str, function: Callable[[Any, Any], Any], target: Any, value: Any) -> Any:
    """``target op= value``: the size checks of the binary operators; lists still change in place."""
    if type(target) is list and op in ("+=", "*="):
        if op == "*=":
            if isinstance(value, int):
                _check_length(f"{_short(target)} *= {_short(value)}", len(target) * value)
        else:
            if not hasattr(value, "__len__"):
                value = list(guarded_iter(value))
            _check_length(f"{_short(target)} += {_short(value)}", len(target) + len(value))
        return function(target, value)
    guard = _BINARY.get(op[:-1])
    return guard(target, value) if guard is not None else function(target, value)


def guarded_format(value: Any, conversion: int = -1, spec: str = "") -> str:
    """An f-string field: a container's text, widths and precisions within the size budget."""
    if type(value) is str and conversion == -1 and not spec:
        return value
    check_text_size(value, "an f-string field")
    if conversion == 114:  # !r
        value = repr(value)
    elif conversion == 115:  # !s
        value = str(value)
    elif conversion == 97:  # !a
        value = ascii(value)
    for number in _DIGITS.findall(spec):
        if len(number) > 18 or int(number) > _limit():
            raise _too_large(f"the format spec {spec[:30]!r}", int(number[:19]), "characters")
    return format(value, spec)


# --------------------------------------------------------------------------------------------------
# Builtins
# --------------------------------------------------------------------------------------------------
class BudgetPrintCollector:
    """``print`` for restricted code (RestrictedPython's PrintCollector): text within the size budget."""

    def __init__(self, _getattr_: Any = None) -> None:
        self.txt: list[str] = []
        self.length = 0
        self._getattr_ = _getattr_

    def write(self, text: str) -> None:
        """Collect printed text (scripts have no stdout)."""
        self.length += len(text)
        if self.length > _limit():
            raise _too_large("printed text", self.length, "characters")
        self.txt.append(text)

    def __call__(self) -> str:
        return "".join(self.txt)

    def _call_print(self, *objects: Any, **kwargs: Any) -> None:
        for value in objects:
            check_text_size(value, "print(...)")
        if kwargs.get("file") is None:
            kwargs["file"] = self
        else:
            self._getattr_(kwargs["file"], "write")
        print(*objects, **kwargs)



def guarded_range(*args: int) -> range:
    """``range`` whose length is within the size budget (sum, list, sorted... loop over it in C)."""
    result = range(*args)
    if len(result) > _limit():
        raise _too_large(f"range({', '.join(_short(a) for a in args)})", len(result))
    return result


def guarded_bytes(*args: Any, **kwargs: Any) -> bytes:
    """``bytes(n)`` allocates n bytes: within the size budget."""
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        _check_length(f"bytes({_short(args[0])})", args[0])
    return bytes(*args, **kwargs)


def guarded_sum(iterable: Iterable[Any], /, start: Any = 0) -> Any:
    """``sum``: numbers at C speed; anything else (sum(lists, [])) through the guarded ``+``."""
    if type(start) is int or type(start) is float:
        return sum(guarded_iter(iterable), start)
    total = start
    for item in guarded_iter(iterable):
        budget_check()  # each step copies the running total: check per item, not per thousand
        total = guarded_add(total, item)
    return total


# --------------------------------------------------------------------------------------------------
# Methods that build a large value from a small call
# --------------------------------------------------------------------------------------------------
def _width_method(name: str) -> Callable[[Any], Callable[..., Any]]:
    def bind(obj: Any) -> Callable[..., Any]:
        method = getattr(obj, name)

        def call(width: Any, *args: Any) -> Any:
            if isinstance(width, int):
                _check_width(f"{type(obj).__name__}.{name}({_short(width)})", width)
            return method(width, *args)
        return call
    return bind


def _bind_expandtabs(obj: Any) -> Callable[..., Any]:
    def expandtabs(tabsize: int = 8) -> Any:
        tab = "\t" if isinstance(obj, str) else b"\t"
        if isinstance(tabsize, int):
            _check_length(f"expandtabs({_short(tabsize)})", len(obj) + obj.count(tab) * max(tabsize, 0))
        return obj.expandtabs(tabsize)
    return expandtabs


def _bind_join(obj: Any) -> Callable[..., Any]:
    def join(iterable: Iterable[Any]) -> Any:
        items = list(guarded_iter(iterable))
        total = len(obj) * max(len(items) - 1, 0)
        total += sum(len(item) for item in items if isinstance(item, (str, bytes, bytearray)))
        _check_length(f"{_short(obj)}.join(...)", total)
        return obj.join(items)
    return join


def _bind_replace(obj: Any) -> Callable[..., Any]:
    def replace(old: Any, new: Any, count: int = -1) -> Any:
        if isinstance(old, (str, bytes)) and isinstance(new, (str, bytes)) and len(new) > len(old):
            found = obj.count(old) if old else len(obj) + 1
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            _check_length(f"{_short(obj)}.replace(...)", len(obj) + found * (len(new) - len(old)))
        return obj.replace(old, new, count)
    return replace


def _bind_translate(obj: Any) -> Callable[..., Any]:
    def translate(table: Any, *args: Any) -> Any:
        if isinstance(table, dict):
            longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
            _check_length(f"{_short(obj)}.translate(...)", len(obj) * longest)
        return obj.translate(table, *args)
    return translate


def _bind_extend(obj: list[Any]) -> Callable[..., Any]:
    def extend(iterable: Iterable[Any]) -> None:
        if not hasattr(iterable, "__len__"):
            iterable = list(guarded_iter(iterable))
        _check_length(f"{_short(obj)}.extend(...)", len(obj) + len(iterable))  # type: ignore[arg-type]
        obj.extend(iterable)
    return extend


def _bind_to_bytes(obj: int) -> Callable[..., Any]:
    def to_bytes(length: int = 1, *args: Any, **kwargs: Any) -> bytes:
        if isinstance(length, int):
            _check_length(f"int.to_bytes({_short(length)})", length)
        return obj.to_bytes(length, *args, **kwargs)
    return to_bytes


_TEXT_METHODS: dict[str, Callable[[Any], Callable[..., Any]]] = {
    **{name: _width_method(name) for name in ("ljust", "rjust", "center", "zfill")},
    "expandtabs": _bind_expandtabs, "join": _bind_join, "replace": _bind_replace,
}
# (type, attribute name) -> a function returning the guarded bound method.
GUARDED_METHODS: dict[tuple[type, str], Callable[[Any], Callable[..., Any]]] = {
    **{(kind, name): bind for kind in (str, bytes, bytearray) for name, bind in _TEXT_METHODS.items()},
    (str, "translate"): _bind_translate,
    (list, "extend"): _bind_extend,
    (bytearray, "extend"): _bind_extend,  # type: ignore[dict-item]
    (int, "to_bytes"): _bind_to_bytes,
}
GUARDED_METHOD_NAMES = frozenset(name for _, name in GUARDED_METHODS)


def guarded_method(obj: Any, name: str) -> Callable[..., Any] | None:
    """The size-checked version of ``obj.name`` when that method can build a huge value, else None."""
    bind = GUARDED_METHODS.get((type(obj), name))
    return bind(obj) if bind is not None else None


# --------------------------------------------------------------------------------------------------
# Module functions
# --------------------------------------------------------------------------------------------------
_LN2 = math.log(2)


def _log2_factorial(n: int) -> float:
    return math.lgamma(n + 1) / _LN2 if n > 1 else 0.0


def _factorial(n: Any) -> int:
    if isinstance(n, int) and n > 20 and _log2_factorial(n) > _limit():
        raise _too_large(f"factorial({_short(n)})", math.ceil(_log2_factorial(n)), "bits")
    return math.factorial(n)


def _comb(n: Any, k: Any) -> int:
    if isinstance(n, int) and isinstance(k, int) and 0 <= k <= n:
        bits = _log2_factorial(n) - _log2_factorial(k) - _log2_factorial(n - k)
        if bits > _limit():
            raise _too_large(f"comb({_short(n)}, {_short(k)})", math.ceil(bits), "bits")
    return math.comb(n, k)


def _perm(n: Any, k: Any = None) -> int:
    if isinstance(n, int) and (k is None or isinstance(k, int)) and n >= 0:
        kk = n if k is None else k
        if 0 <= kk <= n:
            bits = _log2_factorial(n) - _log2_factorial(n - kk)
            if bits > _limit():
                raise _too_large(f"perm({_short(n)}, {_short(kk)})", math.ceil(bits), "bits")
    return math.perm(n, k)


def _prod(iterable: Iterable[Any], /, *, start: Any = 1) -> Any:
    total = start
    for item in guarded_iter(iterable):
        budget_check()  # each step multiplies a growing number
        total = guarded_mul(total, item)
    return total


def _lcm(*integers: Any) -> int:
    bits = sum(i.bit_length() for i in integers if isinstance(i, int))
    if bits > _limit():
        raise _too_large("lcm(...)", bits, "bits")
    return math.lcm(*integers)


MATH_OVERRIDES: dict[str, Callable[..., Any]] = {
    "factorial": _factorial, "comb": _comb, "perm": _perm, "prod": _prod, "lcm": _lcm,
}


def _decimal_context(*args: Any, **kwargs: Any) -> _DecimalContext:
    context = _DecimalContext(*args, **kwargs)
    if context.prec > _limit():
        raise _too_large("a decimal context", context.prec, "digits")
    return context


def _localcontext(ctx: Any = None, **kwargs: Any) -> Any:
    prec = kwargs.get("prec", ctx.prec if isinstance(ctx, _DecimalContext) else 0)
    if isinstance(prec, int) and prec > _limit():
        raise _too_large("a decimal context", prec, "digits")
    return _decimal_localcontext(ctx, **kwargs)


DECIMAL_OVERRIDES: dict[str, Callable[..., Any]] = {"Context": _decimal_context, "localcontext": _localcontext}


# --------------------------------------------------------------------------------------------------
# re, backed by the regex package: matching stops when the call's time budget runs out
# --------------------------------------------------------------------------------------------------
def _regex_timeout(exc: TimeoutError) -> ScriptBudgetError:
    budget = state.current[1]
    limit = f"{budget.time_ms} ms " if budget is not None else ""
    return ScriptBudgetError(f"regular expression ran longer than the script's {limit}budget")


class _Replacement:
    """A sub()/subn() replacement that counts what it adds, so the result stays within the size budget."""

    __slots__ = ("built", "limit", "repl")

    def __init__(self, repl: Any, base: int) -> None:
        self.repl = repl
        self.built = base
        self.limit = _limit()

    def __call__(self, match: Any) -> Any:
        piece = self.repl(match) if callable(self.repl) else match.expand(self.repl)
        if isinstance(piece, (str, bytes)):
            self.built += len(piece)
            if self.built > self.limit:
                raise _too_large("the substituted string", self.built)
        return piece


class Pattern:
    """A compiled pattern for restricted code: regex's pattern, every call bounded by the budget."""

    __slots__ = ("_pattern",)

    def __init__(self, pattern: Any) -> None:
        self._pattern = pattern

    @property
    def pattern(self) -> Any:
        """The source of the pattern."""
        return self._pattern.pattern

    @property
    def flags(self) -> int:
        """The pattern's flags."""
        return int(self._pattern.flags)

    @property
    def groups(self) -> int:
        """The number of capturing groups."""
        return int(self._pattern.groups)

    @property
    def groupindex(self) -> dict[str, int]:
        """Group names and their numbers."""
        return dict(self._pattern.groupindex)

    def _run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._pattern, name)(*args, timeout=remaining_seconds(), **kwargs)
        except TimeoutError as exc:
            raise _regex_timeout(exc) from None

    def match(self, string: Any, *args: Any) -> Any:
        """As re.Pattern.match."""
        return self._run("match", string, *args)

    def search(self, string: Any, *args: Any) -> Any:
        """As re.Pattern.search."""
        return self._run("search", string, *args)

    def fullmatch(self, string: Any, *args: Any) -> Any:
        """As re.Pattern.fullmatch."""
        return self._run("fullmatch", string, *args)

    def findall(self, string: Any, *args: Any) -> list[Any]:
        """As re.Pattern.findall."""
        return list(self._run("findall", string, *args))

    def finditer(self, string: Any, *args: Any) -> Iterator[Any]:
        """As re.Pattern.finditer; the matches are found at once, within the budget."""
        return iter(list(self._run("finditer", string, *args)))

    def split(self, string: Any, maxsplit: int = 0) -> list[Any]:
        """As re.Pattern.split."""
        return list(self._run("split", string, maxsplit))

    def sub(self, repl: Any, string: Any, count: int = 0) -> Any:
        """As re.Pattern.sub."""
        return self._run("sub", _Replacement(repl, len(string)), string, count)

    def subn(self, repl: Any, string: Any, count: int = 0) -> Any:
        """As re.Pattern.subn."""
        return self._run("subn", _Replacement(repl, len(string)), string, count)

    def __repr__(self) -> str:
        return f"re.compile({self._pattern.pattern!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other._pattern == self._pattern

    def __hash__(self) -> int:
        return hash(self._pattern)


def _compile(pattern: Any, flags: int = 0) -> Pattern:
    if isinstance(pattern, Pattern):
        return pattern
    try:
        # regex defaults to VERSION0, which behaves like re; the compile itself is bounded by the source.
        return Pattern(regex.compile(pattern, flags))
    except TimeoutError as exc:  # pragma: no cover (compiling takes no timeout)
        raise _regex_timeout(exc) from None


def _searcher(name: str) -> Callable[..., Any]:
    def call(pattern: Any, string: Any, flags: int = 0) -> Any:
        return getattr(_compile(pattern, flags), name)(string)
    call.__name__ = name
    call.__doc__ = f"As re.{name}, within the script's time and size budget."
    return call


def _split(pattern: Any, string: Any, maxsplit: int = 0, flags: int = 0) -> list[Any]:
    """As re.split, within the script's time budget."""
    return _compile(pattern, flags).split(string, maxsplit)


def _sub(pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0) -> Any:
    """As re.sub, within the script's time and size budget."""
    return _compile(pattern, flags).sub(repl, string, count)


def _subn(pattern: Any, repl: Any, string: Any, count: int = 0, flags: int = 0) -> Any:
    """As re.subn, within the script's time and size budget."""
    return _compile(pattern, flags).subn(repl, string, count)


RE_NAMES: dict[str, Any] = {
    name: _searcher(name) for name in ("match", "search", "fullmatch", "findall", "finditer")
}
RE_NAMES.update({"split": _split, "sub": _sub, "subn": _subn})
RE_NAMES.update({
    "compile": _compile, "escape": regex.escape, "error": regex.error,
    "purge": lambda: None,
    **{flag: getattr(regex, flag) for flag in ("A", "ASCII", "I", "IGNORECASE", "L", "LOCALE", "M",
                                                "MULTILINE", "S", "DOTALL", "U", "UNICODE", "X", "VERBOSE",
                                                "NOFLAG") if hasattr(regex, flag)},
})
if "NOFLAG" not in RE_NAMES:
    RE_NAMES["NOFLAG"] = 0
# Objects whose methods match without a timeout: restricted code must not get hold of them
# (a match object's .re is the underlying pattern).
RAW_REGEX_TYPES = (type(regex.compile("")),)


def _bind_expand(match: Any) -> Callable[..., Any]:
    def expand(template: Any) -> Any:
        if isinstance(template, (str, bytes)):
            # Every group reference can copy up to the whole searched string.
            refs = template.count("\\") if isinstance(template, str) else template.count(b"\\")
            _check_length("Match.expand(...)", len(template) + refs * len(match.string or ""))
        return match.expand(template)
    return expand


GUARDED_METHODS[(type(regex.match("", "")), "expand")] = _bind_expand
GUARDED_METHOD_NAMES = frozenset(name for _, name in GUARDED_METHODS)
