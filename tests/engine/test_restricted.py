"""Tests for the restricted script environment: what BPMN code may do, and the escapes it must not."""

from __future__ import annotations

import copy
import math
import os
import subprocess
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.util.task import TaskState

from app.engine.restricted import (
    ALLOWED_MODULES,
    RestrictedEnvironment,
    ScriptCompileError,
    ScriptSecurityError,
    add_duration,
    check_expression,
    check_script,
    date_of,
)

PROBE_BPMN = Path(__file__).resolve().parent.parent / "data" / "restricted_probe.bpmn"
REFUSED = (ScriptSecurityError, ScriptCompileError)


@pytest.fixture
def env() -> RestrictedEnvironment:
    return RestrictedEnvironment()


@pytest.fixture
def tripwire(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Record any call to os/subprocess process functions; a marker file that must never appear."""
    calls: list[tuple[str, tuple]] = []

    def recorder(name: str):
        def record(*args, **kwargs):
            calls.append((name, args))
            return 0
        return record

    for name in ("system", "popen", "execv", "execve", "spawnv", "fork"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, recorder(f"os.{name}"))
    for name in ("run", "call", "check_call", "check_output", "Popen"):
        monkeypatch.setattr(subprocess, name, recorder(f"subprocess.{name}"))
    marker = tmp_path / "escaped"
    yield marker
    assert calls == [], f"forbidden call ran: {calls}"
    assert not marker.exists(), "restricted code wrote a file"


# --------------------------------------------------------------------------------------------------
# Ordinary code works
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expression", "data", "expected"), [
    ("1 + 2 * 3", {}, 7),
    ("total > 10 and status == 'open'", {"total": 12, "status": "open"}, True),
    ("equipment.get('model', 'none')", {"equipment": {"model": "X1"}}, "X1"),
    ("equipment.get('serial') is None", {"equipment": {}}, True),
    ("items[1]['qty']", {"items": [{"qty": 1}, {"qty": 4}]}, 4),
    ("items[-1:]", {"items": [1, 2, 3]}, [3]),
    ("[i * 2 for i in items if i > 1]", {"items": [1, 2, 3]}, [4, 6]),
    ("{k: v for k, v in d.items()}", {"d": {"a": 1}}, {"a": 1}),
    ("sum(x for x in items)", {"items": [1, 2, 3]}, 6),
    ("f'{name}-{n:03d}'", {"name": "case", "n": 7}, "case-007"),
    ("'%d' % 5", {}, "5"),
    ("'PT%dH' % hours", {"hours": 48}, "PT48H"),
    ("name.upper().strip()", {"name": " ab "}, "AB"),
    ("min(items) + max(items) + len(items) + abs(-1) + round(2.6)", {"items": [1, 5]}, 12),
    ("sorted(set(items), reverse=True)", {"items": [1, 3, 3, 2]}, [3, 2, 1]),
    ("list(reversed(list(enumerate(['a', 'b']))))", {}, [(1, "b"), (0, "a")]),
    ("any(map(bool, [0, 1])) and all(filter(None, [1, 2]))", {}, True),
    ("dict(a=1) == {'a': 1} and isinstance(1, int)", {}, True),
    ("date_of(reported_at) <= warranty_ends_on",
     {"reported_at": "2024-05-01T08:00:00+02:00", "warranty_ends_on": "2024-05-01"}, True),
    ("add_duration(reported_at, 'PT24H')", {"reported_at": "2024-05-01T08:00:00+02:00"},
     "2024-05-02T06:00:00+00:00"),
    ("  total > 1  \n", {"total": 3}, True),  # BPMN editors indent expression text
])
def test_expressions_evaluate(env: RestrictedEnvironment, expression: str, data: dict,
                              expected: object) -> None:
    assert env.evaluate(expression, data) == expected


def test_script_assignments_become_task_data(env: RestrictedEnvironment) -> None:
    context = {"amounts": [5, 7], "label": "a", "parts": ["p1"]}
    env.execute(
        "total = 0\n"
        "for amount in amounts:\n"
        "    total += amount\n"
        "label += 'b'\n"
        "parts += ['p2']\n"
        "factor = 2\n"
        "factor *= 3\n"
        "factor -= 1\n"
        "first, (second, third) = 1, (2, 3)\n"
        "for i, name in enumerate(parts):\n"
        "    last = f'{i}:{name}'\n"
        "import math\n"
        "root = math.sqrt(16)\n"
        "def double(x):\n"
        "    return x * 2\n"
        "doubled = double(total)\n"
        "summary = {'total': total}\n"
        "summary['label'] = label.upper()\n"
        "flags = [n > 6 for n in amounts]\n"
        "print('not shown anywhere')\n",
        context,
    )
    assert context == {
        "amounts": [5, 7], "label": "ab", "parts": ["p1", "p2"], "total": 12, "amount": 7,
        "factor": 5, "first": 1, "second": 2, "third": 3, "i": 1, "name": "p2", "last": "1:p2",
        "root": 4.0, "doubled": 24, "summary": {"total": 12, "label": "AB"}, "flags": [False, True],
    }


def test_execute_removes_modules_functions_and_guards(env: RestrictedEnvironment) -> None:
    context: dict = {"x": 1}
    env.execute(
        "import math\nfrom decimal import Decimal\nimport statistics as st\n"
        "def helper():\n    return 1\n"
        "gen = (i for i in [1, 2])\nit = iter([1])\nm = map(str, [1])\n"
        "y = math.floor(2.5) + helper()\n",
        context,
    )
    assert context == {"x": 1, "y": 3}
    copy.deepcopy(context)  # the engine deep-copies task data between tasks


def test_execute_cleans_up_when_the_script_fails(env: RestrictedEnvironment) -> None:
    context: dict = {"x": 1}
    with pytest.raises(ZeroDivisionError):
        env.execute("import math\ny = 2\nz = 1 / 0", context)
    assert context == {"x": 1, "y": 2}


def test_evaluate_does_not_change_the_context(env: RestrictedEnvironment) -> None:
    context = {"a": 1, "items": [1]}
    assert env.evaluate("(b := a + 1)", context) == 2
    assert env.evaluate("[i for i in items]", context) == [1]
    assert context == {"a": 1, "items": [1]}


def test_allowed_modules(env: RestrictedEnvironment) -> None:
    context: dict = {}
    env.execute(
        "import statistics\nimport re\nimport decimal\n"
        "mean = statistics.mean([1, 2, 3])\n"
        "code = re.match(r'SN-(\\d+)', 'SN-42').group(1)\n"
        "money = str(decimal.Decimal('1.10') + decimal.Decimal('2.20'))\n",
        context,
    )
    assert context == {"mean": 2, "code": "42", "money": "3.30"}
    # datetime would read the wall clock, not the system clock: BPMN code uses the helpers.
    assert set(ALLOWED_MODULES) == {"math", "statistics", "re", "decimal"}
    with pytest.raises(ScriptSecurityError):
        env.execute("import datetime", {})


def test_user_errors_propagate_as_ordinary_exceptions(env: RestrictedEnvironment) -> None:
    with pytest.raises(KeyError):
        env.evaluate("d['missing']", {"d": {}})
    with pytest.raises(NameError):
        env.evaluate("undefined_name", {})
    with pytest.raises(ValueError, match="boom"):
        env.execute("raise ValueError('boom')", {})


def test_extra_functions(env: RestrictedEnvironment) -> None:
    custom = RestrictedEnvironment(functions={"double": lambda x: 2 * x})
    context: dict = {"n": 2}
    custom.execute("m = double(n)\nd = date_of('2024-01-01T23:00:00-05:00')", context)
    assert context == {"n": 2, "m": 4, "d": "2024-01-02"}
    with pytest.raises(NameError):
        env.evaluate("double(1)", {})
    with pytest.raises(ValueError, match="_hidden"):
        RestrictedEnvironment(functions={"_hidden": len})


def test_task_data_cannot_replace_helpers_or_guards(env: RestrictedEnvironment) -> None:
    with pytest.raises(ValueError, match="add_duration"):
        env.execute("x = 1", {"add_duration": "oops"})
    with pytest.raises(ValueError, match="_getattr_"):
        env.execute("x = 1", {"_getattr_": "oops"})
    # evaluate() applies the guards last, so data named like a guard or builtins is simply ignored
    assert env.evaluate("x", {"x": 1, "__builtins__": {}, "_getattr_": None}) == 1
    with pytest.raises(ScriptCompileError):
        env.evaluate("_getattr_", {"_getattr_": None})


# --------------------------------------------------------------------------------------------------
# The escape catalogue
# --------------------------------------------------------------------------------------------------
# Expressions: each is tried through evaluate() and, as `result = <expr>`, through execute().
ESCAPE_EXPRESSIONS = {
    "__import__": "__import__('os').system('touch {marker}')",
    "subclasses via tuple": "().__class__.__base__.__subclasses__()",
    "subclasses via str mro": "''.__class__.__mro__[1].__subclasses__()",
    "lambda globals": "(lambda: 0).__globals__",
    "helper globals": "add_duration.__globals__['__builtins__']",
    "helper code": "add_duration.__code__",
    "builtins subscript": "__builtins__['eval']('1')",
    "builtins dict": "__builtins__.__dict__",
    "getattr dunder": "getattr(x, '__class__')",
    "getattr dynamic dunder": "getattr(x, '__' + 'class__')",
    "getattr dynamic helper globals": "getattr(add_duration, '__glob' + 'als__')",
    "getattr with default": "getattr(x, '__class__', None)",
    "hasattr dunder": "hasattr(x, '__class__')",
    "str.format walk": "'{0.__class__}'.format(1)",
    "str.format_map walk": "'{v.__class__.__base__}'.format_map({'v': 1})",
    "str.format unbound": "str.format('{0.__class__}', 1)",
    "str.format via getattr": "getattr('', 'for' + 'mat')('{0.__class__}', 1)",
    "str.format_map via getattr": "getattr(str, 'format_map')('{v.__class__}', {'v': 1})",
    "str.format on data": "template.format(x)",
    "open": "open('{marker}', 'w')",
    "eval": "eval('1')",
    "exec": "exec('x = 1')",
    "compile": "compile('1', '', 'eval')",
    "globals": "globals()",
    "locals": "locals()",
    "vars": "vars()",
    "dir": "dir()",
    "type": "type(1)",
    "object": "object()",
    "setattr": "setattr(x, 'y', 1)",
    "mro": "int.mro()",
    "generator frame": "(x for x in []).gi_frame.f_globals",
    "generator frame dynamic": "getattr((x for x in []), 'gi_' + 'frame')",
    "generator code": "getattr((x for x in []), 'gi_code')",
    "reduce_ex": "[].__reduce_ex__(2)",
    "reduce_ex dynamic": "getattr([], '__reduce' + '_ex__')(2)",
}

# Statements that only make sense in a script.
ESCAPE_SCRIPTS = {
    "import os": "import os\nos.system('touch {marker}')",
    "import subprocess": "import subprocess\nsubprocess.run(['touch', '{marker}'])",
    "from os import system": "from os import system\nsystem('touch {marker}')",
    "import os.path": "import os.path",
    "import sys": "import sys\nsys.modules['os'].system('touch {marker}')",
    "import builtins": "import builtins\nbuiltins.open('{marker}', 'w')",
    "import importlib": "import importlib\nimportlib.import_module('os')",
    "submodule via from-import": "from statistics import sys",
    "datetime (wall clock) via from-import": "from datetime import datetime",
    "submodule of re via from-import": "from re import copyreg",
    "hidden decimal context": "from decimal import getcontext\ngetcontext().prec = 1",
    "star import": "from math import *",
    "relative import": "from . import restricted",
    "alias eval": "e = eval\ne('1')",
    "alias open": "o = open\no('{marker}', 'w')",
    "class definition": "class Escape:\n    pass",
    "traceback frame": "try:\n    1 / 0\nexcept Exception as err:\n    tb = err.__traceback__",
    "generator function frame": "def gen():\n    yield 1\nframe = gen().gi_frame",
    "module attribute write": "import math\nmath.pi = 3",
    "module attribute delete": "import math\ndel math.pi",
    "helper attribute write": "add_duration.x = 1",
    "setattr on module": "import math\nsetattr(math, 'pi', 3)",
    "augmented attribute": "import math\nmath.pi += 1",
    "underscore variable": "_getattr_ = getattr",
    "match class pattern": "match template:\n    case str(format=f):\n        f(1)",
    "exception group": "try:\n    pass\nexcept* ValueError:\n    pass",
    "async": "async def f():\n    pass",
}

ESCAPE_DATA = {"x": 1, "template": "{0.__class__.__mro__}"}


def _fill(source: str, marker: Path) -> str:
    return source.replace("{marker}", str(marker))


@pytest.mark.parametrize("source", ESCAPE_EXPRESSIONS.values(), ids=ESCAPE_EXPRESSIONS.keys())
def test_escape_expression_refused_by_evaluate(env: RestrictedEnvironment, tripwire: Path,
                                               source: str) -> None:
    with pytest.raises(REFUSED):
        env.evaluate(_fill(source, tripwire), dict(ESCAPE_DATA))


@pytest.mark.parametrize("source", ESCAPE_EXPRESSIONS.values(), ids=ESCAPE_EXPRESSIONS.keys())
def test_escape_expression_refused_by_execute(env: RestrictedEnvironment, tripwire: Path,
                                              source: str) -> None:
    context = dict(ESCAPE_DATA)
    with pytest.raises(REFUSED):
        env.execute(f"result = {_fill(source, tripwire)}", context)
    assert "result" not in context


@pytest.mark.parametrize("source", ESCAPE_SCRIPTS.values(), ids=ESCAPE_SCRIPTS.keys())
def test_escape_script_refused(env: RestrictedEnvironment, tripwire: Path, source: str) -> None:
    with pytest.raises(REFUSED):
        env.execute(_fill(source, tripwire), dict(ESCAPE_DATA))
    assert math.pi == pytest.approx(3.14159, abs=1e-5)


@pytest.mark.parametrize(("source", "fragment"), [
    ("().__class__", "__class__"),
    ("getattr(x, '__' + 'class__')", "'__class__'"),
    ("'{0.__class__}'.format(1)", "str.format"),
    ("open('/etc/passwd')", "open"),
    ("type(1)", "type"),
])
def test_refusals_name_what_was_forbidden(env: RestrictedEnvironment, source: str, fragment: str) -> None:
    with pytest.raises(REFUSED) as caught:
        env.evaluate(source, {"x": 1})
    assert fragment in str(caught.value)


def test_import_refusal_names_the_module(env: RestrictedEnvironment) -> None:
    with pytest.raises(ScriptSecurityError, match="import of 'os' is not allowed"):
        env.execute("import os", {})


def test_allowed_modules_hide_their_submodules(env: RestrictedEnvironment) -> None:
    # statistics and re each import sys or copyreg; the copies handed to scripts do not.
    for source in ("import statistics\ns = statistics.sys",
                   "import re\ns = re.copyreg", "import statistics\ns = getattr(statistics, 'random')"):
        with pytest.raises(AttributeError):
            env.execute(source, {})


def test_non_exception_throwables_are_withheld(env: RestrictedEnvironment) -> None:
    # SpiffWorkflow only catches Exception: SystemExit from a script would stop the worker.
    for name in ("SystemExit", "KeyboardInterrupt", "BaseException", "GeneratorExit"):
        with pytest.raises(NameError):
            env.execute(f"raise {name}()", {})


# --------------------------------------------------------------------------------------------------
# Compile checks and the cache
# --------------------------------------------------------------------------------------------------
def test_check_expression_and_script() -> None:
    check_expression("total > 10 and status == 'open'")
    check_script("x = 1\nfor i in range(3):\n    x += i\n")
    with pytest.raises(ScriptCompileError) as caught:
        check_script("x = 1\ny = _secret\n")
    assert caught.value.line == 2
    assert "_secret" in caught.value.message
    assert caught.value.source == "x = 1\ny = _secret\n"
    with pytest.raises(ScriptCompileError) as caught:
        check_expression("total >")
    assert caught.value.line == 1
    assert "SyntaxError" in caught.value.message
    with pytest.raises(ScriptCompileError):
        check_expression("x = 1")  # a statement is not an expression
    with pytest.raises(ScriptCompileError, match="class definitions"):
        check_script("class A:\n    pass\n")


def test_compile_cache_reuses_code(env: RestrictedEnvironment) -> None:
    first = env.compiled("a + 1", "eval")
    assert env.compiled("a + 1", "eval") is first
    assert env.compiled("a + 1", "exec") is not first


def test_compile_cache_is_bounded() -> None:
    small = RestrictedEnvironment(cache_size=2)
    first = small.compiled("1", "eval")
    small.compiled("2", "eval")
    small.compiled("3", "eval")
    assert small.compiled("1", "eval") is not first


def test_cache_does_not_leak_globals_between_evaluations(env: RestrictedEnvironment) -> None:
    assert env.evaluate("secret", {"secret": 42}) == 42
    with pytest.raises(NameError):
        env.evaluate("secret", {})
    env.evaluate("(leaked := 1)", {})
    with pytest.raises(NameError):
        env.evaluate("leaked", {})
    env.execute("def f():\n    return 1\nkept = f()", {})
    with pytest.raises(NameError):
        env.execute("again = f()", {})
    with pytest.raises(NameError):
        env.execute("again = kept", {})


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "duration", "expected"), [
    ("2024-05-01T08:00:00+02:00", "PT24H", "2024-05-02T06:00:00+00:00"),
    ("2024-05-01T08:00:00Z", "P2D", "2024-05-03T08:00:00+00:00"),
    ("2024-05-01T08:00:00+00:00", "PT30M", "2024-05-01T08:30:00+00:00"),
    ("2024-05-01T08:00:00+00:00", "P1DT2H", "2024-05-02T10:00:00+00:00"),
    ("2024-05-01T08:00:00+00:00", "P1W", "2024-05-08T08:00:00+00:00"),
    ("2024-05-01T08:00:00+00:00", "PT1.5H", "2024-05-01T09:30:00+00:00"),
    ("2024-03-30T12:00:00+01:00", "P1D", "2024-03-31T11:00:00+00:00"),  # across a DST change: 24h
])
def test_add_duration(start: str, duration: str, expected: str) -> None:
    assert add_duration(start, duration) == expected


@pytest.mark.parametrize(("start", "duration", "message"), [
    ("2024-05-01T08:00:00", "PT1H", "no UTC offset"),
    ("2024-05-01", "PT1H", "no UTC offset"),
    ("2024-05-01T08:00:00Z", "P1M", "months or years"),
    ("2024-05-01T08:00:00Z", "P1Y", "months or years"),
    ("2024-05-01T08:00:00Z", "P1Y2M3D", "months or years"),
    ("2024-05-01T08:00:00Z", "24 hours", "not an ISO-8601 duration"),
    ("2024-05-01T08:00:00Z", "P", "not an ISO-8601 duration"),
    ("2024-05-01T08:00:00Z", "PT", "not an ISO-8601 duration"),
    ("yesterday", "PT1H", "not an ISO-8601 datetime"),
])
def test_add_duration_refuses(start: str, duration: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        add_duration(start, duration)


def test_date_of() -> None:
    assert date_of("2024-05-01T23:30:00-02:00") == "2024-05-02"
    assert date_of("2024-05-01T00:30:00+02:00") == "2024-04-30"
    with pytest.raises(ValueError, match="no UTC offset"):
        date_of("2024-05-01T23:30:00")


def test_helpers_refused_through_the_environment(env: RestrictedEnvironment) -> None:
    with pytest.raises(ValueError, match="no UTC offset"):
        env.evaluate("add_duration('2024-05-01T08:00:00', 'PT1H')", {})
    with pytest.raises(ValueError, match="months"):
        env.evaluate("add_duration('2024-05-01T08:00:00Z', 'P1M')", {})


# --------------------------------------------------------------------------------------------------
# Through SpiffWorkflow
# --------------------------------------------------------------------------------------------------
BENIGN_CONDITION = "total &gt; 10"
BENIGN_SCRIPT = "total = 0"


def _workflow(*, condition: str | None = None, script: str | None = None) -> BpmnWorkflow:
    """Parse the probe BPMN, optionally with its first condition or script replaced."""
    xml = PROBE_BPMN.read_text()
    if condition is not None:
        assert BENIGN_CONDITION in xml
        xml = xml.replace(BENIGN_CONDITION, escape(condition))
    if script is not None:
        assert BENIGN_SCRIPT in xml
        xml = xml.replace(BENIGN_SCRIPT, escape(script))
    parser = SpiffBpmnParser()
    parser.add_bpmn_str(xml.encode(), filename="restricted_probe.bpmn")
    spec = parser.get_spec("restricted_probe")
    workflow = BpmnWorkflow(spec, script_engine=PythonScriptEngine(environment=RestrictedEnvironment()))
    start = workflow.get_next_task(state=TaskState.READY)
    start.data.update({"amounts": [5, 7], "reported_at": "2024-05-01T08:00:00+02:00"})
    return workflow


def _run_until_ready(workflow: BpmnWorkflow, spec_name: str) -> None:
    """Run ready tasks one by one until ``spec_name`` is the next ready task."""
    for _ in range(20):
        task = workflow.get_next_task(state=TaskState.READY)
        assert task is not None
        if task.task_spec.name == spec_name:
            return
        task.run()
    raise AssertionError(f"{spec_name} never became ready")


def _completed(workflow: BpmnWorkflow) -> set:
    return {task.id for task in workflow.get_tasks(state=TaskState.COMPLETED)}


def test_benign_workflow_runs() -> None:
    workflow = _workflow()
    workflow.do_engine_steps()
    assert workflow.is_completed()
    names = {task.task_spec.name for task in workflow.get_tasks(state=TaskState.COMPLETED)}
    assert "end_large" in names and "end_small" not in names
    data = workflow.last_task.data
    assert data["total"] == 12
    assert data["due_at"] == "2024-05-02T06:00:00+00:00"
    assert "add_duration" not in data and "__builtins__" not in data


@pytest.mark.parametrize(("condition", "error_type", "fragment"), [
    ("__import__('os').system('touch {marker}') == 0", ScriptCompileError, "__import__"),
    ("().__class__.__base__.__subclasses__() != []", ScriptCompileError, "__class__"),
    ("getattr(total, '__cla' + 'ss__') is not None", ScriptSecurityError, "'__class__'"),
    ("open('{marker}', 'w') is not None", ScriptSecurityError, "open"),
])
def test_malicious_condition_stops_the_workflow(
        tripwire: Path, condition: str, error_type: type, fragment: str) -> None:
    workflow = _workflow(condition=_fill(condition, tripwire))
    _run_until_ready(workflow, "decide")
    completed = _completed(workflow)
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    cause = caught.value.__cause__ or caught.value.__context__
    assert isinstance(cause, error_type)
    assert fragment in str(cause)
    assert caught.value.error_type == error_type.__name__
    assert _completed(workflow) == completed
    assert not workflow.is_completed()


def test_malicious_script_stops_the_workflow(tripwire: Path) -> None:
    workflow = _workflow(script=_fill("import os\nos.system('touch {marker}')\ntotal = 0", tripwire))
    _run_until_ready(workflow, "compute")
    completed = _completed(workflow)
    with pytest.raises(WorkflowTaskException) as caught:
        workflow.do_engine_steps()
    assert "import of 'os' is not allowed" in str(caught.value)
    assert isinstance(caught.value.__context__, ScriptSecurityError)
    assert _completed(workflow) == completed
    task = workflow.get_next_task(spec_name="compute")
    assert "os" not in task.data and "__builtins__" not in task.data
