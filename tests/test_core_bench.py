"""``frugalbench bench`` on our models and on real models shipped inside PyPI wheels; bad model files."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ModelError
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite
from harness.ir.layers import Dense
from harness.ir.network import Network
from harness.pipeline.bench import bench_model


def _wheel_file(pkg: str, rel: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        pytest.skip(f"{pkg} not installed (.ci/run installs it with --no-deps)")
    return Path(spec.origin).parent / rel


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.normal(size=(16, 32)), np.zeros(32), "relu"), Dense(rng.normal(size=(32, 4)), np.zeros(4))])
    d = tmp_path_factory.mktemp("m")
    (d / "m.onnx").write_bytes(network_to_onnx_bytes(net))
    (d / "m.tflite").write_bytes(network_to_tflite(net))
    return d / "m.onnx", d / "m.tflite"


def test_bench_our_models(small: tuple[Path, Path]) -> None:
    onnx_path, tfl_path = small
    r = bench_model(onnx_path, window_s=0.05, windows=3, warmup_s=0.01, batch=4)
    assert r.params == 16 * 32 + 32 + 32 * 4 + 4
    assert r.macs == 16 * 32 + 32 * 4  # per inference (one sample), whatever the batch
    assert 0 < r.latency_ms["p50"] <= r.latency_ms["p90"] <= r.latency_ms["p99"]
    assert r.throughput_ips > 0 and r.inputs[0]["shape"] == [4, 16]
    t = bench_model(tfl_path, window_s=0.05, windows=3, warmup_s=0.01)
    assert t.params == 16 * 32 + 32 + 32 * 4 + 4 and t.runtime == "litert"
    assert t.macs == r.macs and t.macs_unknown is None  # a static .tflite is counted, never "not computable"


def test_silero_vad_from_its_wheel() -> None:
    path = _wheel_file("silero_vad", "data/silero_vad_16k_op15.onnx")
    with pytest.raises(ModelError, match="--shape input="):
        bench_model(path, window_s=0.05, windows=2)
    r = bench_model(path, window_s=0.05, windows=2, warmup_s=0.01,
                    shapes={"input": "1x512", "state": "2x1x128"}, values={"sr": "16000"})
    assert r.params and r.params > 100_000
    assert r.macs == 563_968  # for sr=16000 and 512 samples (tests/test_counts.py checks it against ORT's shapes)
    assert r.latency_ms["p50"] > 0
    assert {i["name"] for i in r.inputs} == {"input", "state", "sr"}


def test_micro_wakeword_tflite_from_its_wheel() -> None:
    path = _wheel_file("pymicro_wakeword", "models/okay_nabu.tflite")
    r = bench_model(path, window_s=0.05, windows=2, warmup_s=0.01)
    assert r.inputs[0]["shape"] == [1, 3, 40] and r.params and r.params > 1000
    assert r.macs == 36_480  # 15 CONV_2D/DEPTHWISE_CONV_2D/FULLY_CONNECTED ops, summed by hand from the op list
    assert r.latency_ms["p50"] > 0


def test_corrupt_and_truncated_models(tmp_path: Path, small: tuple[Path, Path]) -> None:
    onnx_path, tfl_path = small
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(onnx_path.read_bytes()[: len(onnx_path.read_bytes()) // 2])
    with pytest.raises(ModelError, match="corrupt or truncated"):
        bench_model(cut)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="TFL3"):
        bench_model(junk)
    with pytest.raises(ModelError, match="not found"):
        bench_model(tmp_path / "none.onnx")


def test_unsupported_op_is_one_clear_line(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("FrobnicateXYZ", ["x"], ["y"], domain="com.example")
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    p = tmp_path / "odd.onnx"
    p.write_bytes(m.SerializeToString())
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "bench", str(p)], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "300"})
    assert r.returncode == 2
    assert "ONNX Runtime cannot load" in r.stderr and "FrobnicateXYZ" in r.stderr
    assert "Traceback" not in r.stderr


def test_bench_json_cli(small: tuple[Path, Path]) -> None:
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "bench", str(small[0]), "--json", "--window-s", "0.05",
                        "--windows", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["latency_ms"]["p99"] >= out["latency_ms"]["p50"] > 0
    assert out["macs"] == 16 * 32 + 32 * 4 and out["macs_unknown"] is None


def test_bench_table_names_the_unknown_op_and_the_stored_dtype(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "400"}
    path = _wheel_file("pymicro_wakeword", "models/okay_nabu.tflite")
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "bench", str(path), "--window-s", "0.02",
                        "--windows", "2"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "36480" in r.stdout and "int8 (fed as float32)" in r.stdout and "not computable" not in r.stdout
    path = _wheel_file("silero_vad", "data/silero_vad.onnx")  # the export whose If branches on sr
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "bench", str(path), "--window-s", "0.02",
                        "--windows", "2", "--shape", "input=1x512", "--shape", "state=2x1x128", "--value", "sr=16000"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "563968" in r.stdout  # the branch taken for 16 kHz, as in the op15 export
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("Einsum", ["x", "w"], ["y"], equation="bi,ij->bj")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    p = tmp_path / "einsum.onnx"
    p.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "bench", str(p), "--window-s", "0.02",
                        "--windows", "2"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "unknown: Einsum" in r.stdout and "no MAC rule" in r.stdout


def test_targets_and_meters_list_reasons() -> None:
    r = subprocess.run([sys.executable, "-m", "harness.cli.main", "meters"], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "300"})
    assert r.returncode == 0, r.stderr
    assert "estimate" in r.stdout and "rapl" in r.stdout
    if not Path("/sys/class/powercap").exists():
        assert "/sys/class/powercap not present" in r.stdout
    t = subprocess.run([sys.executable, "-m", "harness.cli.main", "targets"], capture_output=True, text=True,
                       env={**os.environ, "COLUMNS": "300"})
    assert t.returncode == 0 and "target cpu" in t.stdout and "runtime ort" in t.stdout



def test_runtimes_declare_their_inputs(small: tuple[Path, Path]) -> None:
    """bench asks the runtime what to feed: an int8 TFLite input is fed as float32 and quantised by it."""
    from harness.runtimes import RUNTIMES

    onnx_path, _ = small
    ort = RUNTIMES.get("ort")(onnx_path, threads=1, batch=1)
    assert [(s.name, s.dtype) for s in ort.input_specs] == [("input", np.dtype(np.float32))]
    assert ort.input_dtype == np.dtype(np.float32)
    path = _wheel_file("pymicro_wakeword", "models/okay_nabu.tflite")
    lit = RUNTIMES.get("litert")(path, threads=1, batch=1)
    assert lit.input_dtype == np.dtype(np.int8) and lit.input_specs[0].dtype == np.dtype(np.float32)
    r = bench_model(path, window_s=0.02, windows=2, warmup_s=0.01)
    assert r.inputs == [{"name": "input", "shape": [1, 3, 40], "dtype": "int8", "fed_dtype": "float32"}]
