#!/usr/bin/env python3
"""One command to run or test the system from a fresh clone; needs only Python 3.11+.

    python3 dev.py run     # install, migrate, deploy workflows/, seed demo data, serve on :5000
    python3 dev.py test    # install with test extras and run the whole test suite
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SERVICECASE_VENV", ROOT / ".venv"))
BIN = VENV / "bin"


def _run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env={**os.environ, **(env or {})})


def ensure_venv(extras: str = "") -> None:
    """Create .venv and install the project into it (a no-op when nothing changed)."""
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    stamp = VENV / f".installed{extras}"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".{extras}")
    stamp.touch()


def cmd_run(argv: list[str]) -> None:
    """Install, set up the database and serve the app with timers on the embedded defaults."""
    ensure_venv()
    _run(BIN / "flask", "--app", "wsgi", "setup")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "5000")
    print(f"\nServing on http://{host}:{port}/  (Ctrl-C to stop)\n", flush=True)
    os.execv(str(BIN / "flask"), [str(BIN / "flask"), "--app", "wsgi", "run", "--host", host, "--port", port,
                                  *argv])


def cmd_test(argv: list[str]) -> None:
    """Install the test extras, then lint, type-check, check import rules and run pytest."""
    ensure_venv("[test]")
    _run(BIN / "ruff", "check", "app", "tests", "bench", "wsgi.py", "dev.py")
    _run(BIN / "lint-imports", "importlinter.ini")
    _run(BIN / "mypy", "app")
    _run(BIN / "pytest", *argv)


def main() -> None:
    """Dispatch ``run`` or ``test``."""
    commands = {"run": cmd_run, "test": cmd_test}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    try:
        commands[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main()
