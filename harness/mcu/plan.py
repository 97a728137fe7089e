"""Memory plan of an int8 operator graph: one arena, tensor offsets from lifetimes, per-op scratch.

A tensor lives from the op that writes it (the graph input: before op 0) to the last op that reads it
(the graph output: after the last op). Tensors that share bytes form one buffer:

- a ``reshape`` output is its input under another shape (aliased in place, no copy);
- an ``add`` output takes the buffer of an input of the same size whose last reader is that add
  (elementwise: each output byte is written after its own input bytes are read).

Buffers are placed greedily, largest first, each at the lowest 4-byte aligned offset that does not
overlap a placed buffer whose lifetime overlaps its own (first fit). Scratch is the largest per-op
need (:func:`harness.mcu.blob.graph_codec.op_scratch_bytes`, the firmware's rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .blob.graph import QGraph
from .blob.graph_codec import ceil4, op_scratch_bytes


@dataclass
class Plan:
    """Arena offsets (also written into every ``QTensor.offset``), sizes and lifetimes."""

    offsets: list[int]
    arena_bytes: int
    scratch_bytes: int
    op_scratch: list[int]
    lifetimes: list[tuple[int, int]]  # per tensor: (first op writing it or -1, last op reading it)
    buffer_of: list[int]  # per tensor: its buffer (tensors aliased in place share one)
    notes: list[str] = field(default_factory=list)

    @property
    def naive_bytes(self) -> int:
        """Arena bytes without any reuse (every tensor its own buffer), for comparison."""
        return sum(ceil4(s) for s in self._sizes)

    _sizes: list[int] = field(default_factory=list, repr=False)


def lifetimes(g: QGraph) -> list[tuple[int, int]]:
    """(first, last) op index per tensor; -1 = before the first op, len(ops) = after the last."""
    n = len(g.ops)
    first = [n + 1] * len(g.tensors)
    last = [-2] * len(g.tensors)
    first[g.input] = -1
    for i, op in enumerate(g.ops):
        first[op.output] = min(first[op.output], i)
        for t in op.inputs:
            last[t] = max(last[t], i)
    last[g.output] = n
    return [(f, max(lo, f)) if f <= n else (lo, lo) for f, lo in zip(first, last, strict=True)]


def _find(parent: list[int], t: int) -> int:
    while parent[t] != t:
        parent[t] = parent[parent[t]]
        t = parent[t]
    return t


def plan(g: QGraph) -> Plan:
    """Plan ``g``'s arena and write each tensor's offset into ``g.tensors[i].offset``."""
    life = lifetimes(g)
    nt = len(g.tensors)
    parent = list(range(nt))
    span = {t: list(life[t]) for t in range(nt)}  # per buffer root: [first, last]

    def join(a: int, b: int) -> None:
        ra, rb = _find(parent, a), _find(parent, b)
        if ra != rb:
            parent[rb] = ra
            span[ra] = [min(span[ra][0], span[rb][0]), max(span[ra][1], span[rb][1])]

    notes = []
    for i, op in enumerate(g.ops):
        out = g.tensors[op.output]
        if op.kind == "reshape" and g.tensors[op.inputs[0]].size == out.size:
            join(op.inputs[0], op.output)
        elif op.kind == "add":
            for t in op.inputs:
                r = _find(parent, t)
                if g.tensors[t].size == out.size and span[r][1] == i and t != g.output:
                    join(t, op.output)
                    notes.append(f"op {i} (add) runs in place on tensor {t}")
                    break
    roots = sorted({_find(parent, t) for t in range(nt)})
    size = {r: 0 for r in roots}
    for t in range(nt):
        r = _find(parent, t)
        size[r] = max(size[r], ceil4(g.tensors[t].size))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    offset_of: dict[int, int] = {}
    for r in sorted(roots, key=lambda r: (-size[r], span[r][0], r)):
        f, last = span[r]
        busy = sorted((o, o + s) for o, s, f2, l2 in placed if f <= l2 and f2 <= last)
        at = 0
        for lo, hi in busy:
            if at + size[r] <= lo:
                break
            at = max(at, hi)
        offset_of[r] = at
        placed.append((at, size[r], f, last))
    offsets = []
    for t in range(nt):
        g.tensors[t].offset = offset_of[_find(parent, t)]
        offsets.append(g.tensors[t].offset)
    arena = max((o + s for o, s, _, _ in placed), default=4)
    op_scratch = [op_scratch_bytes(g, op) for op in g.ops]
    return Plan(
        offsets=offsets,
        arena_bytes=ceil4(max(arena, 4)),
        scratch_bytes=ceil4(max(op_scratch, default=0)),
        op_scratch=op_scratch,
        lifetimes=[tuple(span[_find(parent, t)]) for t in range(nt)],  # type: ignore[misc]
        buffer_of=[_find(parent, t) for t in range(nt)],
        notes=notes,
        _sizes=[g.tensors[t].size for t in range(nt)],
    )
