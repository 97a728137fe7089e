"""Parameters and MACs (:mod:`harness.ir.counts`): hand-built ONNX graphs with hand-computed counts, and the
real models shipped in PyPI wheels checked against an independent count done here from their op lists."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.ir.counts import count_files, count_model, count_onnx, count_tflite
from harness.ir.export.onnx_export import network_to_onnx_bytes
from harness.ir.export.tflite_export import network_to_tflite
from harness.ir.layers import Dense
from harness.ir.network import Network


def _wheel_file(pkg: str, rel: str) -> Path:
    spec = importlib.util.find_spec(pkg)
    if spec is None or spec.origin is None:
        pytest.skip(f"{pkg} not installed (.ci/install installs it with --no-deps)")
    return Path(spec.origin).parent / rel


def _init(name: str, *shape: int) -> onnx.TensorProto:
    rng = np.random.default_rng(len(name))
    return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _const(name: str, *shape: int) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=_init(name, *shape))


def _cnn(batch: int | str = 1, height: int | str = 32) -> onnx.ModelProto:
    """Conv 3x3 stride 2 SAME (3→8), depthwise 3x3 (group 8), global pool, Gemm 8→10 with Constant weights."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("GlobalAveragePool", ["s"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        _const("wg", 10, 8),
        _const("bg", 10),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, height, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        [_init("w1", 8, 3, 3, 3), _init("b1", 8), _init("w2", 8, 1, 3, 3), _init("b2", 8)],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


CNN_PARAMS = (8 * 3 * 3 * 3 + 8) + (8 * 1 * 3 * 3 + 8) + (10 * 8 + 10)
CNN_MACS = (8 * 16 * 16) * (3 * 3 * 3) + (8 * 16 * 16) * (1 * 3 * 3) + 8 * 10  # 32x32 → 16x16 by stride 2 SAME


def test_onnx_cnn_hand_counted() -> None:
    c = count_onnx(_cnn())
    assert c.params == CNN_PARAMS == 394
    assert c.macs == CNN_MACS == 55296 + 18432 + 80
    by_op = {o.op: o for o in c.ops if o.op != "Constant"}
    assert [o.macs for o in c.ops if o.op == "Conv"] == [55296, 18432]
    assert by_op["Gemm"].macs == 80 and by_op["Add"].macs == 0 and by_op["GlobalAveragePool"].macs == 0
    assert sum(o.params for o in c.ops) == CNN_PARAMS  # each constant attributed to the op that reads it
    # the same counts through ONNX Runtime's own view of the output shape
    import onnxruntime as ort

    sess = ort.InferenceSession(_cnn().SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.zeros((1, 3, 32, 32), np.float32)})
    assert y.shape == (1, 10)


def test_onnx_dynamic_batch_is_one_inference_and_dynamic_shape_is_unknown() -> None:
    assert count_onnx(_cnn(batch="N")).macs == CNN_MACS  # per inference: a dynamic batch is 1
    c = count_onnx(_cnn(batch="N", height="H"))
    assert c.macs is None and c.params == CNN_PARAMS  # params stay known
    assert c.reason is not None and "Conv" in c.reason and "dynamic" in c.reason
    assert count_onnx(_cnn(batch="N", height="H"), {"x": [1, 3, 32, 32]}).macs == CNN_MACS


def test_onnx_matmul_weights_in_initializer_and_constant() -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),  # (1, 4, 6) @ (6, 5): 4 rows of 6x5
        _const("w2", 5, 3),
        helper.make_node("MatMul", ["h", "w2"], ["y"]),  # (1, 4, 5) @ (5, 3)
    ]
    g = helper.make_graph(
        nodes,
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3])],
        [_init("w", 6, 5)],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    c = count_onnx(m.SerializeToString())
    assert c.params == 6 * 5 + 5 * 3 and c.macs == 4 * 6 * 5 + 4 * 5 * 3
    # a Constant-only model (weights as nodes, PP-OCR style) is not params 0
    assert count_onnx(m).params != 0


