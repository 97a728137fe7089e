"""Bring-your-own tasks through the real runner: scikit-learn models converted with skl2onnx, a user
``.tflite``, and silero-vad's ONNX model from its PyPI wheel, measured on the CPU into SQLite."""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from harness.errors import DatasetError
from harness.pipeline.runner import run_suite
from harness.results.rank import leaderboard
from harness.results.record import Result
from harness.results.store import Store
from harness.suite import load_suite

skl2onnx = pytest.importorskip("skl2onnx")

pytestmark = pytest.mark.slow

RUN = """
[suite]
name = "byo"
[run]
warmup_s = 0.01
window_s = 0.03
min_windows = 2
max_windows = 2
ci_target = 0.9
"""

SUITE = (
    RUN
    + """
[[tasks]]
name = "digits"
model = "digits.onnx"
data = "digits.npz"
input = { scale = 0.0625 }
metric = "macro_f1"
min_accuracy = 0.5

[[tasks]]
name = "digits-strict"
model = "digits.onnx"
data = "digits.npz"
input = { scale = 0.0625 }
metric = "macro_f1"
min_accuracy = 0.999

[[tasks]]
name = "cancer"
model = "cancer.onnx"
data = "cancer.npz"
metric = "auc"
min_accuracy = 0.9

[[tasks]]
name = "user-tflite"
model = "digits.tflite"
data = "digits.npz"
input = { scale = 0.0625 }
metric = "accuracy"
min_accuracy = 0.5

[[tasks]]
name = "vad"
model = "silero_vad_16k_op15.onnx"
data = "vad.npz"
input = { output = "output", constants = { state = 0.0, sr = 16000 } }
metric = "auc"
min_accuracy = 0.8

[[tasks]]
name = "wakeword"
model = "okay_nabu.tflite"
data = "wakeword.npz"
metric = "auc"
min_accuracy = 0.0
why_min = "random features: a smoke test of an int8, stateful .tflite from a wheel, not a quality figure"

[[variants]]
name = "fp32"
technique = "fp32"

[[variants]]
name = "int8"
technique = "int8"
tasks = ["digits", "cancer"]

[[variants]]
name = "prune-weights"
technique = "prune-weights"
params = { sparsity = 0.3 }
tasks = ["digits", "vad"]

[[variants]]
name = "svd-weights"
technique = "svd-weights"
params = { ratio = 0.6, min_size = 256 }
tasks = ["digits"]

[[variants]]
name = "int8-litert"
technique = "int8-litert"
tasks = ["digits", "user-tflite"]

[[variants]]
name = "prune-ft"
technique = "prune"
params = { sparsity = 0.5, epochs = 4, steps = 1 }
tasks = ["digits", "cancer"]

[[targets]]
name = "cpu-ort"
kind = "cpu"
runtime = "ort"

[[targets]]
name = "cpu-litert"
kind = "cpu"
runtime = "litert"
"""
)


