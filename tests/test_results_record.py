"""The typed result record: its one map to the SQLite columns, the store round trip, None = not measured."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest
from report_fixtures import _row, make_db, record

from harness.errors import StoreError
from harness.results.record import COLUMNS, Energy, Latency, Result, measured
from harness.results.store import RESULT_COLUMNS, Store


def test_column_map_covers_the_schema_exactly(tmp_path: Path) -> None:
    with Store.open(tmp_path / "r.sqlite") as s:
        table = [r[1] for r in s.conn.execute("PRAGMA table_info(results)")]
    assert [c for c, _, _ in COLUMNS] == table  # same names, same order as the table
    assert set(RESULT_COLUMNS) == set(table) - {"id", "job_key", "run_id", "created"}


def test_columns_round_trip() -> None:
    cols = _row("t", "v", "int8", "cpu-ort", e=3e-4, lat=2e-5, fine_tuned=1, epochs=3)
    r = Result.from_columns(cols)
    assert r.energy.per_inference_j == 3e-4 and r.latency.p50_s == 2e-5 and r.latency.p99_s == 4e-5
    assert r.model.fine_tuned is True and r.model.epochs == 3 and r.carbon.grid_g_per_kwh == 475.0
    assert r.production.joules == 0.5 and r.energy.measurement_class == "estimate"
    back = r.columns()
    assert {k: back[k] for k in cols} == cols  # fine_tuned written back as the stored integer
    assert Result.from_columns(back) == r


def test_record_is_frozen_and_checks_its_status() -> None:
    r = record("t", "v", "fp32", "cpu-ort")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.accuracy = 0.5  # type: ignore[misc]
    with pytest.raises(StoreError, match="status 'ok'"):
        dataclasses.replace(r, status="ok")  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="unknown result fields"):
        Result.from_columns(_row("t", "v", "fp32", "cpu-ort", latency_p50_ms=1.0))


def test_window_figures_map_to_latency_and_energy() -> None:
    lat, en = measured({"latency_p50_s": 1e-3, "n_windows": 4, "energy_per_inference_j": 2e-6, "meter": "m"})
    assert lat == Latency(p50_s=1e-3, n_windows=4) and en == Energy(per_inference_j=2e-6, meter="m")
    with pytest.raises(StoreError, match="accuracy"):
        measured({"accuracy": 0.9})


def test_store_round_trip_and_not_measured_is_null(tmp_path: Path) -> None:
    db = make_db(tmp_path / "r.sqlite")
    with Store.open(db, create=False) as s:
        stored = s.results()
    done = [r for r in stored if r.status == "done"]
    (skipped,) = [r for r in stored if r.status != "done"]
    assert len(done) == 9 and all(r.id and r.run_id == 1 and r.created and r.job_key for r in stored)
    first = done[0]
    want = record("digits", "fp32", "fp32", "cpu-ort", e=2.3e-4, lat=9.6e-6, acc=0.951)
    assert dataclasses.replace(first, id=None, run_id=None, job_key=None, created=None) == want
    # a skipped result: every figure None in the record, NULL in SQLite (never 0)
    assert skipped.reason == "variant has no .tflite file" and skipped.accuracy is None
    assert skipped.latency == Latency() and skipped.energy == Energy() and skipped.model.fine_tuned is None
    raw = sqlite3.connect(db).execute(
        "SELECT latency_p50_s, energy_per_inference_j, n_inferences, fine_tuned, provenance FROM results "
        "WHERE status='skipped'"
    )
    assert raw.fetchone() == (None, None, None, None, None)
    prov = sqlite3.connect(db).execute("SELECT provenance FROM results WHERE id=?", (first.id,)).fetchone()
    assert json.loads(prov[0]) == first.provenance and first.provenance["cpu"] == "Test CPU"


def test_store_refuses_a_record_without_its_job_key(tmp_path: Path) -> None:
    with Store.open(tmp_path / "r.sqlite") as s, pytest.raises(StoreError, match="job_key"):
        s.save_result(record("t", "v", "fp32", "cpu-ort"), [])