def test_onnx_conv_transpose_and_lstm() -> None:
    nodes = [
        helper.make_node("ConvTranspose", ["x", "wt"], ["u"], kernel_shape=[3, 3], strides=[2, 2]),  # 4→2 channels
        helper.make_node("Reshape", ["s", "shape"], ["seq"]),
        helper.make_node("LSTM", ["seq", "W", "R"], ["h"], hidden_size=4),
    ]
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8]),
         helper.make_tensor_value_info("s", TensorProto.FLOAT, [15])],
        [helper.make_tensor_value_info("u", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
        [_init("wt", 4, 2, 3, 3), numpy_helper.from_array(np.array([5, 1, 3], np.int64), "shape"),
         _init("W", 1, 16, 3), _init("R", 1, 16, 4)],
    )
    c = count_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    by_op = {o.op: o.macs for o in c.ops}
    assert by_op["ConvTranspose"] == (4 * 8 * 8) * (2 * 3 * 3)  # every input element scatters a 2x3x3 kernel
    assert by_op["LSTM"] == 5 * (16 * 3 + 16 * 4)  # 5 steps, 4 gates x 4 hidden over the input and the state
    assert c.params == 4 * 2 * 3 * 3 + 3 + 16 * 3 + 16 * 4


def test_onnx_unknown_op_and_control_flow_are_none_with_the_op_named() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    odd = helper.make_graph([helper.make_node("FrobnicateXYZ", ["x"], ["y"], domain="com.example")], "g", [x], [y])
    m = helper.make_model(odd, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    c = count_onnx(m)
    assert c.macs is None and "FrobnicateXYZ" in (c.reason or "")
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [], [z])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch, name="iff")],
                          "g", [cond, x], [y])
    c = count_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert c.macs is None and "If 'iff'" in (c.reason or "") and "control flow" in (c.reason or "")


def test_our_exports_count_alike() -> None:
    rng = np.random.default_rng(0)
    net = Network([Dense(rng.normal(size=(16, 32)), np.zeros(32), "relu"), Dense(rng.normal(size=(32, 4)), np.zeros(4))])
    on, tf = count_onnx(network_to_onnx_bytes(net)), count_tflite(network_to_tflite(net))
    assert on.macs == tf.macs == net.macs() == 16 * 32 + 32 * 4
    assert on.params == net.n_params() and tf.params is not None and tf.params >= net.n_params()
    assert count_files({"blob": b"x"}) is None
    assert count_files({"tflite": network_to_tflite(net)}) == tf


