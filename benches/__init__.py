"""Suites shipped with frugalbench (installed as ``frugalbench_suites``; ``harness.suite.suites_dir``)."""
