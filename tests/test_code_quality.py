"""The project's own checks run with the tests (so the README's test command covers them)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} not installed: pip install -e '.[test]'")
    return found


def test_ruff_lint() -> None:
    r = subprocess.run(
        [_tool("ruff"), "check", "harness", "tests", "models", "benches"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_package() -> None:
    r = subprocess.run([_tool("mypy"), "harness"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