def _vad_signals(n_each: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic voiced frames (harmonics shaped by formants) against noise, 576 samples at 16 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(576) / 16000
    xs, ys = [], []
    for _ in range(n_each):
        f0, formants = rng.uniform(90, 250), (rng.uniform(300, 800), rng.uniform(900, 2300), 2600.0)
        sig = sum(
            np.sin(2 * np.pi * k * f0 * t) / k * sum(np.exp(-(((k * f0 - f) / 120) ** 2)) for f in formants)
            for k in range(1, 40)
        )
        xs.append(0.5 * sig / np.abs(sig).max() + 0.05 * rng.standard_normal(576))
        ys.append(1)
        xs.append(rng.uniform(0.001, 0.3) * rng.standard_normal(576))
        ys.append(0)
    return np.asarray(xs, np.float32), np.asarray(ys)


def _onnx_bytes(clf: Any, x: np.ndarray) -> bytes:
    return skl2onnx.to_onnx(
        clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17
    ).SerializeToString()


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("byo")
    x, y = load_digits(return_X_y=True)
    xb, yb = load_breast_cancer(return_X_y=True)
    xb = ((xb - xb.mean(0)) / xb.std(0)).astype(np.float32)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        mlp = MLPClassifier((32,), max_iter=150, random_state=0).fit(x[:1200] / 16, y[:1200])
    lr = LogisticRegression(max_iter=500).fit(xb[:300], yb[:300])
    (d / "digits.onnx").write_bytes(_onnx_bytes(mlp, (x / 16).astype(np.float32)))
    (d / "cancer.onnx").write_bytes(_onnx_bytes(lr, xb))
    np.savez(
        d / "digits.npz",
        x_eval=x[1200:].astype(np.uint8),
        y_eval=y[1200:],
        x_train=x[:1200].astype(np.uint8),
        y_train=y[:1200],
    )
    np.savez(d / "cancer.npz", x_eval=xb[300:], y_eval=yb[300:])
    # A user's float .tflite of the same MLP (written here with our exporter from scikit-learn's weights)
    from harness.ir.export.tflite_export import network_to_tflite
    from harness.ir.layers import Dense
    from harness.ir.network import Network

    net = Network(
        [Dense(mlp.coefs_[0], mlp.intercepts_[0], "relu"), Dense(mlp.coefs_[1], mlp.intercepts_[1])]
    )
    (d / "digits.tflite").write_bytes(network_to_tflite(net))
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        pytest.skip("silero-vad is not installed (.ci/install: pip install --no-deps silero-vad==6.2.3)")
    shutil.copy(Path(spec.origin).parent / "data" / "silero_vad_16k_op15.onnx", d)
    xv, yv = _vad_signals(25, 0)
    np.savez(d / "vad.npz", x_eval=xv, y_eval=yv)
    spec = importlib.util.find_spec("pymicro_wakeword")
    if spec is None or spec.origin is None:
        pytest.skip(
            "pymicro-wakeword is not installed (.ci/install: pip install --no-deps pymicro-wakeword==2.5.0)"
        )
    shutil.copy(Path(spec.origin).parent / "models" / "okay_nabu.tflite", d)
    rng = np.random.default_rng(0)
    np.savez(d / "wakeword.npz", x_eval=rng.uniform(0, 26, (20, 3, 40)), y_eval=np.arange(20) % 2)
    return {"dir": d, "digits": (x[1200:] / 16, y[1200:]), "cancer": (xb[300:], yb[300:]), "vad": (xv, yv)}


@pytest.fixture(scope="module")
def ran(assets: dict[str, Any]) -> dict[str, Any]:
    d = assets["dir"]
    (d / "s.toml").write_text(SUITE)
    run_suite(load_suite(d / "s.toml"), d / "r.sqlite", cache=d / "cache")
    with Store.open(d / "r.sqlite", create=False) as s:
        rows = s.results()
    return {(r.task, r.variant, r.target): r.columns() for r in rows}  # records as their stored columns


def _ort(path: Path, feeds: dict[str, np.ndarray], out: str) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run([out], feeds)[0]


def test_gate_metric_is_the_declared_one_and_matches_sklearn(
    assets: dict[str, Any], ran: dict[str, Any]
) -> None:
    d = assets["dir"]
    x, y = assets["digits"]
    p = _ort(d / "digits.onnx", {"X": x.astype(np.float32)}, "probabilities")
    want_f1 = f1_score(y, p.argmax(1), average="macro")
    for target in ("cpu-ort", "cpu-litert"):  # the IR export on both runtimes
        r = ran[("digits", "fp32", target)]
        assert r["status"] == "done" and r["metric"] == "macro_f1"
        assert r["accuracy"] == pytest.approx(want_f1, abs=1e-12)
    xb, yb = assets["cancer"]
    pb = _ort(d / "cancer.onnx", {"X": xb}, "probabilities")
    r = ran[("cancer", "fp32", "cpu-ort")]
    assert r["metric"] == "auc" and r["accuracy"] == pytest.approx(roc_auc_score(yb, pb[:, 1]), abs=1e-12)
    assert r["accuracy"] != pytest.approx(float((pb.argmax(1) == yb).mean()))  # AUC, not accuracy


def test_min_above_the_achieved_metric_is_below_the_gate(ran: dict[str, Any]) -> None:
    board = leaderboard(Result.from_columns(r) for r in ran.values())
    strict = [b for b in board if b["task"] == "digits-strict"]
    assert strict and all(not b["passes_gate"] and b["rank"] is None for b in strict)
    assert all(b["accuracy"] < 0.999 for b in strict)
    fp32 = next(
        b for b in board if b["task"] == "digits" and b["variant"] == "fp32" and b["target"] == "cpu-ort"
    )
    assert fp32["passes_gate"] and fp32["metric"] == "macro_f1"


def test_post_training_variants_are_not_fine_tuned(ran: dict[str, Any]) -> None:
    for v in ("prune-weights", "svd-weights", "int8-litert", "int8"):
        r = ran[("digits", v, "cpu-litert")]
        assert r["status"] == "done", r["reason"]
        assert r["fine_tuned"] == 0 and r["accuracy"] > 0.5
    assert ran[("digits", "prune-weights", "cpu-ort")]["variant_meta"]["steps"][0]["sparsity_achieved"] > 0.29
    ft = ran[("digits", "prune-ft", "cpu-ort")]
    assert ft["status"] == "done" and ft["fine_tuned"] == 1 and ft["accuracy"] > 0.8


def test_unconvertible_model_falls_back_to_post_training(ran: dict[str, Any]) -> None:
    assert ran[("cancer", "int8", "cpu-ort")]["status"] == "done"
    failed = ran[("cancer", "prune-ft", "cpu-ort")]
    assert failed["status"] == "failed" and "post-training" in failed["reason"]
    skipped = ran[("cancer", "fp32", "cpu-litert")]
    assert skipped["status"] == "skipped" and "tflite" in skipped["reason"]


def test_user_tflite_quantised_by_litert(ran: dict[str, Any]) -> None:
    fp = ran[("user-tflite", "fp32", "cpu-litert")]
    q = ran[("user-tflite", "int8-litert", "cpu-litert")]
    assert fp["status"] == q["status"] == "done"
    assert q["model_bytes"] < fp["model_bytes"] / 2
    assert abs(q["accuracy"] - fp["accuracy"]) < 0.05
    # the float FULLY_CONNECTED chain converts to the IR, so ONNX Runtime runs it too, with the same score
    assert fp["variant_meta"]["architecture"] == "64-dense-32-dense-10"
    assert ran[("user-tflite", "fp32", "cpu-ort")]["accuracy"] == pytest.approx(fp["accuracy"], abs=1e-12)


def test_silero_vad_from_its_wheel(assets: dict[str, Any], ran: dict[str, Any]) -> None:
    d = assets["dir"]
    x, y = assets["vad"]
    state, sr = np.zeros((2, 1, 128), np.float32), np.array(16000, np.int64)
    sess = ort.InferenceSession(str(d / "silero_vad_16k_op15.onnx"), providers=["CPUExecutionProvider"])
    p = np.array([sess.run(["output"], {"input": row[None], "state": state, "sr": sr})[0][0, 0] for row in x])
    r = ran[("vad", "fp32", "cpu-ort")]
    assert r["status"] == "done" and r["metric"] == "auc"
    assert r["accuracy"] == pytest.approx(roc_auc_score(y, p), abs=1e-9) and r["accuracy"] > 0.8
    assert r["energy_per_inference_j"] > 0 and r["latency_p50_s"] > 0
    assert ran[("vad", "prune-weights", "cpu-ort")]["status"] == "done"


def test_int8_tflite_from_a_wheel_runs_as_given(ran: dict[str, Any]) -> None:
    r = ran[("wakeword", "fp32", "cpu-litert")]
    assert r["status"] == "done" and r["energy_per_inference_j"] > 0 and r["n_inferences"] > 0
    assert r["variant_meta"]["model_bytes"]["tflite"] < 100_000
    assert ran[("wakeword", "fp32", "cpu-ort")]["status"] == "skipped"


BAD = (
    RUN
    + """
[[tasks]]
name = "good"
model = "digits.onnx"
data = "digits.npz"
input = {{ scale = 0.0625 }}
min_accuracy = 0.5

[[tasks]]
name = "bad"
model = "digits.onnx"
data = "bad.npz"
min_accuracy = 0.5

[[variants]]
name = "fp32"
technique = "fp32"

[[targets]]
name = "cpu-ort"
kind = "cpu"
"""
)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x_eval": np.full((5, 64), np.nan), "y_eval": np.zeros(5, int)}, "NaN"),
        ({"x_eval": np.zeros((5, 64)), "y_eval": np.arange(5) + 8}, "labels must be in [0, 9]"),
        ({"x_eval": np.zeros((5, 64))}, "missing y_eval"),
        ({"x_eval": np.zeros((5, 8, 8)), "y_eval": np.zeros(5, int)}, "(8, 8)"),
    ],
)
def test_bad_dataset_refused_before_any_run(
    assets: dict[str, Any], tmp_path: Path, arrays: dict[str, Any], message: str
) -> None:
    for f in ("digits.onnx", "digits.npz"):
        shutil.copy(assets["dir"] / f, tmp_path)
    np.savez(tmp_path / "bad.npz", **arrays)
    (tmp_path / "s.toml").write_text(BAD.format())
    with pytest.raises(DatasetError) as e:
        run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "r.sqlite", cache=tmp_path / "cache")
    assert message in str(e.value)
    if message == "(8, 8)":
        assert "(?, 64)" in str(e.value)
    assert sqlite3.connect(tmp_path / "r.sqlite").execute("SELECT count(*) FROM results").fetchone() == (0,)
