"""CNN recipes, tasks with several base models, performance-only tasks, the results.base_model column."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from report_fixtures import record

from harness.errors import ConfigError
from harness.ir import architectures
from harness.pipeline.recipes import build_recipe
from harness.results.rank import leaderboard
from harness.results.store import _SCHEMA, SCHEMA_VERSION, Store
from harness.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]


# --- the synthetic keyword-spotting-like data ---
def test_kws_synth_is_deterministic_balanced_and_shaped() -> None:
    from frugalbench_models.kws_synth import CLASSES, generate

    x, y = generate(240, seed=3)
    x2, y2 = generate(240, seed=3)
    assert x.shape == (240, 49 * 10) and x.dtype == np.float32
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert np.bincount(y, minlength=CLASSES).tolist() == [20] * CLASSES
    xe, _ = generate(240, seed=3, split=1)
    assert not np.allclose(x, xe)  # eval rows are other samples of the same vocabulary


def test_kws_synth_is_learnable_but_not_linear() -> None:
    """A linear model on the flat rows beats chance clearly but stays far from solving it."""
    from frugalbench_models.kws_synth import generate
    from sklearn.linear_model import LogisticRegression

    xtr, ytr = generate(1200, seed=7)
    xev, yev = generate(600, seed=7, split=1)
    acc = LogisticRegression(max_iter=200).fit(xtr, ytr).score(xev, yev)
    assert 3 / 12 < acc < 0.8, acc


# --- MLPerf Tiny performance-only recipes at their published shapes ---
@pytest.mark.parametrize(
    ("name", "in_dim", "out_dim"),
    [
        ("mlperf_kws_dscnn", 49 * 10, 12),
        ("mlperf_ic_resnet8", 32 * 32 * 3, 10),
        ("mlperf_vww_mobilenet", 96 * 96 * 3, 2),
        ("mlperf_ad_autoencoder", 640, 640),
    ],
)
def test_mlperf_tiny_recipes(name: str, in_dim: int, out_dim: int) -> None:
    net, ds = build_recipe(name, 0, {"n_eval": 4})
    again, ds2 = build_recipe(name, 0, {"n_eval": 4})
    assert net.in_dim == in_dim and net.out_dim == out_dim and ds.x_eval.shape == (4, in_dim)
    assert np.array_equal(ds.x_eval, ds2.x_eval)
    assert np.array_equal(net.forward(ds.x_eval), again.forward(ds.x_eval))
    assert "performance only" in str(ds.meta["source"])


def test_reference_architecture_sizes() -> None:
    ae = architectures.dense_autoencoder()
    assert [layer.w.shape for layer in ae.layers][:6] == [(640, 128), *[(128, 128)] * 3, (128, 8), (8, 128)]
    assert ae.macs() == 264_192 and ae.n_params() == 264_192 + 128 * 8 + 8 + 640  # weights + biases
    mb = architectures.mobilenet_v1()
    assert mb.layers[-1].w.shape == (256, 2)  # alpha 0.25 of 1024 channels
    assert 7.0e6 < mb.macs() < 8.0e6  # MLPerf Tiny publishes ~7.5 M MACs for VWW MobileNetV1 0.25


# --- suites ---
MULTI = """
[suite]
name = "multi"

[run]
warmup_s = 0.02
window_s = 0.05
min_windows = 2
max_windows = 2
ci_target = 0.5

[[tasks]]
name = "digits"
recipes = ["digits_mlp", "digits_cnn"]
recipe_params = { digits_mlp = { hidden = [16], max_iter = 40 }, digits_cnn = { epochs = 2, channels = [4, 8] } }
min_accuracy = 0.5

[[tasks]]
name = "perf"
recipe = "mlperf_ad_autoencoder"
recipe_params = { n_eval = 16 }
performance_only = true

[[variants]]
name = "fp32"
technique = "fp32"

