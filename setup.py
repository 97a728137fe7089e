"""Packages: ``harness`` and the recipes in ``models/`` (installed as ``frugalbench_models``)."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["harness", "harness.*"]) + ["frugalbench_models"],
    package_dir={"frugalbench_models": "models"},
)
