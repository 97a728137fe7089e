"""Bring-your-own model and data: loading, checks, preprocessing, ONNX → IR conversion (no runner)."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from harness.byo.datasets import load_arrays
from harness.byo.preprocess import preprocess
from harness.byo.spec import InputSpec
from harness.byo.task import build
from harness.errors import ConfigError, DatasetError
from harness.ir.importers.onnx_import import NotConvertible, onnx_to_network

skl2onnx = pytest.importorskip("skl2onnx")


def _onnx(clf: Any, x: np.ndarray) -> onnx.ModelProto:
    return skl2onnx.to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    d = tmp_path_factory.mktemp("digits")
    x, y = load_digits(return_X_y=True)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        clf = MLPClassifier((16,), max_iter=80, random_state=0).fit(x[:1000] / 16, y[:1000])
    (d / "m.onnx").write_bytes(_onnx(clf, (x / 16).astype(np.float32)).SerializeToString())
    return d / "m.onnx", x[1000:], y[1000:]


def _task(model: Path, data: Path, **kw: Any) -> SimpleNamespace:
    base = {
        "name": "t",
        "model": str(model),
        "data": str(data),
        "input": {"scale": 0.0625},
        "metric": "accuracy",
        "metric_params": {},
    }
    return SimpleNamespace(**(base | kw))


def test_npz_converts_and_keeps_the_metric(
    digits: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, x, y = digits
    np.savez(tmp_path / "d.npz", x_eval=x.astype(np.uint8), y_eval=y, x_train=x[:50], y_train=y[:50])
    b = build(_task(model, tmp_path / "d.npz"))
    assert b.model.net is not None and b.model.net.describe() == "64-dense-16-dense-10"
    assert b.data.n_classes == 10 and b.data.x_eval.dtype == np.float32
    np.testing.assert_allclose(b.data.x_eval, x / 16, rtol=1e-6)
    assert b.data.meta["calib_from"] == "x_train" and b.data.meta["output"] == "probabilities"
    sess = ort.InferenceSession(model.read_bytes(), providers=["CPUExecutionProvider"])
    p = sess.run(["probabilities"], {"X": (x / 16).astype(np.float32)})[0]
    assert (b.model.net.forward(b.data.x_eval).argmax(1) == p.argmax(1)).all()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y_eval": np.zeros(3, int)}, "missing x_eval"),
        ({"x_eval": np.zeros((3, 64))}, "missing y_eval"),
        (
            {"x_eval": np.zeros((3, 64)), "y_eval": np.zeros(3, int), "x_train": np.zeros((3, 64))},
            "x_train without",
        ),
        ({"x_eval": np.full((3, 64), np.nan), "y_eval": np.zeros(3, int)}, "192 NaN"),
        ({"x_eval": np.zeros((3, 64)), "y_eval": np.array([0, 10, 1])}, "[0, 9]"),
        ({"x_eval": np.zeros((3, 64)), "y_eval": np.array([0, -1, 1])}, "found the range [-1, 1]"),
        ({"x_eval": np.zeros((3, 64)), "y_eval": np.array([0.5, 1, 1])}, "non-integer labels"),
        ({"x_eval": np.zeros((4, 64)), "y_eval": np.zeros(3, int)}, "x_eval has 4 rows but y_eval has 3"),
    ],
)
def test_bad_datasets_are_refused(
    digits: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path, arrays: dict[str, np.ndarray], message: str
) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)  # type: ignore[arg-type]
    with pytest.raises(DatasetError) as e:
        build(_task(digits[0], tmp_path / "bad.npz"))
    assert message in str(e.value)


def test_shape_mismatch_names_both_shapes(
    digits: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, x, y = digits
    np.savez(tmp_path / "d.npz", x_eval=x[:, :63], y_eval=y)
    with pytest.raises(DatasetError) as e:
        build(_task(model, tmp_path / "d.npz"))
    msg = str(e.value)
    assert "(63)" in msg and "(?, 64)" in msg and "'X'" in msg


def test_reshape_and_layout_fix_the_shape(
    digits: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, x, y = digits
    imgs = x.reshape(-1, 8, 8, 1)  # NHWC images; the model wants 64 values in row-major (H, W) order
    np.savez(tmp_path / "d.npz", x_eval=imgs, y_eval=y)
    task = _task(model, tmp_path / "d.npz", input={"scale": 0.0625, "layout": "NHWC->NCHW", "reshape": [64]})
    b = build(task)
    np.testing.assert_allclose(b.data.x_eval, x / 16, rtol=1e-6)


@settings(max_examples=40, deadline=None)
@given(st.permutations("NCHW"), st.floats(0.01, 10), st.floats(-5, 5))
def test_layout_matches_numpy_transpose(perm: list[str], scale: float, offset: float) -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    spec = InputSpec(layout=f"NCHW->{''.join(perm)}", scale=scale, offset=offset)
    got = preprocess(x, spec, "float32")
    want = x.transpose(["NCHW".index(c) for c in perm]) * scale + offset
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_dtype_rounds_and_clips() -> None:
    x = np.array([[-3.0, 0.4, 0.6, 300.0]])
    np.testing.assert_array_equal(preprocess(x, InputSpec(dtype="uint8"), "uint8"), [[0, 0, 1, 255]])


def test_csv_with_split_and_npy_folder(digits: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    model, x, y = digits
    rows = [",".join([f"f{i}" for i in range(64)] + ["label", "split"])]
    rows += [",".join([*map(str, x[i]), str(y[i]), "train" if i < 20 else "eval"]) for i in range(60)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    b = build(_task(model, tmp_path / "d.csv", input={"scale": 0.0625, "label_column": "label"}))
    assert b.data.x_train is not None and len(b.data.x_train) == 20 and len(b.data.x_eval) == 40
    assert b.data.y_eval.dtype == np.int64
    (tmp_path / "npy").mkdir()
    np.save(tmp_path / "npy" / "x_eval.npy", x)
    np.save(tmp_path / "npy" / "y_eval.npy", y)
    b = build(_task(model, tmp_path / "npy" / "x_eval.npy"))
    assert (
        len(b.data.x_eval) == len(x)
        and b.data.x_train is None
        and b.data.meta["calib_from"].startswith("x_eval")
    )


def test_unknown_input_key_and_output_are_config_errors(
    digits: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    model, x, y = digits
    np.savez(tmp_path / "d.npz", x_eval=x, y_eval=y)
    with pytest.raises(ConfigError, match="input.scael"):
        build(_task(model, tmp_path / "d.npz", input={"scael": 2.0}))
    with pytest.raises(ConfigError, match="no output 'proba'.*'label', 'probabilities'"):
        build(_task(model, tmp_path / "d.npz", input={"output": "proba"}))


def test_binary_mlp_converts_with_the_same_auc() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        clf = MLPClassifier((8,), max_iter=30, random_state=0).fit(x, y)
    m = _onnx(clf, x)
    imp = onnx_to_network(m, "probabilities")
    assert imp.head == "sigmoid2" and imp.net.out_dim == 2
    p = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["probabilities"], {"X": x}
    )[0]
    z = imp.net.forward(x)
    assert roc_auc_score(y, z[:, 1]) == roc_auc_score(y, p[:, 1])
    assert (z.argmax(1) == p.argmax(1)).all()


def test_blocking_operators_are_named() -> None:
    x, y = load_breast_cancer(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    lr = LogisticRegression(max_iter=200).fit(x, y)
    with pytest.raises(NotConvertible, match=r"LinearClassifier \(ai.onnx.ml\)"):
        onnx_to_network(_onnx(lr, x.astype(np.float32)), "probabilities")
    h = onnx.helper
    g = h.make_graph(
        [h.make_node("MatMul", ["x", "w"], ["y"]), h.make_node("Tanh", ["y"], ["z"])],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
        [h.make_tensor_value_info("z", onnx.TensorProto.FLOAT, [None, 3])],
        [onnx.numpy_helper.from_array(np.ones((4, 3), np.float32), "w")],
    )
    with pytest.raises(NotConvertible, match="operator Tanh"):
        onnx_to_network(h.make_model(g))


def test_gemm_chain_converts_exactly() -> None:
    h = onnx.helper
    rng = np.random.default_rng(0)
    w1, b1, w2 = (
        rng.normal(size=(5, 4)).astype(np.float32),
        rng.normal(size=4).astype(np.float32),
        rng.normal(size=(3, 4)).astype(np.float32),
    )
    g = h.make_graph(
        [
            h.make_node("Gemm", ["x", "w1", "b1"], ["a"], alpha=0.5),
            h.make_node("Relu", ["a"], ["r"]),
            h.make_node("Gemm", ["r", "w2"], ["y"], transB=1),
        ],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 5])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])],
        [onnx.numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"))],
    )
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    x = rng.normal(size=(6, 5)).astype(np.float32)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[
        0
    ]
    np.testing.assert_allclose(onnx_to_network(m).net.forward(x), ref, rtol=1e-5, atol=1e-5)


def test_input_normalisation_folds_into_the_first_layer() -> None:
    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")
        pipe = make_pipeline(StandardScaler(), MLPClassifier((16,), max_iter=40, random_state=0)).fit(x, y)
    m = skl2onnx.to_onnx(pipe, x[:1], options={id(pipe[-1]): {"zipmap": False}}, target_opset=17)
    assert m.graph.node[0].op_type == "Scaler"
    imp = onnx_to_network(m, "probabilities")
    p = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        ["probabilities"], {"X": x}
    )[0]
    z = imp.net.forward(x)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(1, keepdims=True), p, atol=1e-5)
    h = onnx.helper
    mean, std = np.float32(3.0), np.float32(2.0)
    g = h.make_graph(
        [
            h.make_node("Sub", ["x", "mean"], ["a"]),
            h.make_node("Div", ["a", "std"], ["b"]),
            h.make_node("MatMul", ["b", "w"], ["y"]),
        ],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])],
        [
            onnx.numpy_helper.from_array(np.array(mean), "mean"),
            onnx.numpy_helper.from_array(np.array(std), "std"),
            onnx.numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "w"),
        ],
    )
    xs = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    want = ((xs - mean) / std) @ np.arange(12, dtype=np.float32).reshape(4, 3)
    np.testing.assert_allclose(onnx_to_network(h.make_model(g)).net.forward(xs), want, rtol=1e-5, atol=1e-5)


def test_integer_input_gets_a_cast_and_rounded_data(tmp_path: Path) -> None:
    h = onnx.helper
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    g = h.make_graph(
        [
            h.make_node("Cast", ["x"], ["xf"], to=onnx.TensorProto.FLOAT),
            h.make_node("MatMul", ["xf", "w"], ["y"]),
        ],
        "g",
        [h.make_tensor_value_info("x", onnx.TensorProto.UINT8, [None, 4])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 2])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), tmp_path / "u8.onnx")
    x = np.array([[0.4, 1.6, 300.0, -2.0], [10.2, 0.0, 3.0, 1.0]])
    np.savez(tmp_path / "d.npz", x_eval=x, y_eval=np.array([0, 1]))
    b = build(_task(tmp_path / "u8.onnx", tmp_path / "d.npz", input={}))
    assert b.data.meta["dtype"] == "uint8" and "Cast" in b.data.meta["ir"]
    np.testing.assert_array_equal(b.data.x_eval, [[0, 2, 255, 0], [10, 0, 3, 1]])
    sess = ort.InferenceSession(b.model.files["onnx"], providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"
    np.testing.assert_allclose(sess.run(None, {"x": b.data.x_eval})[0], b.data.x_eval @ w)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=3, max_size=3),
            st.integers(0, 4),
            st.sampled_from(["train", "eval", "Eval "]),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_csv_parser_round_trips(rows: list[tuple[list[float], int, str]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        lines = ["a,b,split,y,c"] + [f"{f[0]!r},{f[1]!r},{s},{y},{f[2]!r}" for f, y, s in rows]
        path.write_text("\n".join(lines) + "\n")
        if not any(s.strip().lower() == "eval" for _, _, s in rows):
            with pytest.raises(DatasetError, match="no row has split = eval"):
                load_arrays(path, InputSpec(label_column="y"))
            return
        got = load_arrays(path, InputSpec(label_column="y"))
    ev = [(f, y) for f, y, s in rows if s.strip().lower() == "eval"]
    np.testing.assert_array_equal(got["x_eval"], np.array([f for f, _ in ev], np.float64))
    np.testing.assert_array_equal(got["y_eval"], [y for _, y in ev])
    assert ("x_train" in got) == any(s == "train" for _, _, s in rows)


def test_byo_does_not_import_the_pipeline() -> None:
    """Imports point down: the pipeline uses byo, never the reverse (a fresh interpreter sees it)."""
    import subprocess
    import sys

    code = (
        "import sys, harness.byo.task, harness.byo.starter; "
        "print([m for m in sys.modules if m.startswith(('harness.pipeline', 'harness.cli'))])"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout
