"""The time and size budget of BPMN expressions and scripts: every attack is stopped quickly with
ScriptBudgetError, ordinary code still runs, the limits are configurable and per thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.engine import ScriptError
from app.engine.budget import Budget, ScriptBudgetError
from app.engine.restricted import RestrictedEnvironment
from tests.support import engine_for_tests

DATA = Path(__file__).resolve().parent.parent / "data"
BUDGET_MS = 300
# Generous: the budget plus start-up, a regex timeout's coarse clock and a busy shared machine.
MARGIN_S = 2.0


@pytest.fixture
def env() -> RestrictedEnvironment:
    return RestrictedEnvironment(budget=Budget(time_ms=BUDGET_MS, size=1_000_000))


def run(env: RestrictedEnvironment, source: str, data: dict[str, Any] | None = None) -> Any:
    """Evaluate an expression (one line, no statement) or execute a script."""
    data = dict(data or {})
    is_script = "\n" in source or any(source.startswith(k) for k in ("import ", "x = ", "for ", "while "))
    if is_script:
        env.execute(source, data)
        return data
    return env.evaluate(source, data)


def stopped(env: RestrictedEnvironment, source: str, data: dict[str, Any] | None = None) -> tuple[str, float]:
    """Run ``source``; it must raise ScriptBudgetError. Returns (message, seconds taken)."""
    started = time.monotonic()
    with pytest.raises(ScriptBudgetError) as caught:
        run(env, source, data)
    return str(caught.value), time.monotonic() - started


# --------------------------------------------------------------------------------------------------
# The catalogue: each is stopped, with the clear error, within the budget and a margin
# --------------------------------------------------------------------------------------------------
TIME_ATTACKS = {
    "while True": "while True:\n    pass",
    "while True swallowing the stop": "while True:\n    try:\n        x = 1\n    except Exception:\n        pass",
    "loop inside try/except around it": "try:\n    while True:\n        pass\nexcept Exception:\n    pass\nx = 1",
    "loop in an except handler": "try:\n    1 / 0\nexcept Exception:\n    while True:\n        pass",
    "exponential recursion": "def f(n):\n    return 1 if n == 0 else f(n - 1) + f(n - 1)\nx = f(60)",
    "exponential lambda recursion": "f = lambda n: 1 if n == 0 else f(n - 1) + f(n - 1)\nx = f(60)",
    "nested comprehensions": "[0 for a in range(1000) for b in range(1000) for c in range(1000)]",
    "generator drained by sum": "sum(x for x in range(10**6) for y in range(10**6))",
    "for over nested ranges": "for a in range(10**6):\n    for b in range(10**6):\n        pass",
    "endless iter(callable, sentinel)": "list(iter(int, 1))",
    "generator function": "def g():\n    while True:\n        yield 1\nx = sum(g())",
    "math.prod of a long range": "import math\nx = math.prod(range(1, 10**6))",
    "sum of lists": "sum([[0] * 10] * 100000, [])",  # quadratic copying, never past the size budget
    "catastrophic regex": "import re\nx = re.match('(a|a)+$', 'a' * 40 + 'b')",
    "catastrophic compiled regex": "import re\nx = re.compile('(a|a)+$').search('a' * 40 + 'b')",
    "regex on many strings": "import re\nx = [re.search('(a|a)+$', 'a' * 30 + 'b') for i in range(100)]",
}

SIZE_ATTACKS = {
    "10**10**7": "10**10**7",
    "pow(10, 10**8)": "pow(10, 10**8)",
    "1 << 10**10": "1 << 10**10",
    "[0] * 10**10": "[0] * 10**10",
    "'x' * 10**10": "'x' * 10**10",
    "10**10 * 'x'": "10**10 * 'x'",
    "for over a huge range": "for i in range(10**12):\n    pass",
    "sum(range(10**12))": "sum(range(10**12))",
    "list(range(10**10))": "list(range(10**10))",
    "sorted(range(10**10))": "sorted(range(10**10))",
    "bytes(10**10)": "bytes(10**10)",
    "ljust": "'x'.ljust(10**10)",
    "rjust": "'x'.rjust(10**10)",
    "center": "'x'.center(10**10)",
    "zfill": "'1'.zfill(10**10)",
    "unbound str.ljust": "str.ljust('x', 10**10)",
    "getattr(str, 'center')": "getattr(str, 'center')('x', 10**10)",
    "expandtabs": "('\\t' * 100).expandtabs(10**8)",
    "'%0999999999d' % 1": "'%0999999999d' % 1",
    "'%*d' with a huge width": "'%*d' % (999999999, 1)",
    "'%.999999999f'": "'%.999999999f' % 1.5",
    "f-string width": "f'{1:>999999999}'",
    "f-string width from data": "f'{1:>{w}}'",
    "f-string with conversion and width": "f'{1!r:>999999999}'",
    "math.factorial": "import math\nx = math.factorial(10**7)",
    "math.comb": "import math\nx = math.comb(10**8, 5 * 10**7)",
    "math.perm": "import math\nx = math.perm(10**7)",
    "x += x doubling a list": "x = [0] * 10**6\nx += x",
    "x *= n on a list": "x = [0]\nx *= 10**10",
    "x **= n": "x = 10\nx **= 10**8",
    "x <<= n": "x = 1\nx <<= 10**10",
    "string doubling": "x = 'x' * 10**6\nx = x + x",
    "list.extend doubling": "x = [0] * 10**6\nx.extend(x)",
    "join": "x = 'x' * 10**6\nx = ''.join([x] * 100)",
    "replace": "x = 'x' * 10**5\nx = x.replace('x', x)",
    "translate": "x = 'x' * 10**5\nx = x.translate({120: x})",
    "int.to_bytes": "(1).to_bytes(10**10, 'big')",
    "decimal context precision": "import decimal\nx = decimal.Context(prec=10**9)",
    "decimal localcontext precision": "import decimal\nx = decimal.localcontext(prec=10**9)",
    "f-string of a list of one big string": "x = ['y' * 10**5] * 1000\nz = f'{x}'",
    "%s of a list of one big string": "x = ['y' * 10**5] * 1000\nz = '%s' % (x,)",
    "%(name)s of a dict of one big string": "x = {'a': ['y' * 10**5] * 1000}\nz = '%(a)s' % x",
    "repr of a list of one big string": "x = ['y' * 10**5] * 1000\nz = repr(x)",
    "print of a list of one big string": "x = ['y' * 10**5] * 1000\nprint(x)",
    "printing in a loop": "x = 'y' * 10**5\nfor i in range(100):\n    print(x)",
    "re.sub growing": "import re\nx = re.sub('', 'y' * 1000, 'x' * 100000)",
    "match.expand growing": "import re\nm = re.match('.*', 'x' * 100000)\nx = m.expand('\\\\g<0>' * 1000)",
}


@pytest.mark.parametrize("source", TIME_ATTACKS.values(), ids=TIME_ATTACKS.keys())
def test_time_attacks_are_stopped_at_the_time_budget(env: RestrictedEnvironment, source: str) -> None:
    message, seconds = stopped(env, source)
    assert f"{BUDGET_MS} ms budget" in message
    assert seconds < MARGIN_S, f"stopped only after {seconds:.2f} s"


@pytest.mark.parametrize("source", SIZE_ATTACKS.values(), ids=SIZE_ATTACKS.keys())
def test_size_attacks_are_refused_before_they_are_built(env: RestrictedEnvironment, source: str) -> None:
    message, seconds = stopped(env, source, {"w": 999_999_999})
    assert message.startswith("value too large: ") and "(budget 1,000,000)" in message
    assert seconds < MARGIN_S


def test_the_size_message_names_the_operation_and_the_sizes(env: RestrictedEnvironment) -> None:
    message, _ = stopped(env, "'x' * 10**10")
    assert message == "value too large: 'x' * 10000000000 would have 10,000,000,000 items (budget 1,000,000)"
    message, _ = stopped(env, "10 ** 10 ** 7")
    assert message == "value too large: 10 ** 10000000 would have 33,219,281 bits (budget 1,000,000)"


def test_deep_recursion_is_a_budget_error(env: RestrictedEnvironment) -> None:
    message, seconds = stopped(env, "def f(n):\n    return f(n + 1)\nx = f(0)")
    assert "recursed deeper" in message and seconds < MARGIN_S


def test_a_script_that_swallows_the_stop_still_fails(env: RestrictedEnvironment) -> None:
    # No loop after the except: the script would finish normally, late. The call fails anyway.
    source = "try:\n    while True:\n        pass\nexcept Exception as e:\n    caught = str(e)\n"
    data: dict[str, Any] = {}
    with pytest.raises(ScriptBudgetError, match="300 ms budget"):
        env.execute(source, data)


def test_code_escaping_its_call_is_refused(env: RestrictedEnvironment) -> None:
    escaped = env.evaluate("lambda: 1", {})
    with pytest.raises(ScriptBudgetError, match="outside a budgeted call"):
        escaped()


def test_a_regex_match_object_does_not_hand_out_the_raw_pattern(env: RestrictedEnvironment) -> None:
    from app.engine.restricted import ScriptSecurityError

    with pytest.raises(ScriptSecurityError, match="underlying regex pattern"):
        env.execute("import re\nx = re.match('a', 'a').re", {})


# --------------------------------------------------------------------------------------------------
# Ordinary code runs as before
# --------------------------------------------------------------------------------------------------
ORDINARY = [
    ("1 + 2 * 3 ** 2 - (7 % 4) + (1 << 4)", {}, 32),
    ("total * 1.5 + 2", {"total": 4}, 8.0),
    ("'ab' * 3 + 'c'", {}, "abababc"),
    ("[0] * 3 + [1]", {}, [0, 0, 0, 1]),
    ("(1, 2) * 2", {}, (1, 2, 1, 2)),
    ("2 ** 100", {}, 2 ** 100),
    ("2 ** -1", {}, 0.5),
    ("pow(3, 4) + pow(2, 10, 1000)", {}, 81 + 24),
    ("sum(range(1000))", {}, 499500),
    ("sum([1.5, 2.5]) + sum([1, 2], 10)", {}, 17.0),
    ("sum([[1], [2]], [])", {}, [1, 2]),
    ("list(range(2, 10, 3))", {}, [2, 5, 8]),
    ("len(range(10**9, 10**9 + 5))", {}, 5),
    ("[i * j for i in range(3) for j in range(3) if i != j]", {}, [0, 0, 0, 2, 0, 2]),
    ("{k: len(v) for k, v in d.items()}", {"d": {"a": "xyz"}}, {"a": 3}),
    ("'%05d-%s-%.2f' % (7, 'x', 1.5)", {}, "00007-x-1.50"),
    ("'%(a)s' % {'a': 1}", {}, "1"),
    ("f'{n:03d}|{name!r}|{x:>6.2f}|{name:{w}}|{name}'", {"n": 7, "name": "ab", "x": 1.5, "w": 4},
     "007|'ab'|  1.50|ab  |ab"),
    ("'ab'.center(6, '*') + 'x'.ljust(3) + '7'.zfill(3) + 'y'.rjust(2)", {}, "**ab**x  007 y"),
    ("'-'.join(['a', 'b']) + 'aXa'.replace('X', 'yy') + 'a\\tb'.expandtabs(4)", {}, "a-bayyaa   b"),
    ("str.upper('ab') + str.join(',', ['x', 'y'])", {}, "ABx,y"),
    ("bytes(3) + (258).to_bytes(2, 'big')", {}, b"\x00\x00\x00\x01\x02"),
    ("list(iter([1, 2]))", {}, [1, 2]),
    ("sorted(items, key=lambda i: -i)", {"items": [1, 3, 2]}, [3, 2, 1]),
    ("'abc'.translate({98: 'B'})", {}, "aBc"),
]


@pytest.mark.parametrize(("expression", "data", "expected"), ORDINARY)
def test_ordinary_expressions_still_work(env: RestrictedEnvironment, expression: str, data: dict[str, Any],
                                          expected: Any) -> None:
    assert env.evaluate(expression, dict(data)) == expected == eval(expression, {}, dict(data))  # noqa: S307


def test_ordinary_scripts_still_work(env: RestrictedEnvironment) -> None:
    source = """
