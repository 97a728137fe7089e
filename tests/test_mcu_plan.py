"""Memory planner and blob version 2 codec (no emulator): live tensors never share bytes, aliasing
rules, and a lossless round trip of every operator's integers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcu_graph_support import GRAPH_KINDS, random_graph

from harness.mcu.blob.container import BlobError
from harness.mcu.blob.graph import QGraph
from harness.mcu.blob.graph_codec import op_scratch_bytes, read_graph_blob, write_graph_blob
from harness.mcu.graph_ref import run_graph
from harness.mcu.plan import lifetimes, plan
from harness.mcu.random_graph import GraphBuilder, kws_dscnn, resnet8


def _random_chain(seed: int) -> QGraph:
    """A random graph of convolutions, pools, residual adds and reshapes (branches kept alive)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder(rng, (int(rng.integers(4, 9)), int(rng.integers(4, 9)), int(rng.integers(1, 6))))
    live = [b.input]
    for _ in range(int(rng.integers(2, 9))):
        x = live[int(rng.integers(len(live)))]
        r = rng.random()
        if r < 0.35:
            y = b.conv(x, int(rng.integers(1, 9)), (3, 3), (1, 1), True, "relu")
        elif r < 0.5:
            y = b.conv(x, 0, (3, 3), (1, 1), True, depthwise=True)
        elif r < 0.65:
            y = b.pool(x, "maxpool", (2, 2), (1, 1), True)
        elif r < 0.85:
            same = [t for t in live if b.tensors[t].shape == b.tensors[x].shape]
            y = b.add(x, same[int(rng.integers(len(same)))])
        else:
            y = b.reshape(x, b.tensors[x].shape[::-1])
        live.append(y)
    return b.graph(live[-1])


def _check_no_overlap(g: QGraph) -> None:
    p = plan(g)
    life = lifetimes(g)
    for a in range(len(g.tensors)):
        for c in range(a + 1, len(g.tensors)):
            ta, tc = g.tensors[a], g.tensors[c]
            assert ta.offset % 4 == 0 and ta.offset + ta.size <= p.arena_bytes
            if p.buffer_of[a] == p.buffer_of[c]:
                assert ta.offset == tc.offset  # aliased in place
                continue
            (fa, la), (fc, lc) = life[a], life[c]
            if fa <= lc and fc <= la:  # both alive at some op
                assert ta.offset + ta.size <= tc.offset or tc.offset + tc.size <= ta.offset, (a, c)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_planner_never_overlaps_live_tensors(seed: int) -> None:
    _check_no_overlap(_random_chain(seed))


def test_planner_aliases_reshape_and_runs_adds_in_place() -> None:
    g = random_graph("residual", np.random.default_rng(1))
    p = plan(g)
    for i, op in enumerate(g.ops):
        if op.kind == "reshape":
            assert g.tensors[op.output].offset == g.tensors[op.inputs[0]].offset
        if op.kind == "add":
            assert g.tensors[op.output].offset in {g.tensors[t].offset for t in op.inputs}
            assert any("in place" in n for n in p.notes), i
    # a planned arena beats one buffer per tensor, and the result is unchanged by the reuse
    assert p.arena_bytes < p.naive_bytes
    _check_no_overlap(g)


def test_mlperf_models_plan_to_small_arenas() -> None:
    kws = plan(kws_dscnn(np.random.default_rng(0)))
    assert kws.arena_bytes == 16_000 and kws.scratch_bytes == 6 * 7 * 64
    r8 = resnet8(np.random.default_rng(0))
    p = plan(r8)
    # residual stack: input, body intermediate and shortcut of 32x32x16 are live together
    assert p.arena_bytes == 3 * 32 * 32 * 16
    assert p.scratch_bytes == max(op_scratch_bytes(r8, op) for op in r8.ops)


@pytest.mark.parametrize("kind", GRAPH_KINDS)
def test_blob_round_trip_keeps_every_integer(kind: str) -> None:
    rng = np.random.default_rng(40 + GRAPH_KINDS.index(kind))
    g = random_graph(kind, rng)
    plan(g)
    back = read_graph_blob(write_graph_blob(g))
    assert [t.shape for t in back.tensors] == [t.shape for t in g.tensors]
    assert [(t.offset, t.zero_point) for t in back.tensors] == [(t.offset, t.zero_point) for t in g.tensors]
    for a, b in zip(g.ops, back.ops, strict=True):
        assert (a.kind, a.inputs, a.output, a.act_min, a.act_max) == (
            b.kind,
            b.inputs,
            b.output,
            b.act_min,
            b.act_max,
        )
        for k, v in a.params.items():
            assert np.array_equal(np.asarray(v).reshape(-1), np.asarray(b.params[k]).reshape(-1)), (a.kind, k)
        for k, v in a.attrs.items():
            assert b.attrs.get(k, 0 if k == "rounding" else None) == v, (a.kind, k)
    x = rng.integers(-128, 128, size=(3, g.in_tensor.size)).astype(np.int8)
    assert np.array_equal(run_graph(g, x), run_graph(back, x))


def test_writer_refuses_unplanned_graphs_and_unknown_shapes() -> None:
    g = random_graph("conv", np.random.default_rng(2))
    with pytest.raises(BlobError, match="plan the graph first"):
        write_graph_blob(g)
    plan(g)
    g.tensors[1].shape = (2, 3, 4, 5)
    with pytest.raises(BlobError, match=r"shape \[2, 3, 4, 5\]; blob version 2 holds"):
        write_graph_blob(g)
