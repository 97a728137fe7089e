"""Blob version 2 on the firmware under QEMU: every int8 graph operator bit-exact with the NumPy
reference (DSP and portable builds), the exact requantisation on edge values, loader refusals, and
the footprint check. Planner and codec properties without QEMU are in test_mcu_plan.py."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mcu_graph_support import GRAPH_KINDS, random_graph
from mcu_support import build, needs_qemu, open_dut

from harness.mcu.blob.graph import QGraph, QOp, QTensor
from harness.mcu.blob.graph_codec import GRAPH_HEADER_SIZE, OP, OPF_FAST, TENSOR, write_graph_blob
from harness.mcu.board import load_board
from harness.mcu.footprint import ModelTooLarge, check_fits, footprint
from harness.mcu.graph_ref import run_graph
from harness.mcu.plan import plan
from harness.mcu.protocol import DutClient, DutCommandError

pytestmark = [pytest.mark.slow, needs_qemu]


@pytest.fixture(scope="module")
def elf() -> Path:
    return build()


@pytest.fixture(scope="module")
def dut(elf: Path) -> Iterator[DutClient]:
    for _, client in open_dut(elf):
        yield client


# The kernel paths compared bit for bit with the NumPy reference on every operator and geometry:
# SXTB16/SMLAD (Cortex-M4, mps2-an386) and Helium/MVE (Cortex-M55, mps3-an547).
CORE_BOARDS = ["qemu-mps2-an386", "qemu-mps3-an547"]


@pytest.fixture(scope="module", params=CORE_BOARDS)
def core_dut(request: pytest.FixtureRequest) -> Iterator[DutClient]:
    """One QEMU per kernel path for the module."""
    board = load_board(request.param)
    for _, client in open_dut(build(board.firmware_board), machine=board.qemu_machine):
        yield client


def _run(dut: DutClient, g: QGraph, x: np.ndarray) -> np.ndarray:
    if any(t.offset < 0 for t in g.tensors):
        plan(g)
    dut.bulk("model", write_graph_blob(g))
    dut.bulk("db", x.tobytes())
    return dut.xbatch(len(x), g.out_tensor.size)


def _inputs(g: QGraph, rng: np.random.Generator, n: int = 6) -> np.ndarray:
    return rng.integers(-128, 128, size=(n, g.in_tensor.size)).astype(np.int8)


@pytest.mark.parametrize("kind", GRAPH_KINDS)
def test_every_operator_bit_exact_with_reference(core_dut: DutClient, kind: str) -> None:
    dut = core_dut
    rng = np.random.default_rng(200 + GRAPH_KINDS.index(kind))
    g = random_graph(kind, rng)
    x = _inputs(g, rng)
    want = run_graph(g, x).reshape(len(x), -1)
    assert want.std() > 2  # outputs vary: a broken kernel cannot pass by saturating
    assert np.array_equal(_run(dut, g, x), want)
    # the EEMBC path on one row: infer + xres
    dut.upload_input(x[2].tobytes())
    dut.infer(1, 0)
    assert np.array_equal(dut.xres(g.out_tensor.size), want[2])


def test_portable_kernels_give_the_same_integers() -> None:
    for _, client in open_dut(build(portable=True)):
        for i, kind in enumerate(GRAPH_KINDS):
            rng = np.random.default_rng(300 + i)
            g = random_graph(kind, rng)
            x = _inputs(g, rng, 4)
            assert np.array_equal(_run(client, g, x), run_graph(g, x).reshape(len(x), -1)), kind


def _edge_graph(accs: np.ndarray, mult: np.ndarray, shift: np.ndarray, rounding: int = 0) -> QGraph:
    """A dense layer with zero weights: its accumulators are the biases, so the output is the
    requantisation of chosen int32 values (``zp_out`` 0, no clamp inside int8)."""
    n = len(accs)
    tensors = [QTensor("x", (4,), 0.1, 0), QTensor("y", (n,), 0.1, 0)]
    params = {"w": np.zeros((n, 4), np.int8), "bias": accs.astype(np.int32), "mult": mult, "shift": shift}
    attrs = {"rounding": rounding} if rounding else {}
    return QGraph(tensors, [QOp("dense", [0], 1, params, attrs)], 0, 1)


def _edge_values(rng: np.random.Generator, fast: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Accumulators at and around the rounding ties of both roundings, for outputs inside int8."""
    n = 96
    mult = rng.integers(1 << 30, (1 << 31) - 1, size=n, endpoint=True).astype(np.int64)
    mult[:4] = [1 << 30, (1 << 31) - 1, 1 << 30, (1 << 31) - 1]
    shift = rng.integers(-31, 0, size=n) if fast else rng.integers(-31, 4, size=n)
    shift[:4] = [-1, -1, -31, -31] if fast else [0, 3, -31, 2]
    y = rng.integers(-120, 120, size=n) + 0.5  # halfway cases: where the rounding direction matters
    acc = np.round(y * 2.0 ** (31 - shift) / mult).astype(np.int64) + rng.integers(-2, 3, size=n)
    lim = (1 << 30) - 1 if fast else (1 << 31) - 1
    acc = np.clip(acc, -lim, lim)
    if not fast:  # int32 extremes with the smallest multipliers: tiny outputs, large magnitudes
        acc[4:8] = [-(1 << 31), (1 << 31) - 1, -(1 << 31) + 1, 1 << 30]
        shift[4:8] = -31
    return acc, mult.astype(np.int32), shift.astype(np.int32)


