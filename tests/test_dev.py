"""`python3 dev.py run` in embedded mode: the README's flask commands find its Redis from another shell."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from app.config import load_config

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent  # the venv running the tests: dev.py must not install another
WORKER_UP = re.compile(r"rq\.worker INFO Worker \w+: started with PID")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _workers(pid: int) -> list[int]:
    """The `flask worker` processes among the children of ``pid``."""
    found = []
    for child in _children(pid):
        try:
            if b"worker" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"):
                found.append(child)
        except OSError:
            pass
    return found


def _environment(instance: Path, **extra: str) -> dict[str, str]:
    """A developer's shell: no REDIS_URL, no DATABASE_URL, development settings, this test's instance."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "SECRET_KEY") and not k.startswith("SERVICECASE_")}
    env.update({"SERVICECASE_INSTANCE": str(instance), "SERVICECASE_VENV": str(VENV),
                "PYTHONDONTWRITEBYTECODE": "1", **extra})
    return env


@pytest.fixture
def dev_run(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], int, Path]]:
    """`python3 dev.py run` serving on a free port from a fresh instance folder (killed by group at the end)."""
    port = _free_port()
    env = _environment(tmp_path / "instance", PORT=str(port))
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115 (closed at the end)
    proc = subprocess.Popen([sys.executable, "dev.py", "run"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc, env, port, tmp_path / "dev.log"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        else:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # anything it left behind
            except ProcessLookupError:
                pass
        log.close()


def _wait_serving(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"dev.py did not serve within {timeout} s:\n{log.read_text()[-3000:]}")


def test_the_readme_clock_command_finds_the_embedded_redis(dev_run) -> None:
    proc, env, port, log = dev_run
    _wait_serving(proc, port, log)
    password = (Path(env["SERVICECASE_INSTANCE"]) / "demo_password").read_text().strip()
    assert f"password for all of them: {password}" in log.read_text()  # the demo users, printed at start-up
    record = Path(env["SERVICECASE_INSTANCE"]) / "redis_url"
    url, redis_pid = record.read_text().split()
    assert url.startswith("redis://127.0.0.1:") and _alive(int(redis_pid))
    assert Redis.from_url(url).ping()

    # Another shell, exactly as the README gives it (no REDIS_URL).
    result = subprocess.run([str(VENV / "bin" / "flask"), "--app", "wsgi", "clock", "advance", "25h"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "now " in result.stdout and "fired" in result.stdout

    # A worker that dies (here: SIGKILL) is started again.
    [worker] = _workers(proc.pid)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while not [pid for pid in _workers(proc.pid) if pid != worker] or len(WORKER_UP.findall(log.read_text())) < 2:
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
    assert "the timer worker stopped" in log.read_text()

    children = _children(proc.pid)  # the embedded Redis, the worker and the web server
    assert int(redis_pid) in children and len(children) >= 3, children
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, log.read_text()[-3000:]
    assert [pid for pid in children if _alive(pid)] == []
    assert not record.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1].split("/")[0])), timeout=1).close()


def _stale_record(instance: Path) -> Path:
    """A record left by a `dev.py run` that was killed with its Redis: the pid is of a finished process."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    instance.mkdir(parents=True, exist_ok=True)
    record = instance / "redis_url"
    record.write_text(f"redis://127.0.0.1:{_free_port()}/0\n{gone.pid}\n")
    return record


def test_a_stale_record_is_reported_clearly_and_at_once(tmp_path: Path) -> None:
    record = _stale_record(tmp_path / "instance")
    started = time.monotonic()
    result = subprocess.run([str(VENV / "bin" / "flask"), "--app", "wsgi", "worker"], cwd=ROOT,
                            env=_environment(tmp_path / "instance"), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"the embedded Redis that `python3 dev.py run` recorded in {record} is gone" in result.stderr
    assert time.monotonic() - started < 30  # no hanging on a dead port


def test_the_record_is_read_in_development_only_and_never_over_redis_url(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "redis_url").write_text(f"redis://127.0.0.1:7777/0\n{os.getpid()}\n")  # a live pid
    monkeypatch.setenv("SERVICECASE_INSTANCE", str(instance))
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("SERVICECASE_ENV", "development")
    assert load_config()["REDIS_URL"] == "redis://127.0.0.1:7777/0"
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/3")
    assert load_config()["REDIS_URL"] == "redis://elsewhere:6379/3"
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setenv("SERVICECASE_ENV", "testing")
    assert load_config()["REDIS_URL"] is None
    _stale_record(instance)
    monkeypatch.setenv("SERVICECASE_ENV", "development")
    config = load_config()
    assert config["REDIS_URL"] is None and "is gone" in config["REDIS_URL_PROBLEM"]
