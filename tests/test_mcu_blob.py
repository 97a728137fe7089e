"""MCU blob: writer/reader round trips, storage choice, CRC and budget errors (no emulator needed)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcu_support import KINDS, random_model

from harness.ir.layers import Dense
from harness.ir.layers.lowrank import LowRank
from harness.ir.network import Network
from harness.ir.quant import quantize_weights
from harness.mcu import blob, reference


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 13), st.integers(1, 13), st.integers(0, 2**32 - 1))
def test_block_order_round_trip(out: int, inp: int, seed: int) -> None:
    w = np.random.default_rng(seed).integers(-127, 128, size=(out, inp)).astype(np.int8)
    flat = blob.dense_block_order(w)
    assert flat.size == w.size
    assert np.array_equal(blob.dense_from_block_order(flat, out, inp), w)


@pytest.mark.parametrize("kind", KINDS)
def test_write_read_round_trip_and_float_agreement(kind: str) -> None:
    rng = np.random.default_rng(KINDS.index(kind))
    net, opts = random_model(kind, rng)
    x = rng.normal(size=(200, net.in_dim)).astype(np.float32)
    data = blob.export_blob(net, x[:100], **opts)  # type: ignore[arg-type]
    qm = blob.read_blob(data)
    assert blob.write_blob(qm) == data  # every field survives a round trip
    y, f = reference.predict(data, x), net.forward(x)
    # int8 model of a float network: top-1 agrees on most rows, typical error a few output steps
    # (rows outside the calibrated range clip, so the max error is not bounded tightly)
    assert (y.argmax(1) == f.argmax(1)).mean() > 0.8
    assert np.median(np.abs(y - f)) < 0.05 * np.abs(f).max()


def test_exporter_picks_sparse_storage_for_pruned_dense() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(256, 256))
    assert blob.choose_storage(quantize_weights(w.T)[0]) == blob.DENSE
    w[rng.random(w.shape) < 0.95] = 0
    assert blob.choose_storage(quantize_weights(w.T)[0]) == blob.CSR
    blocks = np.kron(rng.random((64, 64)) < 0.2, np.ones((4, 4))) * rng.normal(size=(256, 256))
    assert blob.choose_storage(quantize_weights(blocks.T)[0]) == blob.BSR4


def test_monarch_with_odd_blocks_is_written_as_dense_with_a_note() -> None:
    net, _ = random_model("monarch-as-dense", np.random.default_rng(0))
    qm = blob.quantize_network(net, x_calib=np.random.default_rng(1).normal(size=(20, net.in_dim)))
    assert qm.layers[0].kind == blob.DENSE and "written as dense" in qm.notes[0]


def test_corrupt_or_truncated_blob_is_refused() -> None:
    net = Network([Dense(np.ones((4, 4)), np.zeros(4))])
    data = bytearray(blob.export_blob(net, np.ones((3, 4), np.float32)))
    data[-1] ^= 0xFF
    with pytest.raises(blob.BlobError, match="CRC mismatch"):
        blob.read_blob(bytes(data))
    with pytest.raises(blob.BlobError, match="truncated"):
        blob.read_blob(bytes(data[:-8]))
    with pytest.raises(blob.BlobError, match="not a frugalbench blob"):
        blob.read_blob(b"XXXX" + bytes(data[4:]))


def test_unsupported_layer_names_it_and_lists_what_runs() -> None:
    rng = np.random.default_rng(0)
    lr = LowRank(rng.normal(size=(8, 2)), rng.normal(size=(2, 8)), np.zeros(8))
    net = Network([lr])
    assert blob.unsupported_layers(net) == ["0:lowrank"]
    with pytest.raises(blob.BlobError, match=r"0:lowrank.*supported: .*butterfly.*dense.*monarch"):
        blob.export_blob(net, np.ones((2, 8), np.float32))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-(2**31) + 1, 2**31 - 1),
    st.floats(1e-9, 0.99),
    st.integers(-128, 127),
    st.booleans(),
)
def test_requantize_matches_the_real_multiplier(acc: int, m: float, zp: int, relu: bool) -> None:
    mult, shift = blob.requant_params(np.array([m]))
    got = int(blob.requantize(np.array([acc]), mult, shift, zp, int(relu))[0])
    want = int(np.clip(np.round(acc * m) + zp, max(-128, zp) if relu else -128, 127))
    assert abs(got - want) <= 1
