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
from harness.mcu import reference
from harness.mcu.blob import codec, container
from harness.mcu.blob.dense import choose_storage


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 13), st.integers(1, 13), st.integers(0, 2**32 - 1))
def test_block_order_round_trip(out: int, inp: int, seed: int) -> None:
    w = np.random.default_rng(seed).integers(-127, 128, size=(out, inp)).astype(np.int8)
    flat = container.dense_block_order(w)
    assert flat.size == w.size
    assert np.array_equal(container.dense_from_block_order(flat, out, inp), w)


@pytest.mark.parametrize("kind", KINDS)
def test_write_read_round_trip_and_float_agreement(kind: str) -> None:
    rng = np.random.default_rng(KINDS.index(kind))
    net, opts = random_model(kind, rng)
    x = rng.normal(size=(200, net.in_dim)).astype(np.float32)
    data = codec.export_blob(net, x[:100], **opts)  # type: ignore[arg-type]
    qm = codec.read_blob(data)
    assert codec.write_blob(qm) == data  # every field survives a round trip
    y, f = reference.predict(data, x), net.forward(x)
    # int8 model of a float network: top-1 agrees on most rows, typical error a few output steps
    # (rows outside the calibrated range clip, so the max error is not bounded tightly)
    assert (y.argmax(1) == f.argmax(1)).mean() > 0.8
    assert np.median(np.abs(y - f)) < 0.05 * np.abs(f).max()


def test_exporter_picks_sparse_storage_for_pruned_dense() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(256, 256))
    assert choose_storage(quantize_weights(w.T)[0]) == container.DENSE
    w[rng.random(w.shape) < 0.95] = 0
    assert choose_storage(quantize_weights(w.T)[0]) == container.CSR
    blocks = np.kron(rng.random((64, 64)) < 0.2, np.ones((4, 4))) * rng.normal(size=(256, 256))
    assert choose_storage(quantize_weights(blocks.T)[0]) == container.BSR4


def test_monarch_with_odd_blocks_is_written_as_dense_with_a_note() -> None:
    net, _ = random_model("monarch-as-dense", np.random.default_rng(0))
    qm = codec.quantize_network(net, x_calib=np.random.default_rng(1).normal(size=(20, net.in_dim)))
    assert qm.layers[0].kind == container.DENSE and "written as dense" in qm.notes[0]


def test_corrupt_or_truncated_blob_is_refused() -> None:
    net = Network([Dense(np.ones((4, 4)), np.zeros(4))])
    data = bytearray(codec.export_blob(net, np.ones((3, 4), np.float32)))
    data[-1] ^= 0xFF
    with pytest.raises(container.BlobError, match="CRC mismatch"):
        codec.read_blob(bytes(data))
    with pytest.raises(container.BlobError, match="truncated"):
        codec.read_blob(bytes(data[:-8]))
    with pytest.raises(container.BlobError, match="not a frugalbench blob"):
        codec.read_blob(b"XXXX" + bytes(data[4:]))


def test_unsupported_layer_names_it_and_lists_what_runs() -> None:
    rng = np.random.default_rng(0)
    lr = LowRank(rng.normal(size=(8, 2)), rng.normal(size=(2, 8)), np.zeros(8))
    net = Network([lr])
    assert codec.unsupported_layers(net) == ["0:lowrank"]
    with pytest.raises(container.BlobError, match=r"0:lowrank.*supported: .*butterfly.*dense.*monarch"):
        codec.export_blob(net, np.ones((2, 8), np.float32))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-(2**31) + 1, 2**31 - 1),
    st.floats(1e-9, 0.99),
    st.integers(-128, 127),
    st.booleans(),
)
def test_requantize_matches_the_real_multiplier(acc: int, m: float, zp: int, relu: bool) -> None:
    mult, shift = container.requant_params(np.array([m]))
    got = int(container.requantize(np.array([acc]), mult, shift, zp, int(relu))[0])
    want = int(np.clip(np.round(acc * m) + zp, max(-128, zp) if relu else -128, 127))
    assert abs(got - want) <= 1
