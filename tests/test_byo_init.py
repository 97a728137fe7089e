"""``frugalbench init-task MODEL DATA`` writes a suite that loads, with a measured minimum."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_diabetes, load_digits
from sklearn.metrics import accuracy_score, mean_absolute_error
from sklearn.neural_network import MLPClassifier, MLPRegressor
from threadpoolctl import threadpool_limits
from typer.testing import CliRunner

from harness.cli.main import app
from harness.suite import load_suite

skl2onnx = pytest.importorskip("skl2onnx")


def _fit(est: Any, x: np.ndarray, y: np.ndarray) -> Any:
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        return est.fit(x, y)


def _write(est: Any, x: np.ndarray, path: Path, zipmap: bool = True) -> None:
    opts = {id(est): {"zipmap": False}} if zipmap else None
    path.write_bytes(
        skl2onnx.to_onnx(est, x[:1].astype(np.float32), options=opts, target_opset=17).SerializeToString()
    )


def test_init_task_classifier(tmp_path: Path) -> None:
    x, y = load_digits(return_X_y=True)
    x = (x / 16).astype(np.float32)
    clf = _fit(MLPClassifier((16,), max_iter=60, random_state=0), x[:1000], y[:1000])
    _write(clf, x, tmp_path / "m.onnx")
    np.savez(tmp_path / "d.npz", x_eval=x[1000:], y_eval=y[1000:], x_train=x[:1000], y_train=y[:1000])
    out = tmp_path / "suite" / "s.toml"
    out.parent.mkdir()
    r = CliRunner().invoke(
        app, ["init-task", str(tmp_path / "m.onnx"), str(tmp_path / "d.npz"), "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert "# Model inputs:  X (?, 64) float32" in text and "probabilities (?, 10) float32" in text
    suite = load_suite(out)
    task = suite.tasks[0]
    p = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["probabilities"], {"X": x[1000:]})[0]
    acc = accuracy_score(y[1000:], p.argmax(1))
    assert task.metric == "accuracy" and task.input == {"output": "probabilities"}
    assert task.min_accuracy == pytest.approx(round(acc - 0.01, 4))
    names = {v.name for v in suite.variants}
    assert {"fp32", "int8-static", "prune-weights-50", "prune-80-ft"} <= names  # converted + train split
    assert {t["runtime"] for t in suite.targets} == {"ort", "litert"}
    again = CliRunner().invoke(
        app, ["init-task", str(tmp_path / "m.onnx"), str(tmp_path / "d.npz"), "-o", str(out)]
    )
    assert again.exit_code != 0


def test_init_task_regression_picks_mae(tmp_path: Path) -> None:
    x, y = load_diabetes(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    reg = _fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=300, random_state=0), x[:300], y[:300])
    _write(reg, x, tmp_path / "r.onnx", zipmap=False)
    np.savez(tmp_path / "r.npz", x_eval=x[300:], y_eval=y[300:])
    r = CliRunner().invoke(
        app, ["init-task", str(tmp_path / "r.onnx"), str(tmp_path / "r.npz"), "-o", str(tmp_path / "r.toml")]
    )
    assert r.exit_code == 0, r.output
    data = tomllib.loads((tmp_path / "r.toml").read_text())
    task = data["tasks"][0]
    out = ort.InferenceSession(str(tmp_path / "r.onnx")).run(None, {"X": x[300:]})[0]
    mae = mean_absolute_error(y[300:], out.reshape(-1))
    assert task["metric"] == "mae" and task["min_accuracy"] == pytest.approx(round(mae * 1.1, 6))
    assert not any(v["technique"] == "prune" for v in data["variants"])  # no training split


def test_example_suite_and_its_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import shutil

    from harness.byo.task import build

    root = Path(__file__).resolve().parents[1] / "benches" / "examples"
    spec = importlib.util.spec_from_file_location("make_byo", root / "make_byo.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "OUT", tmp_path / "data")
    mod.main()
    shutil.copy(root / "byo.toml", tmp_path)
    suite = load_suite(tmp_path / "byo.toml")
    for task in suite.tasks:
        if task.name == "vad" and importlib.util.find_spec("silero_vad") is None:
            continue
        b = build(task)
        assert b.data.meta["ir"].startswith("converted" if task.name == "digits" else "not converted")
