"""Suites shipped with frugalbench (installed as ``frugalbench_suites``; see harness/packaged.py)."""
