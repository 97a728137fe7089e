"""Packages: ``harness``, and the repository's data folders installed under their own package names.

``models/`` -> ``frugalbench_models`` (recipes), ``benches/`` -> ``frugalbench_suites`` (the suites; its
``perf/`` scripts and ``examples/`` stay in the checkout), ``boards/`` -> ``frugalbench_boards`` (board
and meter profiles, MCU firmware sources; never build outputs). ``harness.suite.suites_dir`` and
``harness.mcu.board.boards_dir`` find them; which files ship is ``[tool.setuptools.package-data]`` in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["harness", "harness.*"])
    + ["frugalbench_models", "frugalbench_suites", "frugalbench_boards"],
    package_dir={"frugalbench_models": "models", "frugalbench_suites": "benches", "frugalbench_boards": "boards"},
)
