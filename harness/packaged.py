"""Where the data that ships with the package lives: suites, board profiles and firmware sources.

``benches/`` installs as the package ``frugalbench_suites`` and ``boards/`` as ``frugalbench_boards``
(setup.py's ``package_dir``, like ``models/`` -> ``frugalbench_models``), so a wheel install carries
them and an editable install reads the checkout's folders in place. Found with ``importlib.resources``.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from .errors import ConfigError

SUITES_PACKAGE = "frugalbench_suites"
BOARDS_PACKAGE = "frugalbench_boards"
# the checkout's folder for each package: used only when the package is not importable (an editable
# install made before these packages existed), so that a stale install keeps working
_SOURCE_DIRS = {SUITES_PACKAGE: "benches", BOARDS_PACKAGE: "boards"}
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def package_dir(package: str) -> Path:
    """The folder of a data package (``frugalbench_suites`` or ``frugalbench_boards``)."""
    try:
        root = importlib.resources.files(package)
    except ModuleNotFoundError:
        fallback = _SOURCE_ROOT / _SOURCE_DIRS[package]
        if fallback.is_dir():
            return fallback
        raise ConfigError(
            f"frugalbench's data package {package} is not installed; reinstall frugalbench "
            "(pip install frugalbench, or pip install -e . in a checkout)"
        ) from None
    if not isinstance(root, Path):  # e.g. a zipped install: make and tomllib need real files
        raise ConfigError(f"{package} is not a folder on disk ({root}); install frugalbench unzipped")
    return root


def suites_dir() -> Path:
    """The packaged suites (the checkout's ``benches/``)."""
    return package_dir(SUITES_PACKAGE)


def boards_dir() -> Path:
    """The packaged board profiles, meter profiles and firmware sources (the checkout's ``boards/``)."""
    return package_dir(BOARDS_PACKAGE)