@pytest.mark.parametrize("portable", [False, True])
def test_requantisation_exact_on_edge_values(core_dut: DutClient, portable: bool) -> None:
    """Both requantisations at their rounding ties through dense ops (the convolution kernel), on each
    kernel path (the portable build once, on the M4)."""
    dut = core_dut
    rng = np.random.default_rng(5)
    graphs = []
    for fast in (True, False):
        acc, mult, shift = _edge_values(rng, fast)
        g = _edge_graph(acc, mult, shift)
        plan(g)
        flags = struct.unpack_from("<H", write_graph_blob(g), GRAPH_HEADER_SIZE + 2 * TENSOR.size + 2)[0]
        assert bool(flags & OPF_FAST) == fast  # both firmware paths are exercised
        graphs += [g, _edge_graph(acc, mult, np.minimum(shift, 30), rounding=1)]
    x = np.zeros((1, 4), np.int8)

    def check(client: DutClient) -> None:
        for g in graphs:
            want = run_graph(g, x).reshape(1, -1)
            assert np.abs(want).max() > 64 and len(np.unique(want)) > 40
            assert np.array_equal(_run(client, g, x), want)

    if portable:
        assert dut.ext is not None
        if dut.ext.board != CORE_BOARDS[0]:
            pytest.skip("the portable build is checked once, under the M4's QEMU")
        for _, client in open_dut(build(portable=True)):
            check(client)
    else:
        check(dut)


def test_loader_refuses_corrupt_and_oversized_blobs(dut: DutClient) -> None:
    g = random_graph("residual", np.random.default_rng(9))
    plan(g)
    good = write_graph_blob(g)
    bad = bytearray(good)
    bad[-3] ^= 0x40
    with pytest.raises(DutCommandError, match="model: blob CRC mismatch"):
        dut.bulk("model", bytes(bad))
    # a wrong tensor id in op 2, CRC recomputed: the loader names the op and the problem
    bad = bytearray(good)
    op2 = GRAPH_HEADER_SIZE + TENSOR.size * len(g.tensors) + 2 * OP.size
    struct.pack_into("<H", bad, op2 + 8, 999)
    struct.pack_into("<I", bad, 12, zlib.crc32(bytes(bad[16:])))
    with pytest.raises(DutCommandError, match=r"model: op 2: tensor id out of range"):
        dut.bulk("model", bytes(bad))
    # an arena above the firmware's FB_ARENA_MAX (1 MiB on this board): refused with both sizes
    big = QGraph([QTensor("x", (1100, 1000, 1), 0.1, 0), QTensor("y", (1100, 1000, 1), 0.1, 0)],
                 [QOp("maxpool", [0], 1, {}, {"kh": 1, "kw": 1, "stride_h": 1, "stride_w": 1})], 0, 1)  # fmt: skip
    p = plan(big)
    with pytest.raises(
        DutCommandError,
        match=rf"larger arena than this board has .needed, available. \({p.arena_bytes}, 1048576\)",
    ):
        dut.bulk("model", write_graph_blob(big))
    # and the host refuses it before any upload, naming the sizes and what would fit
    board = load_board("qemu-mps2-an386")
    with pytest.raises(
        ModelTooLarge, match=r"tensor arena 2,200,000 B .* > the firmware's arena 1,048,576 B"
    ):
        check_fits(footprint(big, board), board)
    assert dut.command("infer 1 0", allow_error=True).errors[0].startswith("e-[No model loaded")


