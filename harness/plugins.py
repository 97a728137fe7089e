"""Import every plug-in package once so that their registries are filled."""

from __future__ import annotations

import importlib

_PACKAGES = ("harness.ir.layers", "harness.compress", "harness.runtimes", "harness.targets", "harness.meters")


def load_all() -> None:
    for pkg in _PACKAGES:
        importlib.import_module(pkg)