def _tflite_cnn(height: int = 32) -> bytes:
    """The CNN of :func:`_cnn` in TFLite (NHWC): CONV_2D 3x3/2 SAME, DEPTHWISE_CONV_2D, ADD, MEAN, FULLY_CONNECTED,
    BATCH_MATMUL by a constant, SOFTMAX. ``height=-1`` stores a dynamic height in the shape signature."""
    from ai_edge_litert import schema_py_generated as tfl

    from harness.ir.export.tflite_graph import TfliteGraph

    rng = np.random.default_rng(0)
    f32 = np.float32
    g = TfliteGraph()
    op = tfl.BuiltinOperator
    x = g.tensor("x", [1, abs(height), 32, 3], f32)
    dyn = [x]
    conv = tfl.Conv2DOptionsT()
    conv.padding, conv.strideH, conv.strideW = tfl.Padding.SAME, 2, 2
    c1 = g.tensor("c1", [1, 16, 16, 8], f32)
    dyn.append(c1)
    g.op(op.CONV_2D, [x, g.const("w1", rng.standard_normal((8, 3, 3, 3)).astype(f32)),
                      g.const("b1", np.zeros(8, f32))], [c1], tfl.BuiltinOptions.Conv2DOptions, conv)
    dw = tfl.DepthwiseConv2DOptionsT()
    dw.padding, dw.strideH, dw.strideW, dw.depthMultiplier = tfl.Padding.SAME, 1, 1, 1
    c2 = g.tensor("c2", [1, 16, 16, 8], f32)
    dyn.append(c2)
    g.op(op.DEPTHWISE_CONV_2D, [c1, g.const("w2", rng.standard_normal((1, 3, 3, 8)).astype(f32)),
                                g.const("b2", np.zeros(8, f32))], [c2], tfl.BuiltinOptions.DepthwiseConv2DOptions, dw)
    s = g.tensor("s", [1, 16, 16, 8], f32)
    dyn.append(s)
    for t in dyn if height < 0 else []:  # as a converter writes a dynamic height: -1 in the signature
        g.sub.tensors[t].shapeSignature = [1, -1, *g.sub.tensors[t].shape[2:]]
    g.op(op.ADD, [c2, c1], [s], tfl.BuiltinOptions.AddOptions, tfl.AddOptionsT())
    red = tfl.ReducerOptionsT()
    red.keepDims = False
    p = g.tensor("p", [1, 8], f32)
    g.op(op.MEAN, [s, g.const("axes", np.array([1, 2], np.int32))], [p], tfl.BuiltinOptions.ReducerOptions, red)
    h = g.fully_connected(p, rng.standard_normal((10, 8)), np.zeros(10), relu=True)
    y = g.tensor("y", [1, 6], f32)
    bmm = tfl.BatchMatMulOptionsT()
    g.op(op.BATCH_MATMUL, [h, g.const("m", rng.standard_normal((10, 6)).astype(f32))], [y],
         tfl.BuiltinOptions.BatchMatMulOptions, bmm)
    sm = tfl.SoftmaxOptionsT()
    sm.beta = 1.0
    z = g.tensor("z", [1, 6], f32)
    g.op(op.SOFTMAX, [y], [z], tfl.BuiltinOptions.SoftmaxOptions, sm)
    return g.finish([x], [z])


TFL_PARAMS = (8 * 3 * 3 * 3 + 8) + (3 * 3 * 8 + 8) + 2 + (10 * 8 + 10) + 10 * 6  # "axes" is a constant too
TFL_MACS = (16 * 16 * 8) * (3 * 3 * 3) + (16 * 16 * 8) * (3 * 3) + 8 * 10 + 10 * 6


def test_tflite_cnn_hand_counted(tmp_path: Path) -> None:
    raw = _tflite_cnn()
    c = count_tflite(raw)
    assert c.params == TFL_PARAMS and c.macs == TFL_MACS == 55296 + 18432 + 80 + 60
    assert [(o.op, o.macs) for o in c.ops] == [
        ("CONV_2D", 55296), ("DEPTHWISE_CONV_2D", 18432), ("ADD", 0), ("MEAN", 0), ("FULLY_CONNECTED", 80),
        ("BATCH_MATMUL", 60), ("SOFTMAX", 0),
    ]
    # the shapes written are the ones LiteRT computes: the file runs, with the declared output shape
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=raw)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.ones((1, 32, 32, 3), np.float32))
    it.invoke()
    assert it.get_tensor(it.get_output_details()[0]["index"]).shape == (1, 6)
    (tmp_path / "m.tflite").write_bytes(raw)
    assert count_model(tmp_path / "m.tflite") == c


def test_tflite_dynamic_shape_is_unknown_with_the_op_named() -> None:
    c = count_tflite(_tflite_cnn(height=-1))
    assert c.macs is None and c.params == TFL_PARAMS
    assert c.reason is not None and c.reason.startswith("CONV_2D (operator 0") and "(1, ?, 16, 8)" in c.reason
    assert [o.op for o in c.ops if o.macs is None] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert [o.macs for o in c.ops if o.op in ("FULLY_CONNECTED", "BATCH_MATMUL")] == [80, 60]


# ---------------------------------------------------------------- independent counts of the wheel models

_ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 4}  # TFLite TensorType → bytes


def _tflite_params_from_bytes(raw: bytes) -> int:
    """Constant elements as buffer bytes / element size (the flat API, not the object API counts.py uses)."""
    from ai_edge_litert import schema_py_generated as s

    m = s.Model.GetRootAs(raw, 0)
    size: dict[int, int] = {}
    for gi in range(m.SubgraphsLength()):
        g = m.Subgraphs(gi)
        for ti in range(g.TensorsLength()):
            t = g.Tensors(ti)
            n = m.Buffers(t.Buffer()).DataLength()
            if t.Buffer() > 0 and n:
                size[t.Buffer()] = n // _ITEMSIZE[t.Type()]
    return sum(size.values())


