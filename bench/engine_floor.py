"""The floor: what SpiffWorkflow itself costs to start a case and to load → complete one task → store.

Three variants, measured interleaved so machine noise hits them alike:

* ``plain`` — SpiffWorkflow alone: ``SpiffBpmnParser`` spec, ``BpmnWorkflowSerializer`` with
  ``SPIFF_CONFIG`` (the spec travels inside every stored instance), the default ``TaskDataEnvironment``
  (plus the two helper functions the BPMN calls).
* ``seam`` — the same through ``app.engine.Engine``: spec cached per version (stored state only),
  RestrictedPython-compiled scripts.
* ``seam+reads`` — ``seam`` plus what ``store_instance`` asks the instance afterwards (ready human tasks,
  waiting timers, process data). Not part of the floor: it shows what the bookkeeping costs.

Run: .venv/bin/python bench/engine_floor.py [--samples 300] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a plain script from anywhere

from lxml import etree  # noqa: E402
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment  # noqa: E402
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer  # noqa: E402
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser  # noqa: E402
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402

from app.engine import Engine, Instance  # noqa: E402
from app.engine.restricted import DEFAULT_FUNCTIONS  # noqa: E402
from bench.common import (  # noqa: E402
    CUSTOMER,
    EQUIPMENT_IN_WARRANTY,
    FAULT_BPMN,
    ONE_TASK_BPMN,
    PATHS,
    RESULTS_DIR,
    fmt,
    summarize,
)

PROCESSES = {"fault_handling": FAULT_BPMN, "one_task": ONE_TASK_BPMN}
VARIANTS = ("plain", "seam", "seam+reads")
CHAINS = 4  # distinct stored instances per step, used round-robin
BATCH = 10  # ops per variant before switching to the next (interleaving)


def start_data() -> dict[str, Any]:
    """Initial variables as open_case builds them (reported a minute ago: no deadline is due)."""
    reported = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {"case_number": "FH-2026-000001", "reported_at": reported, "channel": "phone", "priority": "normal",
            "description": "UPS alarm on hall A", "customer": dict(CUSTOMER), "equipment": dict(EQUIPMENT_IN_WARRANTY)}


class PlainRunner:
    """SpiffWorkflow alone: spec inside every stored instance, the library's default script environment."""

    def __init__(self, path: Path, process_id: str) -> None:
        parser = SpiffBpmnParser()
        parser.add_bpmn_xml(etree.parse(str(path)), filename=path.name)
        for table in sorted(path.parent.glob("*.dmn")):  # the decision tables its business rule tasks call
            parser.add_dmn_xml(etree.parse(str(table)).getroot(), filename=table.name)
        self.spec = parser.get_spec(process_id)
        self.subprocess_specs = parser.get_subprocess_specs(process_id)
        self.serializer = BpmnWorkflowSerializer(registry=BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
        self.script_engine = PythonScriptEngine(environment=TaskDataEnvironment(dict(DEFAULT_FUNCTIONS)))

    @staticmethod
    def _run(workflow: BpmnWorkflow) -> None:
        # The same engine work Instance.run() does: run, fire due timers, run on.
        workflow.do_engine_steps()
        workflow.refresh_timers()
        workflow.do_engine_steps()

    def start(self, data: dict[str, Any]) -> str:
        """Start, run to the first wait, store."""
        workflow = BpmnWorkflow(self.spec, self.subprocess_specs, script_engine=self.script_engine)
        workflow.get_tasks(state=TaskState.READY)[0].data.update(copy.deepcopy(data))
        self._run(workflow)
        return self.serializer.serialize_json(workflow)

    def complete(self, state: str, task_id: str, data: dict[str, Any]) -> str:
        """Load, complete one ready task, run on, store."""
        workflow = self.serializer.deserialize_json(state)
        workflow.script_engine = self.script_engine  # not serialized (ENGINE_NOTES)
        task = workflow.get_task_from_id(UUID(task_id))
        if task.state != TaskState.READY:
            raise RuntimeError(f"{task.task_spec.name} is not ready")
        task.data.update(copy.deepcopy(data))
        task.run()
        self._run(workflow)
        return self.serializer.serialize_json(workflow)

    def ready(self, state: str) -> dict[str, str]:
        """Ready human tasks of a stored instance: spec id → task id."""
        workflow = self.serializer.deserialize_json(state)
        return {t.task_spec.name: str(t.id) for t in workflow.get_tasks(state=TaskState.READY, manual=True)}


class SeamRunner:
    """The engine seam: spec cached per version, restricted scripts; ``reads`` adds store_instance's reads."""

    def __init__(self, path: Path, process_id: str, *, engine: Engine, reads: bool) -> None:
        self.engine = engine
        self.reads = reads
        source = path.read_bytes()
        tables = [engine.parse_decision(t.read_bytes(), t.name) for t in sorted(path.parent.glob("*.dmn"))]
        self.definition = engine.load_definition(
            ("bench", process_id), lambda: engine.dump_definition(engine.parse(source, path.name, tables)))

    def _store(self, instance: Instance) -> str:
        state = instance.dump()
        if self.reads:  # what store_instance asks besides dump()
            instance.ready_human_tasks()
            instance.waiting_timers()
            _ = instance.data, instance.is_completed
        return state

    def start(self, data: dict[str, Any]) -> str:
        """Start, run to the first wait, store."""
        return self._store(self.engine.start(self.definition, data))

    def complete(self, state: str, task_id: str, data: dict[str, Any]) -> str:
        """Load, complete one ready task, run on, store."""
        instance = self.engine.load(self.definition, state)
        instance.complete(task_id, data)
        return self._store(instance)

    def ready(self, state: str) -> dict[str, str]:
        """Ready human tasks of a stored instance: spec id → task id."""
        return {t.spec_id: t.id for t in self.engine.load(self.definition, state).ready_human_tasks()}


Runner = PlainRunner | SeamRunner


def _complete_inputs(runner: Runner, path: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str, str, dict]]:
    """(step, stored state, task id, data) for every step of the path, over CHAINS instances."""
    inputs = []
    for _ in range(CHAINS):
        state = runner.start(start_data())
        for step, data in path:
            ready = runner.ready(state)
            if step not in ready:
                raise RuntimeError(f"{step} is not ready (ready: {sorted(ready)})")
            inputs.append((step, state, ready[step], data))
            state = runner.complete(state, ready[step], data)
    return inputs


