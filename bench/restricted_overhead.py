"""Time the restricted script environment against SpiffWorkflow's plain TaskDataEnvironment.

The restricted side includes the script budget (a deadline per call, a check per loop iteration and
function call, guarded ``+ * ** << %``); the loop row shows its worst case, a tight arithmetic loop.

Run: .venv/bin/python bench/restricted_overhead.py
"""

from __future__ import annotations

import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere

from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment  # noqa: E402

from app.engine.restricted import (  # noqa: E402
    RestrictedEnvironment,
    add_duration,
    check_expression,
    check_script,
    date_of,
)

CONDITION = "support_mode == 'remote' and remote_result == 'repaired' and len(parts) < 3"
SCRIPT = """\
warranty_ends_on = equipment.get('warranty_ends_on') if equipment else None
under_warranty = bool(warranty_ends_on) and date_of(reported_at) <= warranty_ends_on
total = 0
for part in parts:
    total += part['price'] * part['qty']
"""
# A tight loop: every iteration pays the budget check and the guarded + and *.
LOOP = """\
acc = 0
for i in range(100):
    acc = acc + i * 2
"""
DATA = {
    "support_mode": "remote", "remote_result": "repaired", "reported_at": "2026-03-02T08:00:00+00:00",
    "equipment": {"serial": "SN-1", "warranty_ends_on": "2027-01-01"},
    "parts": [{"price": 12.5, "qty": 2}, {"price": 3.0, "qty": 1}],
    **{f"field_{i}": i for i in range(20)},  # a realistically sized task-data dict
}
REPEAT, NUMBER = 15, 2000


def _median_us(statement, repeat: int = REPEAT, number: int = NUMBER) -> float:
    """Median time of one call of ``statement`` in microseconds."""
    runs = timeit.repeat(statement, repeat=repeat, number=number)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    """Print medians per call and the restricted/plain ratio."""
    helpers = {"add_duration": add_duration, "date_of": date_of}
    plain = TaskDataEnvironment(environment_globals=dict(helpers))
    restricted = RestrictedEnvironment()
    plain_data, restricted_data = dict(DATA), dict(DATA)
    assert plain.evaluate(CONDITION, plain_data) == restricted.evaluate(CONDITION, restricted_data)

    # TaskDataEnvironment as SpiffWorkflow runs it (source string, compiled on every call), and the
    # same with code compiled once, which isolates the run-time cost of the guards.
    condition_code = compile(CONDITION, "<string>", "eval")
    script_code = compile(SCRIPT, "<string>", "exec")
    loop_code = compile(LOOP, "<string>", "exec")
    rows = [
        ("evaluate(condition)",
         _median_us(lambda: plain.evaluate(CONDITION, plain_data)),
         _median_us(lambda: plain.evaluate(condition_code, plain_data)),
         _median_us(lambda: restricted.evaluate(CONDITION, restricted_data))),
        ("execute(5-line script)",
         _median_us(lambda: plain.execute(SCRIPT, plain_data)),
         _median_us(lambda: plain.execute(script_code, plain_data)),
         _median_us(lambda: restricted.execute(SCRIPT, restricted_data))),
        ("execute(100-iteration loop)",
         _median_us(lambda: plain.execute(LOOP, plain_data), number=500),
         _median_us(lambda: plain.execute(loop_code, plain_data), number=500),
         _median_us(lambda: restricted.execute(LOOP, restricted_data), number=500)),
    ]
    assert plain_data == restricted_data
    # First run of a new source: the restricted compile (a cache miss) vs the built-in compile.
    # check_expression / check_script compile without the cache.
    cold = [
        ("compile condition (cache miss)",
         _median_us(lambda: compile(CONDITION, "<string>", "eval"), number=200),
         _median_us(lambda: check_expression(CONDITION), number=200)),
        ("compile script (cache miss)",
         _median_us(lambda: compile(SCRIPT, "<string>", "exec"), number=200),
         _median_us(lambda: check_script(SCRIPT), number=200)),
    ]
    print("median µs per call; ratio = restricted / plain")
    print(f"{'operation':<32}{'plain(str)':>11}{'plain(code)':>12}{'restricted':>11}"
          f"{'vs str':>8}{'vs code':>9}")
    for name, plain_str, plain_code, restricted_us in rows:
        print(f"{name:<32}{plain_str:>11.2f}{plain_code:>12.2f}{restricted_us:>11.2f}"
              f"{restricted_us / plain_str:>7.2f}x{restricted_us / plain_code:>8.2f}x")
    print(f"{'compile only':<32}{'builtin':>11}{'':>12}{'restricted':>11}{'ratio':>8}")
    for name, builtin_us, restricted_us in cold:
        ratio = restricted_us / builtin_us
        print(f"{name:<32}{builtin_us:>11.2f}{'':>12}{restricted_us:>11.2f}{ratio:>7.1f}x")


if __name__ == "__main__":
    main()