_MOVES = {"CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "RESHAPE", "CONCATENATION",
          "STRIDED_SLICE", "SPLIT_V", "LOGISTIC", "QUANTIZE", "DEQUANTIZE", "ADD", "MEAN", "SOFTMAX",
          "AVERAGE_POOL_2D", "MAX_POOL_2D"}


def _tflite_macs_from_interpreter(path: Path) -> int:
    """MACs from LiteRT's own op list and tensor shapes (the interpreter, not the flatbuffer schema)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    shape = {d["index"]: [int(v) for v in d["shape"]] for d in it.get_tensor_details()}
    total = 0
    for op in it._get_ops_details():
        name, w, y = op["op_name"], op["inputs"], op["outputs"]
        if name == "CONV_2D":  # out elements x (kh * kw * Cin)
            total += int(np.prod(shape[y[0]])) * int(np.prod(shape[w[1]][1:]))
        elif name == "DEPTHWISE_CONV_2D":  # out elements x (kh * kw)
            total += int(np.prod(shape[y[0]])) * shape[w[1]][1] * shape[w[1]][2]
        elif name == "FULLY_CONNECTED":
            total += int(np.prod(shape[y[0]])) * shape[w[1]][-1]
        else:
            assert name in _MOVES, f"the test has no rule for {name}"
    return total


@pytest.mark.parametrize("model", ["okay_nabu", "alexa", "hey_jarvis", "hey_mycroft"])
def test_micro_wakeword_int8_tflite(model: str) -> None:
    path = _wheel_file("pymicro_wakeword", f"models/{model}.tflite")
    c = count_model(path)
    assert c.macs is not None and c.macs == _tflite_macs_from_interpreter(path) > 10_000
    assert c.params == _tflite_params_from_bytes(path.read_bytes()) > 10_000
    assert c.reason is None
    from harness.byo.inspect import inspect_model

    assert inspect_model(path).inputs[0].dtype == "int8"  # the dtype stored in the file


def _onnx_params_from_arrays(m: onnx.ModelProto) -> int:
    """Elements of every initializer and Constant value, as decoded arrays, in every (sub)graph."""
    seen: dict[str, int] = {}

    def walk(g: onnx.GraphProto) -> None:
        for t in g.initializer:
            seen.setdefault(t.name, numpy_helper.to_array(t).size)
        for n in g.node:
            if n.op_type == "Constant":
                v = helper.get_attribute_value(n.attribute[0])
                arr = numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else np.asarray(v)
                seen.setdefault(n.output[0], arr.size)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)

    walk(m.graph)
    return sum(seen.values())


def _ort_macs_of_main_graph_convs(path: Path, feeds: dict[str, np.ndarray]) -> int:
    """MACs of the top-level Conv nodes from the output shapes ONNX Runtime actually produces."""
    import onnxruntime as ort

    m = onnx.load(str(path))
    weights = {t.name: tuple(t.dims) for t in m.graph.initializer}
    weights |= {n.output[0]: tuple(n.attribute[0].t.dims) for n in m.graph.node if n.op_type == "Constant"}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    for n in convs:
        m.graph.output.append(onnx.ValueInfoProto(name=n.output[0]))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run([n.output[0] for n in convs], feeds)
    return sum(int(np.prod(y.shape)) * int(np.prod(weights[n.input[1]][1:])) for n, y in zip(convs, outs, strict=True))


def test_silero_vad_onnx_against_onnxruntime_shapes() -> None:
    path = _wheel_file("silero_vad", "data/silero_vad_16k_op15.onnx")
    m = onnx.load(str(path))
    assert sum(1 for n in m.graph.node if n.op_type == "Constant") > 0  # weights in Constant nodes count
    shapes = {"input": [1, 512], "state": [2, 1, 128]}
    c = count_onnx(path, shapes, {"sr": np.array(16000, np.int64)})
    assert c.params == _onnx_params_from_arrays(m) > 100_000
    feeds = {"input": np.zeros((1, 512), np.float32), "state": np.zeros((2, 1, 128), np.float32),
             "sr": np.array(16000, np.int64)}
    lstm = [o.macs for o in c.ops if o.op == "LSTM"]  # inside an If branch, taken for 16 kHz
    assert lstm == [4 * 128 * (128 + 128)]  # one step of a 128-unit LSTM cell over a 128-wide input
    assert c.macs == _ort_macs_of_main_graph_convs(path, feeds) + lstm[0]
    # the If on the sample rate: unknown without its value in the export that branches on it
    c = count_model(_wheel_file("silero_vad", "data/silero_vad.onnx"), shapes)
    assert c.macs is None and c.reason is not None and c.reason.startswith("If ") and "control flow" in c.reason
    # a dynamic sequence length: unknown, naming the Conv
    c = count_model(path)
    assert c.macs is None and c.reason is not None
    assert any(o.op == "Conv" and "not static" in (o.reason or "") for o in c.ops if o.macs is None)
    assert c.params == _onnx_params_from_arrays(m)


# ---------------------------------------------------------------- the leaderboard of a user's CNN

CNN_SUITE = """
[suite]
name = "cnn"
[run]
warmup_s = 0.01
window_s = 0.02
min_windows = 2
max_windows = 2
ci_target = 0.9

