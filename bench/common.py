"""What the benchmarks share: paths, the happy-path form data, and percentile summaries."""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
FAULT_BPMN = ROOT / "workflows" / "fault_handling.bpmn"
ONE_TASK_BPMN = ROOT / "tests" / "data" / "one_task.bpmn"

if str(ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(ROOT))

# The happy path of fault_handling (tests/workflows/test_fault_handling.py): equipment under warranty,
# quality fault, remote repair. Three user tasks; the values pass the record forms in forms/.
DIAGNOSIS = {"diagnosis": "Rectifier fuse blown", "fault_class": "common", "removal_target_hours": 48,
             "cause": "quality", "support_mode": "remote", "parts_needed": False}
REMOTE_REPAIR = {"remote_channel": "network", "work_performed": "Reset", "remote_result": "repaired"}
REPORT = {"report_summary": "Fixed", "report_sent_via": "email", "customer_confirmed": True}
FAULT_PATH: list[tuple[str, dict[str, Any]]] = [
    ("diagnose_fault", DIAGNOSIS),
    ("repair_remotely", REMOTE_REPAIR),
    ("write_processing_report", REPORT),
]
ANSWER = {"escalation_action": "expedited", "escalation_note": "Benchmark answer"}
ONE_TASK_PATH: list[tuple[str, dict[str, Any]]] = [("answer", ANSWER)]
PATHS = {"fault_handling": FAULT_PATH, "one_task": ONE_TASK_PATH}

# Equipment as open_case snapshots it for the engine (in warranty, like demo equipment 1).
EQUIPMENT_IN_WARRANTY = {"id": 1, "model": "EA990-200K", "serial_number": "EA99020K0001",
                         "site": "Hall A, row 3", "region": "South", "installed_on": "2024-03-01",
                         "warranty_ends_on": "2099-12-31", "dealer": "Pearl Power Systems"}
CUSTOMER = {"id": 1, "name": "Harbour City Data Centre", "region": "South", "phone": "+86 20 5550 0101",
            "email": "ops@harbourdc.example"}


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """Median, p95, p99 and mean in ms, and single-thread ops/s (1 / mean), of durations in seconds."""
    values = sorted(seconds)
    if not values:
        return {"n": 0, "median_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan,
                "mean_ms": math.nan, "ops_per_s": math.nan}
    mean = statistics.fmean(values)
    return {
        "n": len(values),
        "median_ms": statistics.median(values) * 1e3,
        "p95_ms": percentile(values, 0.95) * 1e3,
        "p99_ms": percentile(values, 0.99) * 1e3,
        "mean_ms": mean * 1e3,
        "ops_per_s": 1.0 / mean if mean > 0 else math.nan,
    }


def fmt(value: float, digits: int = 2) -> str:
    """A number for a table cell ('-' when missing)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def run_setup(env: dict[str, str], log: Path) -> None:
    """Migrate, deploy the workflows, seed demo data."""
    with log.open("a") as out:
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "setup"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"flask setup failed (exit {result.returncode}); see {log}:\n{log.read_text()[-3000:]}")