def test_loader_refuses_bad_sparse_pointwise_entries(dut: DutClient) -> None:
    g = random_graph("pw-sparse", np.random.default_rng(11))
    plan(g)
    good = write_graph_blob(g)
    op0 = GRAPH_HEADER_SIZE + TENSOR.size * len(g.tensors)
    offset, _size, nnz = struct.unpack_from("<III", good, op0 + 24)
    n4 = -(-g.tensors[g.ops[0].output].shape[-1] // 4) * 4
    first = offset + 12 * n4 + 4 * (g.tensors[g.ops[0].output].shape[-1] + 1)  # entry 0
    assert nnz > 0
    for value, match in (
        (20 | (5 << 16), r"op 0: pwconv_csr column out of range"),  # column 20 of 20 input channels
        (3 | (300 << 16), r"op 0: pwconv_csr weight outside int8"),
    ):
        bad = bytearray(good)
        struct.pack_into("<I", bad, first, value)
        struct.pack_into("<I", bad, 12, zlib.crc32(bytes(bad[16:])))
        with pytest.raises(DutCommandError, match=match):
            dut.bulk("model", bytes(bad))
    dut.bulk("model", good)  # and the intact blob loads


def test_footprint_measures_the_firmware_and_fits_mlperf_models() -> None:
    from harness.mcu.random_graph import kws_dscnn

    g = kws_dscnn(np.random.default_rng(0))
    board = load_board("nucleo-l4r5zi")
    fp = footprint(g, board, elf=build("nucleo-l4r5zi"))
    assert fp.arena_bytes == 2 * 25 * 5 * 64  # two 25x5x64 feature maps, the input reuses one slot
    assert fp.scratch_bytes == 6 * 7 * 64  # a band of zero-point padded depthwise input rows
    assert fp.runtime_ram_bytes is not None and 0 < fp.runtime_ram_bytes < 64 * 1024
    assert fp.ram_bytes == fp.arena_bytes + fp.scratch_bytes + fp.runtime_ram_bytes
    assert fp.flash_bytes is not None and fp.flash_bytes > fp.weights_bytes > 2 * 22_000  # int16 weights
    check_fits(fp, board)


TFLITE_ARCHS = [
    "ds_cnn_kws",
    "digits_cnn",
    "mnist1d_cnn",
]  # ResNet-8 (a 160 kB blob upload) runs in the bench


@pytest.mark.parametrize("name", TFLITE_ARCHS)
def test_int8_tflite_cnns_run_bit_exact_with_litert(dut: DutClient, name: str) -> None:
    """Our int8 .tflite export of each architecture, imported with its own quantisation, runs on the
    firmware with the same int8 outputs as LiteRT's reference kernels (and the NumPy interpreter)."""
    from harness.ir import architectures
    from harness.ir.export.prepare import quantisable
    from harness.ir.export.tflite_export import network_to_tflite_int8
    from harness.mcu.blob.tflite_graph import tflite_graph
    from harness.mcu.litert_ref import reference_interpreter, tensor_by_name

    net = (
        architectures.mnist1d_cnn(seed=0, length=64)
        if name == "mnist1d_cnn"
        else getattr(architectures, name)()
    )
    rng = np.random.default_rng(1)
    form, act_q = quantisable(net, rng.standard_normal((64, net.in_dim)).astype(np.float32))
    raw = network_to_tflite_int8(form, act_q)
    x = 1.5 * rng.standard_normal((3, net.in_dim)).astype(np.float32)
    it = reference_interpreter(raw, x)
    g = tflite_graph(raw)
    xq = tensor_by_name(it, g.in_tensor.name).reshape(len(x), -1)
    litert = tensor_by_name(it, g.out_tensor.name).reshape(len(x), -1)
    got = _run(dut, g, xq.astype(np.int8))
    assert np.array_equal(got, litert)
    assert np.array_equal(got, run_graph(g, xq).reshape(len(x), -1))


def test_loader_survives_random_corruption(dut: DutClient) -> None:
    """Blobs with random bytes changed in their header and tables (CRC made valid again) are refused
    with a reason or, where still consistent, run: the firmware never faults or hangs."""
    rng = np.random.default_rng(17)
    refused = 0
    for it in range(60):
        g = random_graph(GRAPH_KINDS[it % len(GRAPH_KINDS)], np.random.default_rng(it))
        plan(g)
        b = bytearray(write_graph_blob(g))
        tables = GRAPH_HEADER_SIZE + TENSOR.size * len(g.tensors) + OP.size * len(g.ops)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(16, tables))] = int(rng.integers(0, 256))
        struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])))
        try:
            dut.bulk("model", bytes(b))
            in_dim, out_dim = struct.unpack_from("<II", b, 20)
            dut.bulk("db", rng.integers(-128, 128, size=in_dim).astype(np.int8).tobytes())
            assert dut.xbatch(1, out_dim).shape == (1, out_dim)
        except DutCommandError as e:
            refused += 1
            assert e.errors[0].startswith("e-[model: ") and e.errors[0].endswith(")]"), e.errors
        assert dut.command("name").lines == ["m-name-dut-[frugalbench]"]
    assert 20 < refused < 60