[[tasks]]
name = "cnn"
model = "cnn.onnx"
data = "cnn.npz"
metric = "accuracy"
min_accuracy = 0.0

[[tasks]]
name = "vad"
model = "silero_vad_16k_op15.onnx"
data = "vad.npz"
input = { output = "output", constants = { state = 0.0, sr = 16000 } }
metric = "auc"
min_accuracy = 0.0

[[variants]]
name = "fp32"
technique = "fp32"

[[targets]]
name = "cpu-ort"
kind = "cpu"
"""


def test_user_onnx_cnn_has_params_and_macs_on_the_leaderboard(tmp_path: Path) -> None:
    """A user's CNN that does not convert to the IR runs as a file; its counts come from the file."""
    from harness.pipeline.runner import run_suite
    from harness.results.rank import leaderboard
    from harness.results.store import Store
    from harness.suite import load_suite

    (tmp_path / "cnn.onnx").write_bytes(_cnn(batch="N").SerializeToString())
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "cnn.npz", x_eval=rng.standard_normal((12, 3, 32, 32)).astype(np.float32),
             y_eval=np.arange(12) % 10)
    vad = _wheel_file("silero_vad", "data/silero_vad_16k_op15.onnx")
    (tmp_path / vad.name).write_bytes(vad.read_bytes())
    np.savez(tmp_path / "vad.npz", x_eval=rng.standard_normal((8, 512)).astype(np.float32), y_eval=np.arange(8) % 2)
    (tmp_path / "s.toml").write_text(CNN_SUITE)
    run_suite(load_suite(tmp_path / "s.toml"), tmp_path / "r.sqlite", cache=tmp_path / "cache")
    with Store.open(tmp_path / "r.sqlite", create=False) as s:
        rows = s.results()
    board = {b["task"]: b for b in leaderboard(rows)}
    assert board["cnn"]["params"] == CNN_PARAMS and board["cnn"]["macs"] == CNN_MACS
    # silero-vad: sr and state bound by input.constants (stored as initializers: constants of the file
    # that runs, so they count), 512 samples per row of the dataset
    meta = {r.variant_key: r for r in rows if r.task == "vad"}
    (key,) = meta
    (ran,) = [onnx.load(str(f)) for f in (tmp_path / "cache" / "variants").glob("*/*.onnx")
              if f.parent.name == key or any(i.name == "sr" for i in onnx.load(str(f)).graph.initializer)]
    assert board["vad"]["params"] == _onnx_params_from_arrays(ran) > _onnx_params_from_arrays(onnx.load(str(vad)))
    assert board["vad"]["macs"] == 563_968
