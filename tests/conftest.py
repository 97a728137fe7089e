"""Shared fixtures: a per-session model cache so recipes train once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Models built by tests go to a throw-away cache, never the user's."""
    path = Path(os.environ.get("FRUGALBENCH_TEST_CACHE") or tmp_path_factory.mktemp("fb-cache"))
    os.environ["FRUGALBENCH_CACHE"] = str(path)
    return path