def test_random_geometries_bit_exact(core_dut: DutClient) -> None:
    """Convolution, depthwise and pooling over random sizes, kernels (up to 5x5, larger than the
    input with same padding), strides 1-3, channels 1-9 and activations; then wider channel counts
    (1x1 pointwise, 3x3 and generic depthwise on 13-70 channels: full and partial vectors)."""
    dut = core_dut
    from harness.mcu.random_graph import GraphBuilder

    rng = np.random.default_rng(123)
    for it in range(48):
        h, w, c = (int(v) for v in rng.integers(1, 10, size=3))
        kh, kw = (int(v) for v in rng.integers(1, 6, size=2))
        sh, sw = (int(v) for v in rng.integers(1, 4, size=2))
        same = bool(rng.random() < 0.5) or kh > h or kw > w
        b = GraphBuilder(rng, (h, w, c), relu_zp=-128 if rng.random() < 0.5 else None)
        act = [None, "relu", "relu6"][int(rng.integers(3))]
        kind = ["conv", "dw", "maxpool", "avgpool"][it % 4]
        if kind == "conv":
            y = b.conv(b.input, int(rng.integers(1, 10)), (kh, kw), (sh, sw), same, act)
        elif kind == "dw":
            y = b.conv(b.input, 0, (kh, kw), (sh, sw), same, act, depthwise=True)
        else:
            y = b.pool(b.input, kind, (kh, kw), (sh, sw), same)
        g = b.graph(y)
        x = _inputs(g, rng, 3)
        assert np.array_equal(_run(dut, g, x), run_graph(g, x).reshape(len(x), -1)), (
            kind,
            h,
            w,
            c,
            kh,
            kw,
            sh,
            sw,
        )
    for it in range(9):
        h, w = (int(v) for v in rng.integers(2, 7, size=2))
        c = int(rng.integers(13, 71))
        b = GraphBuilder(rng, (h, w, c), relu_zp=-128 if it % 2 else None)
        act = [None, "relu", "relu6"][it % 3]
        if it % 3 == 0:
            y = b.conv(b.input, int(rng.integers(5, 40)), (1, 1), (1, 1), False, act)
        else:
            k = (3, 3) if it % 3 == 1 else (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
            y = b.conv(b.input, 0, k, (1 + it % 2, 1), True, act, depthwise=True)
        g = b.graph(y)
        x = _inputs(g, rng, 2)
        assert np.array_equal(_run(dut, g, x), run_graph(g, x).reshape(len(x), -1)), ("wide", it, h, w, c)


def test_depthwise_and_pool_vector_paths_bit_exact(core_dut: DutClient) -> None:
    """3x3 depthwise on the channel counts the Helium kernels specialise (pixel strides 16-96 bytes, whole
    and partial 8-channel groups, rows of 1-7 pixels, strides 1-3) and on ones they do not, then average
    pooling over partial 16-channel chunks: every core's integers equal the reference's."""
    from harness.mcu.random_graph import GraphBuilder

    rng = np.random.default_rng(7)
    cases = [(16, 1, 5), (32, 2, 7), (48, 1, 4), (64, 3, 6), (96, 1, 3), (14, 1, 5), (44, 2, 4), (60, 1, 1)]
    for c, sw, w in cases:
        b = GraphBuilder(rng, (4, w, c), relu_zp=-128 if c % 32 else None)
        g = b.graph(b.conv(b.input, 0, (3, 3), (1, sw), True, "relu" if c % 3 else None, depthwise=True))
        x = _inputs(g, rng, 2)
        assert np.array_equal(_run(core_dut, g, x), run_graph(g, x).reshape(len(x), -1)), ("dw", c, sw, w)
    for c in (20, 37):
        b = GraphBuilder(rng, (5, 4, c))
        g = b.graph(b.pool(b.input, "avgpool", (3, 2), (2, 1), True))
        x = _inputs(g, rng, 2)
        assert np.array_equal(_run(core_dut, g, x), run_graph(g, x).reshape(len(x), -1)), ("avgpool", c)
