"""`dev.py`'s ensure_assets: npm installs the browser assets when node_modules is missing or older than the
lockfile, and says clearly what to do when npm is not there (a fake npm on PATH, nothing downloaded)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_dev(root: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """dev.py as a module, pointed at ``root`` as the project folder."""
    spec = importlib.util.spec_from_file_location("dev_under_test", ROOT / "dev.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "ROOT", root)
    return module


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with the real lockfile and a fake npm on PATH that records how it was called and
    writes node_modules/.package-lock.json as npm does."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copy(ROOT / "package.json", root)
    shutil.copy(ROOT / "package-lock.json", root)
    tools = tmp_path / "bin"
    tools.mkdir()
    npm = tools / "npm"
    npm.write_text('#!/bin/sh\necho "$@" >> calls.log\nmkdir -p node_modules\ntouch node_modules/.package-lock.json\n')
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    return root


def calls(root: Path) -> list[str]:
    """The npm command lines run so far."""
    log = root / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_npm_ci_runs_without_scripts_when_node_modules_is_missing(project: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    dev = load_dev(project, monkeypatch)
    dev.ensure_assets()
    assert calls(project) == ["ci --ignore-scripts --no-audit --no-fund"]
    dev.ensure_assets()  # installed and newer than the lockfile: nothing to do
    assert len(calls(project)) == 1


def test_a_newer_lockfile_installs_again(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dev = load_dev(project, monkeypatch)
    dev.ensure_assets()
    later = time.time() + 10
    os.utime(project / "package-lock.json", (later, later))
    dev.ensure_assets()
    assert len(calls(project)) == 2


def test_without_npm_a_clear_message_and_no_failure(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(project / "nowhere"))
    dev = load_dev(project, monkeypatch)
    dev.ensure_assets()
    message = capsys.readouterr().err
    assert "npm is not installed" in message and "diagram" in message and "apt-get install npm" in message
    assert not (project / "node_modules").exists()
