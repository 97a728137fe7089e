"""The JSON and CSV reports for scripts: schema, runs, window spread, CI target, skipped jobs;
and the local CPU's provenance (governor, frequencies, load, package versions) and its HTML panel.

Expected spreads are computed here with :mod:`statistics` (not numpy, which the report uses).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from report_fixtures import _row, make_db

from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.layers import Dense
from harness.ir.model import Variant
from harness.ir.network import Network
from harness.report import render_db
from harness.report.records import SCHEMA_VERSION, STAT_KEYS
from harness.report.spread import window_spread
from harness.results.rank import LEADERBOARD_KEYS
from harness.results.record import Result
from harness.results.store import Store, WindowRow
from harness.sysinfo import cpu_state
from harness.targets import Artefact, ArtefactFile
from harness.targets.local import CpuConfig, CpuTarget

MEDIANS_MS = [1.0, 1.1, 1.2, 1.0, 5.0]  # the last one lies far above Q3 + 1.5 IQR


def _tukey_outliers(v: list[float]) -> int:
    q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    lo, hi = q1 - 1.5 * (q3 - q1), q3 + 1.5 * (q3 - q1)
    return sum(1 for x in v if x < lo or x > hi)


def _db(path: Path) -> Path:
    """One run: a row with 5 valid windows (and one invalid, which must not count), a row whose CIs
    are within the target, one with no CI at all, and a skipped job."""
    with Store.open(path) as s:
        rid = s.begin_run("fixture", "f.toml", {"run": {"ci_target": 0.02}}, "host", "abc1234")
        spread_row = _row("digits", "fp32", "fp32", "cpu-ort", lat_ci=0.05, e_ci=0.01, n_windows=5)
        wins = [WindowRow(k, 100, 0.5, 0.5, m * 1e-3, 1e-3, True) for k, m in enumerate(MEDIANS_MS)]
        wins.append(WindowRow(9, 100, 0.5, 0.5, 9.0, 1e-3, False, "throttled"))
        s.save_result(Result.from_columns(spread_row | {"run_id": rid, "job_key": "a"}), wins)
        tight = _row("digits", "int8", "int8", "cpu-ort", lat_ci=0.01, e_ci=0.015, n_windows=2)
        two = [WindowRow(k, 100, 0.5, 0.5, 2e-3, 1e-3, True) for k in range(2)]
        s.save_result(Result.from_columns(tight | {"run_id": rid, "job_key": "b"}), two)
        blind = _row("digits", "prune", "prune", "cpu-ort", lat_ci=None, e_ci=None, n_windows=1)
        one = [WindowRow(0, 100, 0.5, 0.5, 3e-3, 1e-3, True)]
        s.save_result(Result.from_columns(blind | {"run_id": rid, "job_key": "c"}), one)
        skipped = Result(
            suite="fixture", task="digits", variant="int8", target="mcu", status="skipped",
            reason="variant has no blob", run_id=rid, job_key="d",
        )  # fmt: skip
        s.save_result(skipped, [])
        s.end_run(rid, "done")
    return path


def _by_variant(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["variant"]: r for r in doc["results"]}


def test_json_report_is_an_object_with_runs_results_and_skipped(tmp_path: Path) -> None:
    doc = json.loads(render_db(_db(tmp_path / "r.sqlite"), "json"))
    assert list(doc) == ["schema_version", "runs", "results", "skipped"]
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    (run,) = doc["runs"]
    assert (
        run["id"] == 1
        and run["suite"] == "fixture"
        and run["status"] == "done"
        and run["git_rev"] == "abc1234"
    )
    for key in ("started", "ended"):  # ISO 8601 UTC to the second
        assert len(run[key]) == 20 and run[key][10] == "T" and run[key].endswith("Z")
    assert run["started"] <= run["ended"] and run["ci_target"] == 0.02
    assert run["host"] == {"name": "host"}  # no result recorded this host's facts
    assert run["frugalbench_version"] is None  # the fixture's results recorded none: unknown, not invented
    assert doc["skipped"] == [
        {
            "task": "digits",
            "variant": "int8",
            "target": "mcu",
            "status": "skipped",
            "reason": "variant has no blob",
        }
    ]
    for r in doc["results"]:
        assert list(r)[: len(LEADERBOARD_KEYS)] == list(LEADERBOARD_KEYS)
        assert list(r)[-len(STAT_KEYS) - 1 :] == [*STAT_KEYS, "provenance"]


def test_window_spread_and_outliers_come_from_the_valid_windows(tmp_path: Path) -> None:
    r = _by_variant(json.loads(render_db(_db(tmp_path / "r.sqlite"), "json")))["fp32"]
    assert r["n_windows"] == 5  # the invalid window is left out
    assert r["window_p50_min_ms"] == pytest.approx(min(MEDIANS_MS))
    assert r["window_p50_max_ms"] == pytest.approx(max(MEDIANS_MS))
    assert r["window_p50_std_ms"] == pytest.approx(statistics.stdev(MEDIANS_MS))
    assert r["window_p50_outliers"] == _tukey_outliers(MEDIANS_MS) == 1


def test_small_samples_leave_spread_unknown() -> None:
    assert window_spread([]) == {"n": 0, "std_s": None, "min_s": None, "max_s": None, "outliers": None}
    one = window_spread([2.0])
    assert one["std_s"] is None and one["min_s"] == one["max_s"] == 2.0 and one["outliers"] is None
    three = window_spread([1.0, 1.0, 9.0])  # quartiles of 3 values say nothing
    assert three["outliers"] is None and three["std_s"] == pytest.approx(statistics.stdev([1.0, 1.0, 9.0]))
    steady = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98]
    assert window_spread(steady)["outliers"] == _tukey_outliers(steady) == 0


def test_ci_target_flag_follows_the_presentation_rule(tmp_path: Path) -> None:
    db = _db(tmp_path / "r.sqlite")
    rows = _by_variant(json.loads(render_db(db, "json")))
    wide, tight, blind = rows["fp32"], rows["int8"], rows["prune"]
    assert wide["ci_target"] == tight["ci_target"] == 0.02
    assert wide["ci_half_width"] == 0.05 and wide["ci_target_met"] is False  # latency CI above 2 %
    assert tight["ci_half_width"] == 0.015 and tight["ci_target_met"] is True
    assert blind["ci_half_width"] is None and blind["ci_target_met"] is None  # unknown, not "met"
    assert blind["window_p50_std_ms"] is None and blind["n_windows"] == 1
    md = render_db(db, "md")  # the Markdown flags exactly the row the JSON says missed its target
    flagged = [line.split("|")[2].strip() for line in md.splitlines() if line.startswith("|") and "⚠" in line]
    assert flagged == ["fp32"]


def test_csv_appends_the_statistics_after_the_old_columns(tmp_path: Path) -> None:
    db = _db(tmp_path / "r.sqlite")
    table = list(csv.reader(io.StringIO(render_db(db, "csv"))))
    header = table[0]
    assert header[: len(LEADERBOARD_KEYS)] == list(LEADERBOARD_KEYS)
    assert header[-len(STAT_KEYS) :] == list(STAT_KEYS) and "provenance" not in header
    rows = {r[header.index("variant")]: dict(zip(header, r, strict=True)) for r in table[1:]}
    assert rows["fp32"]["window_p50_outliers"] == "1" and rows["fp32"]["ci_target_met"] == "False"
    assert float(rows["fp32"]["window_p50_std_ms"]) == pytest.approx(statistics.stdev(MEDIANS_MS))
    assert rows["prune"]["ci_target_met"] == "" and rows["prune"]["window_p50_std_ms"] == ""


def test_every_fixture_row_has_its_stats(tmp_path: Path) -> None:
    doc = json.loads(render_db(make_db(tmp_path / "f.sqlite"), "json"))
    assert doc["results"] and all(
        r["n_windows"] == 5 and r["window_p50_std_ms"] == 0.0 for r in doc["results"]
    )
    assert [s["status"] for s in doc["skipped"]] == ["skipped"]


def _fake_sysfs(root: Path, cores: dict[int, tuple[str, str | None, str]]) -> Path:
    for c, (gov, cur, top) in cores.items():
        d = root / f"cpu{c}/cpufreq"
        d.mkdir(parents=True)
        (d / "scaling_governor").write_text(gov + "\n")
        if cur is not None:
            (d / "scaling_cur_freq").write_text(cur + "\n")
        (d / "cpuinfo_max_freq").write_text(top + "\n")
    return root


def test_cpu_state_reads_cpufreq_and_invents_nothing(tmp_path: Path) -> None:
    root = _fake_sysfs(
        tmp_path / "cpu", {0: ("performance", "2400000", "3500000"), 1: ("powersave", None, "3500000")}
    )
    st = cpu_state([0, 1], root=root)
    assert st["governor"] == "performance,powersave"
    assert st["cpu_freq_cur_mhz"] == {"cpu0": 2400.0, "cpu1": None}  # unreadable: None, not 0
    assert st["cpu_freq_max_mhz"] == {"cpu0": 3500.0, "cpu1": 3500.0}
    assert st["load_avg"] is not None and len(st["load_avg"]) == 3
    bare = cpu_state([0, 1], root=tmp_path / "nothing")  # a VM without cpufreq
    assert bare["governor"] is None and bare["cpu_freq_cur_mhz"] is None and bare["cpu_freq_max_mhz"] is None


def test_local_target_records_cpu_state_at_measurement_start(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.normal(size=(8, 4)), np.zeros(4))])
    (tmp_path / "m.onnx").write_bytes(network_to_onnx_bytes(net))
    v = Variant("t", "v", "k", {"onnx": tmp_path / "m.onnx"}, {}, tmp_path / "net.npz")
    t = CpuTarget(CpuConfig(name="c", kind="cpu", runtime="ort"))
    t.open()
    try:
        t.load(v, ArtefactFile(Artefact.ONNX, tmp_path / "m.onnx"))
        before = t.info()
        assert before["load_avg"] is None and before["governor"] is None  # nothing measured yet
        assert before["packages"]["numpy"] == np.__version__
        assert before["packages"]["onnxruntime"] and set(before["packages"]) >= {
            "ai-edge-litert",
            "frugalbench",
        }
        t.set_inputs(np.ones((4, 8), np.float32))
        t.window(0.01)
        after = t.info()
        assert len(after["load_avg"]) == 3 and {"cpu_freq_cur_mhz", "cpu_freq_max_mhz"} <= set(after)
        t.load(v, ArtefactFile(Artefact.ONNX, tmp_path / "m.onnx"))  # a new variant: a new start
        assert t.info()["load_avg"] is None
    finally:
        t.close()


def test_html_details_show_cpu_state_and_versions(tmp_path: Path) -> None:
    prov = {
        "governor": "performance",
        "cpu_freq_cur_mhz": {"cpu0": 2400.0, "cpu1": 2600.0},
        "cpu_freq_max_mhz": {"cpu0": 3500.0, "cpu1": None},
        "load_avg": [0.5, 0.25, 0.1],
        "packages": {"numpy": "2.1.0", "ai-edge-litert": None},
    }
    row = _row("digits", "fp32", "fp32", "cpu-ort")
    row["provenance"] = {**row["provenance"], **prov}
    page = render_db(make_db(tmp_path / "r.sqlite", [row]), "html")
    assert "<dt>CPU governor</dt><dd>performance</dd>" in page
    assert "<dt>CPU frequency at start / max</dt><dd>2400–2600 / 3500 MHz</dd>" in page
    assert "<dt>load average at start (1, 5, 15 min)</dt><dd>0.5, 0.25, 0.1</dd>" in page
    assert "<dt>package versions</dt><dd>ai-edge-litert –, numpy 2.1.0</dd>" in page  # stored sorted
    assert "<dt>packages</dt>" not in page  # shown once, by its readable item
    old = render_db(make_db(tmp_path / "old.sqlite", [_row("digits", "fp32", "fp32", "cpu-ort")]), "html")
    assert "CPU governor" not in old  # results recorded before these facts show no empty items
