"""Bring your own model and dataset: inspection, preparation, dataset readers, starter suites."""