[[variants]]
name = "int8-dynamic"
technique = "int8"
params = { mode = "dynamic" }
recipes = ["digits_mlp"]

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_several_base_models_and_performance_only_load(tmp_path: Path) -> None:
    s = load_suite(_write(tmp_path, MULTI))
    digits, perf = s.tasks
    assert digits.base_models == [
        ("digits_mlp", {"hidden": [16], "max_iter": 40}),
        ("digits_cnn", {"epochs": 2, "channels": [4, 8]}),
    ]
    assert digits.several_bases and not perf.several_bases and perf.min_accuracy is None
    assert [v.name for v in s.variants_for("digits", "digits_cnn")] == ["fp32"]
    assert [v.name for v in s.variants_for("digits", "digits_mlp")] == ["fp32", "int8-dynamic"]
    assert s.n_builds() == 2 + 3 + 2  # three bases, five variants


@pytest.mark.parametrize(
    ("old", "new", "expect"),
    [
        ('recipes = ["digits_mlp", "digits_cnn"]', 'recipes = ["digits_mlp", "digits_cnn", "nope"]', ["tasks[0=digits].recipes", "unknown recipe 'nope'"]),
        ("digits_cnn = { epochs", "digits_cn = { epochs", ["recipe_params maps each recipe name", "digits_cn"]),
        ('recipes = ["digits_mlp", "digits_cnn"]', 'recipes = ["digits_mlp", "digits_cnn"]\nrecipe = "digits_mlp"', ["exactly one of"]),
        ("performance_only = true", "", ["min_accuracy is required", "performance_only"]),
        ('recipes = ["digits_mlp"]\n', 'recipes = ["digits_cnnn"]\n', ["variants[1=int8-dynamic].recipes", "'digits_cnnn'"]),
    ],
)  # fmt: skip
def test_bad_base_models_name_the_problem(tmp_path: Path, old: str, new: str, expect: list[str]) -> None:
    assert old in MULTI
    with pytest.raises(ConfigError) as e:
        load_suite(_write(tmp_path, MULTI.replace(old, new, 1)))
    for part in expect:
        assert part in str(e.value), str(e.value)


def test_conv_suite_loads() -> None:
    s = load_suite(ROOT / "benches" / "conv.toml")
    mnist1d = next(t for t in s.tasks if t.name == "mnist1d")
    assert [r for r, _ in mnist1d.base_models] == ["mnist1d_mlp", "mnist1d_cnn"]
    assert {t["runtime"] for t in s.targets} == {"ort", "litert"}
    perf = [t.name for t in s.tasks if t.performance_only]
    assert perf == ["mlperf_kws", "mlperf_ic", "mlperf_vww", "mlperf_ad"]
    assert "not speech" in next(t for t in s.tasks if t.name == "kws_synth").why_min.lower()


# --- ranking ---
def test_base_models_ranked_together_and_named() -> None:
    mlp = [
        replace(
            record("m", "mnist1d_mlp:fp32", "fp32", "cpu", e=1e-5, acc=0.60, min_acc=0.55),
            base_model="mnist1d_mlp",
        ),
        replace(
            record("m", "mnist1d_mlp:int8", "int8", "cpu", e=0.5e-5, acc=0.58, min_acc=0.55),
            base_model="mnist1d_mlp",
        ),
    ]
    cnn = [
        replace(
            record("m", "mnist1d_cnn:fp32", "fp32", "cpu", e=2e-5, acc=0.93, min_acc=0.55),
            base_model="mnist1d_cnn",
        )
    ]
    one = [replace(record("d", "fp32", "fp32", "cpu", e=1e-5, acc=0.9), base_model="digits_mlp")]
    board = leaderboard([*mlp, *cnn, *one])
    m = [r for r in board if r["task"] == "m"]
    assert [(r["variant"], r["rank"]) for r in m] == [
        ("mnist1d_mlp:int8", 1),  # 0.58 / 0.5e-5 = 116 000 per J
        ("mnist1d_mlp:fp32", 2),  # 60 000
        ("mnist1d_cnn:fp32", 3),  # 46 500
    ]
    assert [r["base_model"] for r in m] == ["mnist1d_mlp", "mnist1d_mlp", "mnist1d_cnn"]
    # each variant's accuracy cost is against the fp32 of its own base model
    assert m[0]["accuracy_cost"] == pytest.approx(0.02) and m[2]["accuracy_cost"] == 0
    (d,) = [r for r in board if r["task"] == "d"]
    assert "base_model" not in d  # one base model: no column


