"""``frugalbench compare`` on databases written through the Store API: results are matched by
configuration, deterministic rows and estimate energy are judged as such, the run-to-run threshold
holds, a resumed run is whole, and ``-f json`` is machine-readable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from report_fixtures import _row
from typer.testing import CliRunner

from harness.cli.main import app
from harness.report.compare import (
    BELOW_THRESHOLD,
    BEST_WINDOW_WITHIN,
    CONFIG_CHANGED,
    FOLLOWS_LATENCY,
    IMPROVEMENT,
    REGRESSION,
    UNCHANGED,
    WITHIN,
    Rules,
    compare,
)
from harness.results.record import Result
from harness.results.store import Store, WindowRow

runner = CliRunner()


def cpu(
    task: str, variant: str, target: str, lat: float, lat_ci: float, e: float, e_ci: float
) -> dict[str, Any]:
    """A CPU row as the quick suite stores it: estimate energy, host-timed latency."""
    return _row(task, variant, variant.split("-")[0], target, lat=lat, lat_ci=lat_ci, e=e, e_ci=e_ci)


def mcu(task: str, variant: str, lat: float, e: float) -> dict[str, Any]:
    """An emulated-MCU row: instruction-counted latency and simulated energy, zero-width intervals."""
    return _row(
        task,
        variant,
        variant.split("-")[0],
        "qemu-m4",
        lat=lat,
        lat_ci=0.0,
        e=e,
        e_ci=0.0,
        cls="simulated",
        target_kind="mcu",
        runtime="frugal-int8",
        instr_per_inference=lat * 25e6,
    )


# Figures of two same-code runs of the quick suite on a shared 2-core host (the report):
# mnist1d/fp32@cpu-ort latency +3.6 % within CI while its wall-time-integrated estimate energy moved
# +68.2 %; digits/int8-static@cpu-litert latency +0.7 % at ±0.2 %; the MCU row unchanged at ±0.
OLD = [
    cpu("mnist1d", "fp32", "cpu-ort", 1.146e-5, 0.048, 1.376e-4, 0.116),
    cpu("digits", "int8-static", "cpu-litert", 4.02e-6, 0.002, 4.8e-5, 0.01),
    cpu("digits", "fp32", "cpu-ort", 9.6e-6, 0.02, 1.15e-4, 0.02),
    mcu("digits", "int8-static", 1.18e-4, 3.2e-8),
    cpu("mnist1d", "fp32", "cpu-litert", 1.973e-6, 0.0, 2.3676e-5, 0.0),  # identical window medians
]
NEW = [
    cpu("mnist1d", "fp32", "cpu-ort", 1.187e-5, 0.044, 2.316e-4, 0.044),
    cpu("digits", "int8-static", "cpu-litert", 4.05e-6, 0.002, 4.9e-5, 0.01),
    cpu("digits", "fp32", "cpu-ort", 9.6e-6, 0.02, 1.15e-4, 0.02),
    mcu("digits", "int8-static", 1.18e-4 * (1 + 1e-9), 3.2e-8 * (1 + 1e-9)),
    cpu("mnist1d", "fp32", "cpu-litert", 2.001e-6, 0.0, 2.4012e-5, 0.0),
]


def write_db(path: Path, runs: list[list[dict[str, Any]]], statuses: list[str] | None = None) -> Path:
    """One database with one run per list of rows (a later run resumes the earlier ones)."""
    with Store.open(path) as s:
        for i, rows in enumerate(runs):
            rid = s.begin_run("fixture", "benches/fixture.toml", {}, "host", "abc1234")
            for row in rows:
                r = {k: v for k, v in row.items() if k != "window_p50_s"}
                key = json.dumps([r["task"], r["variant"], r["target"], r["variant_key"], r["provenance"]])
                per_inf_j = r["energy_per_inference_j"] / r["latency_p50_s"]  # J per second of inference
                wins = [
                    WindowRow(i, 1000, 0.5, 0.5, p50, per_inf_j * p50 * 1000, True)
                    for i, p50 in enumerate(row.get("window_p50_s", [r["latency_p50_s"]]))
                ]
                s.save_result(Result.from_columns(r | {"run_id": rid, "job_key": key}), wins)
            s.end_run(rid, (statuses or [])[i] if i < len(statuses or []) else "done")
    return path


def _by(rows: list[Any]) -> dict[tuple[str, str, str], Any]:
    return {(r.task, r.variant, r.target): r for r in rows}


def test_same_code_twice_compares_clean() -> None:
    rows = _by(compare([Result.from_columns(r) for r in OLD], [Result.from_columns(r) for r in NEW]))
    assert not any(r.regression for r in rows.values())
    ort = {c.metric: c.verdict for c in rows[("mnist1d", "fp32", "cpu-ort")].changes}
    assert ort["latency_p50_s"] == WITHIN and ort["energy_per_inference_j"] == FOLLOWS_LATENCY
    litert = {c.metric: c.verdict for c in rows[("digits", "int8-static", "cpu-litert")].changes}
    assert litert["latency_p50_s"] == BELOW_THRESHOLD  # outside both ±0.2 % CIs, far below the threshold
    m = {c.metric: c.verdict for c in rows[("digits", "int8-static", "qemu-m4")].changes}
    assert m["latency_p50_s"] == UNCHANGED and m["energy_per_inference_j"] == UNCHANGED
    zero = rows[("mnist1d", "fp32", "cpu-litert")].changes[1]  # measured, ±0.0 % on both sides
    assert zero.verdict == BELOW_THRESHOLD and zero.old_ci == 0.0


def test_real_changes_are_still_found() -> None:
    old = [Result.from_columns(r) for r in OLD]
    slow = [dict(r) for r in OLD]
    slow[1] = cpu("digits", "int8-static", "cpu-litert", 4.02e-6 * 1.5, 0.02, 7.2e-5, 0.02)
    slow[3] = mcu("digits", "int8-static", 1.18e-4 * 1.02, 3.2e-8 * 0.9)  # 2 % more instructions
    rows = _by(compare(old, [Result.from_columns(r) for r in slow]))
    lit = rows[("digits", "int8-static", "cpu-litert")]
    assert lit.regression and lit.changes[1].verdict == REGRESSION
    assert lit.changes[2].verdict == FOLLOWS_LATENCY  # the estimate is not a second regression
    m = {c.metric: c.verdict for c in rows[("digits", "int8-static", "qemu-m4")].changes}
    assert m["latency_p50_s"] == REGRESSION and m["energy_per_inference_j"] == IMPROVEMENT
    # a threshold above the change lets it through; the deterministic row keeps its own tolerance
    loose = _by(compare(old, [Result.from_columns(r) for r in slow], rules=Rules(threshold=0.6)))
    assert not loose[("digits", "int8-static", "cpu-litert")].regression
    assert loose[("digits", "int8-static", "qemu-m4")].regression
    exact = _by(compare(old, [Result.from_columns(r) for r in slow], rules=Rules(exact_tolerance=0.03)))
    assert not exact[("digits", "int8-static", "qemu-m4")].regression


def test_changed_configuration_is_listed_not_judged() -> None:
    old = [Result.from_columns(r) for r in OLD]
    new_rows = [dict(r) for r in OLD]
    new_rows[0] = {**new_rows[0], "variant_key": "other-key", "latency_p50_s": 3e-5, "latency_ci_rel": 0.01}
    prov = {**new_rows[2]["provenance"], "threads": 2}
    new_rows[2] = {**new_rows[2], "provenance": prov, "latency_p50_s": 5e-6}
    rows = _by(compare(old, [Result.from_columns(r) for r in new_rows]))
    vk = rows[("mnist1d", "fp32", "cpu-ort")]
    assert vk.status == "changed" and not vk.regression
    assert [d[0] for d in vk.differences] == ["variant_key"]
    assert {c.verdict for c in vk.changes} == {CONFIG_CHANGED}
    th = rows[("digits", "fp32", "cpu-ort")]
    assert th.status == "changed" and th.differences == (("threads", 1, 2),)
    assert [r.status for r in rows.values()].count("matched") == 3


def test_cli_json_schema_and_exit_code(tmp_path: Path) -> None:
    old = write_db(tmp_path / "old.sqlite", [OLD])
    clean = write_db(tmp_path / "new.sqlite", [NEW])
    r = runner.invoke(app, ["compare", str(old), str(clean), "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert set(doc) == {"old", "new", "rules", "regressions", "matched", "added", "removed", "changed"}
    assert doc["regressions"] == 0 and len(doc["matched"]) == 5
    assert doc["rules"]["threshold"] > 0 and doc["rules"]["exact_tolerance"] > 0
    one = next(m for m in doc["matched"] if m["target"] == "cpu-ort" and m["task"] == "mnist1d")
    assert set(one) == {
        "task",
        "variant",
        "target",
        "old_run",
        "new_run",
        "energy_class",
        "regression",
        "metrics",
    }
    lat = one["metrics"]["latency_p50_s"]
    assert set(lat) == {"old", "new", "change", "old_ci_rel", "new_ci_rel", "old_best", "new_best", "verdict"}
    assert lat["old"] == 1.146e-5 and abs(lat["change"] - (1.187 / 1.146 - 1)) < 1e-12

    worse = [dict(r) for r in NEW]
    worse[2] = cpu("digits", "fp32", "cpu-ort", 9.6e-6 * 1.4, 0.02, 1.6e-4, 0.02)
    worse[0] = {**worse[0], "variant_key": "retrained"}
    worse.append(cpu("digits", "int8-dynamic", "cpu-ort", 1e-5, 0.02, 1.2e-4, 0.02))
    bad = write_db(tmp_path / "bad.sqlite", [worse[1:]])  # mnist1d/fp32 removed ...
    write_db(tmp_path / "bad.sqlite", [[worse[0]]])  # ... and back, retrained, in a later run
    r = runner.invoke(app, ["compare", str(old), str(bad), "-f", "json"])
    assert r.exit_code == 1
    doc = json.loads(r.output)
    assert doc["regressions"] == 1
    assert [(m["task"], m["variant"]) for m in doc["matched"] if m["regression"]] == [("digits", "fp32")]
    assert doc["added"] == [{"task": "digits", "variant": "int8-dynamic", "target": "cpu-ort", "new_run": 1}]
    assert doc["removed"] == []
    (ch,) = doc["changed"]
    assert (
        ch["differences"] == {"variant_key": {"old": "mnist1d-fp32", "new": "retrained"}}
        and ch["new_run"] == 2
    )
    r = runner.invoke(app, ["compare", str(old), str(bad), "-f", "json", "--threshold", "50"])
    assert r.exit_code == 0 and json.loads(r.output)["rules"]["threshold"] == 0.5
    r = runner.invoke(app, ["compare", str(old), str(bad)])
    assert (
        r.exit_code == 1 and "CHANGED mnist1d/fp32@cpu-ort: variant_key mnist1d-fp32 → retrained" in r.output
    )


def test_a_resumed_run_is_compared_whole(tmp_path: Path) -> None:
    old = write_db(tmp_path / "old.sqlite", [OLD])
    # interrupted after two results, then resumed: the resume stores only the other two
    new = write_db(tmp_path / "new.sqlite", [NEW[:2], NEW[2:]], statuses=["interrupted", "done"])
    for args in ([str(old), str(new)], [str(old), str(new), "--old-run", "1", "--new-run", "2"]):
        r = runner.invoke(app, ["compare", *args, "-f", "json"])
        assert r.exit_code == 0, r.output
        doc = json.loads(r.output)
        assert doc["removed"] == [] and doc["added"] == [] and len(doc["matched"]) == 5, args
        assert sorted(m["new_run"] for m in doc["matched"]) == [1, 1, 2, 2, 2]
    # the runs of one database: run 1 as it stood, run 2 with what it resumed from
    r = runner.invoke(app, ["compare", str(new), "--old-run", "1", "--new-run", "2", "-f", "json"])
    doc = json.loads(r.output)
    assert len(doc["matched"]) == 2 and len(doc["added"]) == 3 and doc["removed"] == []


def test_a_busy_spell_is_not_a_regression(tmp_path: Path) -> None:
    # digits/fp32@cpu-ort, two same-code runs on the shared host: run 2 had windows at 8.4-9.0 µs
    # beside 5.7 µs ones (other processes on the core), so its median moved +46 % beyond both CIs.
    calm = [5.648e-6, 5.638e-6, 5.659e-6]
    busy = [8.352e-6, 8.723e-6, 5.718e-6, 5.689e-6, 8.553e-6, 8.984e-6]
    base = OLD[2]
    old_row = {**base, "latency_p50_s": 5.649e-6, "latency_ci_rel": 0.0019, "window_p50_s": calm}
    new_row = {**base, "latency_p50_s": 8.242e-6, "latency_ci_rel": 0.1863, "window_p50_s": busy}
    old = write_db(tmp_path / "old.sqlite", [[old_row]])
    new = write_db(tmp_path / "new.sqlite", [[new_row]])
    r = runner.invoke(app, ["compare", str(old), str(new), "-f", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["rules"]["latency_spread"] == pytest.approx(8.984 / 5.689 - 1)  # the host's own spread
    lat = doc["matched"][0]["metrics"]["latency_p50_s"]
    assert lat["verdict"] == BELOW_THRESHOLD and lat["old_best"] == 5.638e-6 and lat["new_best"] == 5.689e-6
    # without that spread (a threshold of 10 %), the best window still says it was a busy spell
    with Store.open(old) as so, Store.open(new) as sn:
        a, b, wins = so.results(), sn.results(), (so.window_ranges(), sn.window_ranges())
    (row,) = compare(a, b, rules=Rules(threshold=0.1), windows=wins)
    assert row.changes[1].verdict == BEST_WINDOW_WITHIN and not row.regression
    r = runner.invoke(app, ["compare", str(old), str(new), "-f", "json", "--spread-factor", "0"])
    assert r.exit_code == 0 and json.loads(r.output)["rules"]["latency_limit"] == 0.1
    assert json.loads(r.output)["matched"][0]["metrics"]["latency_p50_s"]["verdict"] == BEST_WINDOW_WITHIN
    (row,) = compare(a, b, rules=Rules(threshold=0.1))  # no windows at hand: the median decides
    assert row.changes[1].verdict == REGRESSION
    # the same median when every window is slower is a regression
    slow = [8.352e-6, 8.723e-6, 8.553e-6]
    worse_row = {**base, "latency_p50_s": 8.5e-6, "latency_ci_rel": 0.03, "window_p50_s": slow}
    worse = write_db(tmp_path / "worse.sqlite", [[worse_row]])
    r = runner.invoke(app, ["compare", str(old), str(worse), "-f", "json"])
    assert r.exit_code == 1
    assert json.loads(r.output)["matched"][0]["metrics"]["latency_p50_s"]["verdict"] == REGRESSION