def _timed(ops: list[Callable[[], Any]], samples: int) -> dict[str, list[float]]:
    """Run every op ``samples`` times, BATCH at a time in turn; durations in seconds per op index."""
    durations: dict[str, list[float]] = {str(i): [] for i in range(len(ops))}
    clock = time.perf_counter
    done = 0
    while done < samples:
        batch = min(BATCH, samples - done)
        for i, op in enumerate(ops):
            bucket = durations[str(i)]
            for _ in range(batch):
                t0 = clock()
                op()
                bucket.append(clock() - t0)
        done += batch
    return durations


def measure(samples: int = 300, *, warmup: int = 20) -> dict[str, Any]:
    """Measure start and complete for every process and variant; return a JSON-ready dict."""
    from bench.http_bench import background_busy_pct

    engine = Engine()
    results: dict[str, Any] = {
        "meta": {"samples": samples, "python": platform.python_version(), "at": datetime.now(UTC).isoformat(),
                 "machine": platform.machine(), "note": "single thread, ms; ops_per_s = 1/mean",
                 "background_busy_pct": background_busy_pct()},
        "processes": {},
    }
    for process_id, bpmn in PROCESSES.items():
        runners: dict[str, Runner] = {
            "plain": PlainRunner(bpmn, process_id),
            "seam": SeamRunner(bpmn, process_id, engine=engine, reads=False),
            "seam+reads": SeamRunner(bpmn, process_id, engine=engine, reads=True),
        }
        path = PATHS[process_id]
        per_variant: dict[str, Any] = {}
        start_ops: list[Callable[[], Any]] = []
        complete_ops: list[Callable[[], Any]] = []
        sizes: dict[str, int] = {}
        for name, runner in runners.items():
            data = start_data()
            start_ops.append(functools.partial(runner.start, data))
            inputs = _complete_inputs(runner, path)
            sizes[name] = max(len(s) for _, s, _, _ in inputs)
            cursor = {"i": 0}

            def complete(r: Runner = runner, items: list = inputs, c: dict = cursor) -> None:
                step, state, task_id, data = items[c["i"] % len(items)]
                c["i"] += 1
                r.complete(state, task_id, data)
            complete_ops.append(complete)
        _timed(start_ops + complete_ops, warmup)
        timed = _timed(start_ops + complete_ops, samples)
        for i, name in enumerate(runners):
            per_variant[name] = {
                "start": summarize(timed[str(i)]),
                "complete": summarize(timed[str(len(runners) + i)]),
                "stored_state_bytes": sizes[name],
            }
        results["processes"][process_id] = per_variant
    return results


def floor_of(results: dict[str, Any], process_id: str, op: str, variant: str = "plain") -> float:
    """The median (ms) of one floor operation."""
    return float(results["processes"][process_id][variant][op]["median_ms"])


def table(results: dict[str, Any]) -> str:
    """The floor as a markdown table."""
    lines = ["| process | variant | operation | median ms | p95 ms | p99 ms | ops/s (1 thread) |",
             "|---|---|---|---:|---:|---:|---:|"]
    for process_id, variants in results["processes"].items():
        for variant, ops in variants.items():
            for op in ("start", "complete"):
                s = ops[op]
                label = "start → first wait → store" if op == "start" else "load → complete 1 task → store"
                lines.append(f"| {process_id} | {variant} | {label} | {fmt(s['median_ms'])} | {fmt(s['p95_ms'])} | "
                             f"{fmt(s['p99_ms'])} | {fmt(s['ops_per_s'], 0)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="timed ops per operation and variant")
    parser.add_argument("--quick", action="store_true", help="100 samples")
    parser.add_argument("--json", type=Path, default=RESULTS_DIR / "floor.json", help="where to write the numbers")
    args = parser.parse_args(argv)
    samples = 100 if args.quick else args.samples
    results = measure(samples)
    print(table(results))
    print(f"other load on the machine before the run: {results['meta']['background_busy_pct']:.0f}%")
    for process_id, variants in results["processes"].items():
        sizes = ", ".join(f"{v} {ops['stored_state_bytes'] / 1024:.1f} KB" for v, ops in variants.items())
        print(f"stored instance size ({process_id}): {sizes}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