def test_performance_only_ranked_by_energy_without_accuracy() -> None:
    perf = {"performance_only": True}
    rows = [
        replace(record("p", "fp32", "fp32", "cpu", e=3e-5, acc=0.5, min_acc=None), provenance=perf),
        replace(record("p", "int8", "int8", "cpu", e=1e-5, acc=0.1, min_acc=None), provenance=perf),
    ]
    board = leaderboard(rows)
    assert [(r["variant"], r["rank"]) for r in board] == [("int8", 1), ("fp32", 2)]
    assert all(r["accuracy"] is None and r["accuracy_per_joule"] is None for r in board)
    assert all(r["passes_gate"] and r.get("performance_only") for r in board)
    # without the flag the same rows would be gated (and unranked) on their meaningless accuracy
    assert all(r["rank"] is None for r in leaderboard([replace(r, provenance={}) for r in rows]))


# --- schema migration ---
def _v1_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(_SCHEMA.replace(" base_model TEXT,", "").replace(", pid INTEGER, proc_start INTEGER", ""))
    settings = {"tasks": [{"name": "digits", "recipe": "digits_mlp"}, {"name": "own", "model": "m.onnx"}]}
    con.execute("INSERT INTO runs VALUES (1, 's', '', 0, 1, 'done', '', '', ?)", (json.dumps(settings),))
    for i, task in enumerate(("digits", "own")):
        con.execute(
            "INSERT INTO results (job_key, run_id, suite, task, variant, target, status, created) "
            "VALUES (?, 1, 's', ?, 'fp32', 'cpu', 'done', 0)",
            (f"k{i}", task),
        )
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.commit()
    con.close()


def test_v1_database_read_untouched_and_migrated_on_write(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite"
    _v1_db(db)
    with Store.open(db, create=False) as s:  # a reader (reports) leaves the file as it is
        assert [r.base_model for r in s.results()] == [None, None]
        assert s._version(s.conn) == 1
    with Store.open(db) as s:  # a writer migrates: the task's single recipe, else NULL
        assert s._version(s.conn) == SCHEMA_VERSION >= 3  # migrated through every version up to now
        assert [(r.task, r.base_model) for r in s.results()] == [("digits", "digits_mlp"), ("own", None)]
        s.save_result(replace(s.results()[0], job_key="k9", run_id=1, base_model="digits_cnn"), [])
        assert s.results()[-1].base_model == "digits_cnn"


# --- end to end: two base models on one leaderboard, one performance-only task ---
def test_run_several_base_models_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(MULTI)
    env = {**os.environ, "FRUGALBENCH_CACHE": str(tmp_path / "cache"), "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "run", "s.toml", "--db", "r.sqlite"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    with Store.open(tmp_path / "r.sqlite", create=False) as s:
        res = s.results()
    got = sorted((x.task, x.base_model, x.variant, x.status) for x in res)
    assert got == [
        ("digits", "digits_cnn", "digits_cnn:fp32", "done"),
        ("digits", "digits_mlp", "digits_mlp:fp32", "done"),
        ("digits", "digits_mlp", "digits_mlp:int8-dynamic", "done"),
        ("perf", "mlperf_ad_autoencoder", "fp32", "done"),
    ]
    assert len({x.job_key for x in res}) == 4
    board = leaderboard(res)
    digits = [b for b in board if b["task"] == "digits" and b["rank"] is not None]
    assert sorted(b["rank"] for b in digits if b["rank"]) == list(range(1, len(digits) + 1))
    assert {b["base_model"] for b in board if b["task"] == "digits"} == {"digits_mlp", "digits_cnn"}
    (perf,) = [b for b in board if b["task"] == "perf"]
    assert perf["accuracy"] is None and perf["rank"] == 1
    md = subprocess.run(
        [sys.executable, "-m", "harness.cli.main", "report", "--db", "r.sqlite", "--format", "md"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600,
    ).stdout  # fmt: skip
    assert "| base model |" in md and "digits_cnn:fp32" in md and "Performance only" in md