import math
import re
import statistics
import decimal
def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
i = 0
while i < 1000:
    i += 1
parts = [1, 2]
parts += [3]
parts *= 2
s = 'ab'
s += 'c'
s *= 2
big = 2
big **= 64
shifted = 1
shifted <<= 10
fact = math.factorial(20) + math.comb(10, 3) + math.perm(5, 2) + math.prod([2, 3]) + math.lcm(4, 6)
mean = statistics.mean([1, 2, 3, 4])
price = str(decimal.Decimal('1.005').quantize(decimal.Decimal('0.01')))
with decimal.localcontext(prec=50):
    third = str(decimal.Decimal(1) / decimal.Decimal(3))[:6]
serial = re.match(r'SN-(\\d+)', 'SN-42').group(1)
words = re.findall(r'[a-z]+', 'ab cd, ef')
loud = re.sub(r'[aeiou]', lambda m: m.group(0).upper(), 'banana')
numbered = re.sub(r'(\\d+)', r'<\\1>', 'a1b22')
count = re.subn('a', 'o', 'banana')[1]
pieces = re.split(r'\\s*,\\s*', 'a , b,c', maxsplit=1)
flagged = bool(re.search('ABC', 'xabcx', re.I)) and bool(re.fullmatch('a.c', 'abc', flags=re.IGNORECASE))
pattern = re.compile(r'(?P<num>\\d+)')
found = [m.group('num') for m in pattern.finditer('1 and 23')]
first = next(re.finditer('b', 'abc')).start()
named = pattern.search('x7').groupdict()
spans = pattern.match('12x').span()
escaped = re.escape('a.b')
f = fib(30)
"""
    data: dict[str, Any] = {}
    env.execute(source, data)
    assert data["i"] == 1000 and data["f"] == 832040
    assert data["parts"] == [1, 2, 3, 1, 2, 3] and data["s"] == "abcabc"
    assert data["big"] == 2 ** 64 and data["shifted"] == 1024
    assert data["fact"] == 2432902008176640000 + 120 + 20 + 6 + 12
    assert data["mean"] == 2.5 and data["price"] == "1.00" and data["third"] == "0.3333"
    assert data["serial"] == "42" and data["words"] == ["ab", "cd", "ef"]
    assert data["loud"] == "bAnAnA" and data["numbered"] == "a<1>b<22>" and data["count"] == 3
    assert data["pieces"] == ["a", "b,c"] and data["flagged"] is True
    assert data["found"] == ["1", "23"] and data["named"] == {"num": "7"} and data["spans"] == (0, 2)
    assert data["escaped"] == "a\\.b" and data["first"] == 1


def test_values_up_to_the_size_budget_are_allowed(env: RestrictedEnvironment) -> None:
    assert len(env.evaluate("'x' * 10**6", {})) == 10 ** 6
    assert env.evaluate("(2 ** 999_000).bit_length()", {}) == 999_001
    assert len(env.evaluate("list(range(10**6))", {})) == 10 ** 6


def test_a_loop_within_budget_is_not_stopped() -> None:
    # A budget far above the loop's cost (~50-150 ms here, several times that on a machine busy with other
    # work): what is checked is that the checks themselves do not stop a loop that fits.
    env = RestrictedEnvironment(budget=Budget(time_ms=5000))
    data: dict[str, Any] = {}
    env.execute("n = 0\nfor i in range(100000):\n    n += i", data)
    assert data["n"] == sum(range(100000))


# --------------------------------------------------------------------------------------------------
# Configurable
# --------------------------------------------------------------------------------------------------
def test_the_time_budget_is_configurable() -> None:
    short = RestrictedEnvironment(budget=Budget(time_ms=50))
    message, seconds = stopped(short, "while True:\n    pass")
    assert "50 ms budget" in message and 0.045 < seconds < 1.0
    long = RestrictedEnvironment(budget=Budget(time_ms=1500))
    data: dict[str, Any] = {}
    long.execute("n = 0\nwhile n < 300000:\n    n += 1", data)  # ~0.1-0.4 s: over 50 ms, within 1.5 s
    assert data["n"] == 300000


def test_the_size_budget_is_configurable() -> None:
    small = RestrictedEnvironment(budget=Budget(size=10))
    assert small.evaluate("'x' * 10", {}) == "x" * 10
    with pytest.raises(ScriptBudgetError, match=r"would have 11 items \(budget 10\)"):
        small.evaluate("'x' * 11", {})
    with pytest.raises(ScriptBudgetError, match="budget 10"):
        small.evaluate("list(range(11))", {})


def test_budgets_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Budget(time_ms=0)
    with pytest.raises(ValueError):
        Budget(size=-1)


def test_the_app_setting_reaches_the_engine(app) -> None:
    from app.engine import configure_script_budget, get_engine

    environment = get_engine().script_engine.environment
    assert environment.budget.time_ms == app.config["SCRIPT_TIME_BUDGET_MS"] == 300
    assert environment.budget.size == app.config["SCRIPT_SIZE_BUDGET"] == 1_000_000
    previous = environment.budget
    try:
        configure_script_budget(time_ms=40, size=5)
        assert (environment.budget.time_ms, environment.budget.size) == (40, 5)
    finally:
        environment.budget = previous


# --------------------------------------------------------------------------------------------------
# Through the engine: a ScriptError naming the element
# --------------------------------------------------------------------------------------------------
def test_a_looping_script_is_a_script_error_naming_the_element() -> None:
    engine = engine_for_tests(budget=Budget(time_ms=BUDGET_MS))
    definition = engine.parse((DATA / "budget_loop_at_start.bpmn").read_bytes(), "budget_loop_at_start.bpmn")
    started = time.monotonic()
    with pytest.raises(ScriptError) as caught:
        engine.start(definition, {})
    assert time.monotonic() - started < MARGIN_S
    assert caught.value.element_id == "spin_at_start"
    assert "ScriptBudgetError" in str(caught.value) and "300 ms budget" in str(caught.value)


def test_a_looping_condition_is_a_script_error_naming_the_gateway() -> None:
    engine = engine_for_tests(budget=Budget(time_ms=BUDGET_MS))
    definition = engine.parse((DATA / "budget_gateway_after_task.bpmn").read_bytes(), "budget_gateway.bpmn")
    instance = engine.start(definition, {})
    task = instance.ready_human_tasks()[0]
    started = time.monotonic()
    with pytest.raises(ScriptError) as caught:
        instance.complete(task.id, {"escalation_action": "other", "escalation_note": "x"})
    assert time.monotonic() - started < MARGIN_S
    assert caught.value.element_id == "heavy_check" and "300 ms budget" in str(caught.value)


# --------------------------------------------------------------------------------------------------
# Threads: each call has its own budget
# --------------------------------------------------------------------------------------------------
def test_concurrent_threads_each_get_their_own_budget() -> None:
    short = RestrictedEnvironment(budget=Budget(time_ms=BUDGET_MS))
    longer = RestrictedEnvironment(budget=Budget(time_ms=1200))
    results: dict[str, Any] = {}
    stop_ordinary = threading.Event()

    def looping(name: str, environment: RestrictedEnvironment) -> None:
        started = time.monotonic()
        try:
            environment.execute("while True:\n    pass", {})
            results[name] = ("ran", time.monotonic() - started)
        except ScriptBudgetError as exc:
            results[name] = (str(exc), time.monotonic() - started)

    def ordinary() -> None:
        runs, errors = 0, []
        while not stop_ordinary.is_set():
            data = {"items": [1, 2, 3]}
            try:
                short.execute("total = 0\nfor i in items:\n    total += i * 2", data)
                assert data["total"] == 12
                runs += 1
            except Exception as exc:  # noqa: BLE001 (recorded and asserted below)
                errors.append(exc)
        results["ordinary"] = (runs, errors)

    threads = [threading.Thread(target=looping, args=("a", short)), threading.Thread(target=looping, args=("b", short)),
               threading.Thread(target=looping, args=("long", longer)), threading.Thread(target=ordinary)]
    for thread in threads:
        thread.start()
    for thread in threads[:3]:
        thread.join(10)
    stop_ordinary.set()
    threads[3].join(10)
    for name in ("a", "b"):
        message, seconds = results[name]
        assert "300 ms budget" in message and 0.29 < seconds < MARGIN_S, results[name]
    message, seconds = results["long"]
    assert "1200 ms budget" in message and 1.19 < seconds < 1.2 + MARGIN_S, results["long"]
    runs, errors = results["ordinary"]
    assert errors == [] and runs > 100
