"""Realistic result databases for the report tests, written through ``Store.save_result``.

Rows are written here by their column names (as the SQLite table and the JSON report name them) and
turned into :class:`~harness.results.record.Result` records through ``Result.from_columns``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.results.record import Result
from harness.results.store import Store, WindowRow

EVIL_TASK = "<script>window.__pwned=1</script>kws \"q\" & 'a'"
EVIL_VARIANT = '<img src=x onerror="window.__pwned=2">int8&"x"'
WORLD = "CodeCarbon methodology, world average default (475 gCO2e/kWh)"


def _row(task: str, variant: str, technique: str, target: str, **kw: Any) -> dict[str, Any]:
    lat = kw.pop("lat", 1e-4)
    e = kw.pop("e", 1e-4)
    acc = kw.pop("acc", 0.95)
    cls = kw.pop("cls", "estimate")
    row: dict[str, Any] = {
        "suite": "fixture",
        "task": task,
        "variant": variant,
        "variant_key": f"{task}-{variant}",
        "technique": technique,
        "target": target,
        "target_kind": "cpu",
        "runtime": "ort" if "ort" in target else "litert",
        "status": "done",
        "metric": "accuracy",
        "min_accuracy": kw.pop("min_acc", 0.9),
        "accuracy": acc,
        "latency_p50_s": lat,
        "latency_p90_s": lat * 1.3,
        "latency_p99_s": lat * 2.0,
        "latency_ci_rel": kw.pop("lat_ci", 0.02),
        "throughput_ips": 1.0 / lat,
        "n_windows": 5,
        "n_inferences": 10000,
        "energy_per_inference_j": e,
        "energy_ci_rel": kw.pop("e_ci", 0.03),
        "energy_class": cls,
        "marker_method": "gpio" if cls == "external" else "host-clock",
        "meter": "lpm01a" if cls == "external" else "Green Algorithms TDP model",
        "boundary": "3V3 rail" if cls == "external" else "CPU cores (modelled)",
        "params": 4810,
        "macs": 4736,
        "model_bytes": 20000 if technique == "fp32" else 8000,
        "model_bytes_gz": 18000,
        "fine_tuned": 0,
        "epochs": 0,
        "produce_s": 0.1,
        "produce_j": 0.5,
        "produce_energy_class": cls,
        "pue": 1.0,
        "grid_g_per_kwh": 475.0,
        "grid_source": WORLD,
        "provenance": {
            "threads": 1,
            "batch": 1,
            "isa": ["avx2", "fma"],
            "runtime_version": "1.32.0",
            "git_rev": "abc1234",
            "cpu": "Test CPU",
        },
    }
    row.update(kw)
    return row


def record(task: str, variant: str, technique: str, target: str, **kw: Any) -> Result:
    """One done result record (see :func:`_row` for the keywords)."""
    return Result.from_columns(_row(task, variant, technique, target, **kw))


def rows() -> list[dict[str, Any]]:
    """Two tasks (one with a hostile name), four techniques, two targets, two classes, one failure."""
    return [
        _row("digits", "fp32", "fp32", "cpu-ort", e=2.3e-4, lat=9.6e-6, acc=0.951),
        _row("digits", "int8-static", "int8", "cpu-ort", e=3.1e-4, lat=1.7e-5, acc=0.951),
        _row("digits", "fp32", "fp32", "cpu-litert", e=4.1e-5, lat=1.7e-6, acc=0.951),
        _row("digits", "int8-static", "int8", "cpu-litert", e=4.7e-5, lat=2.6e-6, acc=0.953),
        _row("digits", "prune-90", "prune", "cpu-litert", e=3.9e-5, lat=1.6e-6, acc=0.80),  # below minimum
        _row("digits", "fp32", "fp32", "mcu", e=2.0e-5, lat=4e-3, acc=0.95, cls="external"),
        _row("digits", "int8-static", "int8", "mcu", e=6.0e-6, lat=1.2e-3, acc=0.948, cls="external"),
        _row(EVIL_TASK, "fp32", "fp32", "cpu-ort", e=5e-4, lat=3e-5, acc=0.7, min_acc=0.6),
        _row(EVIL_TASK, EVIL_VARIANT, "int8", "cpu-ort", e=2e-4, lat=2e-5, acc=0.65, min_acc=0.6),
    ]


def settings(budget_g: float | None = 0.5, task_budget: float | None = 2e-5) -> dict[str, Any]:
    return {
        "run": {"ci_target": 0.02},
        "carbon": {"pue": 1.0, "region": "WORLD", "budget_g": budget_g},
        "tasks": [
            {"name": "digits", "why_min": "keeps 5 points", "budget_g_per_1000": task_budget},
            {"name": EVIL_TASK, "why_min": "<b>bold?</b>", "budget_g_per_1000": None},
        ],
    }


def make_db(path: Path, result_rows: list[dict[str, Any]] | None = None, **settings_kw: Any) -> Path:
    """Write a database with one run holding ``result_rows`` (default :func:`rows`) and one failure."""
    with Store.open(path) as s:
        rid = s.begin_run("fixture", "benches/fixture.toml", settings(**settings_kw), "host", "abc1234")
        for i, r in enumerate(result_rows if result_rows is not None else rows()):
            wins = [
                WindowRow(
                    k, 1000, 0.5, 0.5, r["latency_p50_s"], (r["energy_per_inference_j"] or 0) * 1000, True
                )
                for k in range(3)
            ]
            key = f"job{i}-{json.dumps([r['task'], r['variant'], r['target']])}"
            s.save_result(Result.from_columns(r | {"run_id": rid, "job_key": key}), wins)
        s.save_result(
            Result(
                suite="fixture",
                task="digits",
                variant="int8-dynamic",
                target="cpu-litert",
                status="skipped",
                reason="variant has no .tflite file",
                run_id=rid,
                job_key="job-failed",
            ),
            [],
        )
        s.end_run(rid, "done")
    return path
