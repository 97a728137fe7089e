"""Butterfly layer: ``log2(n)`` sparse factors with two non-zeros per row each (Dao et al. 2019).

Parametrisation (stable: the MCU blob exporter reads it)
--------------------------------------------------------
Square layers with ``n = 2**L`` inputs and outputs::

    tw: float32 (L, n/2, 2, 2)   twiddles: level l, pair p, then a 2x2 (out, in) matrix
    b:  float32 (n,)

Level ``l`` has stride ``s = 2**l`` (levels run in increasing stride, ``l = 0`` first). Pair ``p``
(``0 <= p < n/2``) joins the elements ``a = (p // s) * 2*s + (p % s)`` and ``a + s``. One level maps a
vector ``x`` to::

    y[a]     = tw[l, p, 0, 0] * x[a] + tw[l, p, 0, 1] * x[a + s]
    y[a + s] = tw[l, p, 1, 0] * x[a] + tw[l, p, 1, 1] * x[a + s]

The layer is ``out = act(level_{L-1}(... level_0(x)) + b)``: ``2 n log2 n`` weights and MACs.
Equivalently each level is ``y = x * A + x[perm] * C`` with ``perm[i] = i XOR s`` (the ONNX/TFLite
form: Gather, Mul, Mul, Add).

Projection of a dense matrix (:func:`butterfly_project`, our own, in the spirit of the hierarchical
factorisation of Le, Zheng, Riccietti and Gribonval 2022): levels ``0..h-1`` (``P = 2**h``) only mix
inside contiguous blocks of ``P`` elements and levels ``h..L-1`` only mix elements with the same index
modulo ``P``, so a butterfly is a Monarch matrix (with its output grid transposed). Project onto that
Monarch form in closed form, then factor every block recursively. It is exact (up to rounding) for a
matrix that is a product of butterfly factors.

Export forms (``form``; the trained twiddles and the MCU blob are the same for both):

* ``"levels"``: one Gather/Mul/Mul/Add group per level (``2 n log2 n`` MACs, ``4 log2 n`` ops);
* ``"monarch"``: the levels multiplied into the two block-diagonal factors they form
  (:meth:`Butterfly.monarch_factors`) and exported as a Monarch graph with its output grid
  transposed: the same function with ``2 n sqrt(n)``-ish MACs but 7 ops, which runs much faster in
  ONNX Runtime and LiteRT. :meth:`Butterfly.macs` reports the MACs of the chosen form.

int8 export needs the ranges of each level's two products and its sum: :meth:`Butterfly.calibrate`
stores them in ``ranges`` (shape ``(L, 3, 2)``: per level ``[x*A, x[perm]*C, sum]`` as ``[lo, hi]``)
and, for the ``monarch`` form, ``mranges`` (``(2, 2)``, as :class:`harness.ir.layers.Monarch`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from ...errors import CompressionError
from ..quant import QParams, activation_qparams
from .base import LAYERS, Layer
from .monarch import (
    Monarch,
    const_qparams,
    monarch_onnx,
    monarch_project,
    monarch_tflite,
    range_of,
    symmetric_qparams,
    tfl_act,
    tfl_add,
    tfl_mul,
)

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph


FORMS = ("levels", "monarch")


def is_pow2(n: int) -> bool:
    return n >= 2 and (n & (n - 1)) == 0


def _level_view(tw_l: np.ndarray, n: int, s: int) -> np.ndarray:
    """Twiddles of one level as ``(n/(2s), s, 2, 2)`` (group, offset, out, in)."""
    return tw_l.reshape(n // (2 * s), s, 2, 2)


def level_forward(x: np.ndarray, tw_l: np.ndarray, s: int) -> np.ndarray:
    """Apply one level (stride ``s``) to a ``(B, n)`` batch."""
    n = x.shape[1]
    t = _level_view(tw_l, n, s)
    v = x.reshape(-1, n // (2 * s), 2, s)
    x0, x1 = v[:, :, 0, :], v[:, :, 1, :]
    out = np.empty(v.shape, dtype=np.result_type(x.dtype, tw_l.dtype))
    np.multiply(t[:, :, 0, 0], x0, out=out[:, :, 0, :])
    out[:, :, 0, :] += t[:, :, 0, 1] * x1
    np.multiply(t[:, :, 1, 0], x0, out=out[:, :, 1, :])
    out[:, :, 1, :] += t[:, :, 1, 1] * x1
    return out.reshape(-1, n)


def level_coefs(tw_l: np.ndarray, n: int, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A, C, perm)`` with ``level(x) = x * A + x[:, perm] * C``."""
    t = _level_view(tw_l, n, s)
    a = np.stack([t[:, :, 0, 0], t[:, :, 1, 1]], axis=1).reshape(n)
    c = np.stack([t[:, :, 0, 1], t[:, :, 1, 0]], axis=1).reshape(n)
    perm = np.arange(n) ^ s
    return a.astype(np.float32), c.astype(np.float32), perm


def butterfly_project(w: np.ndarray) -> np.ndarray:
    """Twiddles ``(L, n/2, 2, 2)`` approximating a dense ``(n, n)`` weight (``x @ w``); exact on butterflies."""
    n = w.shape[0]
    if w.shape != (n, n) or not is_pow2(n):
        raise ValueError(f"butterfly projection needs a square power-of-two matrix, got {w.shape}")
    L = n.bit_length() - 1
    if n == 2:
        return np.asarray(w, dtype=np.float64).T[None, None].copy()  # (1, 1, 2, 2): (out, in)
    h = L // 2
    P, m = 1 << h, n >> h
    # Output index of the butterfly is i'*P + c'; reorder to the Monarch grid c'*m + i'.
    wm = np.asarray(w, dtype=np.float64).reshape(n, m, P).transpose(0, 2, 1).reshape(n, n)
    w1, w2 = monarch_project(wm, m, P)  # w1 (m, P, P): block i, (c, c'); w2 (P, m, m): block c', (i, i')
    tw = np.zeros((L, n // 2, 2, 2))
    for i in range(m):
        tw[:h, i * (P // 2) : (i + 1) * (P // 2)] = butterfly_project(w1[i].astype(np.float64))
    for c in range(P):
        tw[h:, c::P] = butterfly_project(w2[c].astype(np.float64))
    return tw


def random_butterfly(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random twiddles (for tests and benchmarks)."""
    L = n.bit_length() - 1
    return rng.standard_normal((L, n // 2, 2, 2)).astype(np.float32) / np.sqrt(2.0)


@LAYERS.register("butterfly")
class Butterfly(Layer):
    """Butterfly layer ``y = act(B_{L-1} ... B_0 x + b)``; see the module docstring for the layout."""

    kind = "butterfly"

    def __init__(
        self,
        tw: np.ndarray,
        b: np.ndarray,
        act: str | None = None,
        ranges: np.ndarray | None = None,
        form: str = "levels",
        mranges: np.ndarray | None = None,
    ) -> None:
        self.tw = np.ascontiguousarray(tw, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        n = self.b.shape[0] if self.b.ndim == 1 else -1
        L = n.bit_length() - 1 if n > 0 else 0
        if not is_pow2(n) or self.tw.shape != (L, n // 2, 2, 2):
            raise ValueError(
                f"butterfly: tw {self.tw.shape} must be (log2 n, n/2, 2, 2) for b {self.b.shape}"
            )
        self.act = act
        self.ranges = None if ranges is None or np.size(ranges) == 0 else np.asarray(ranges, np.float64)
        self.mranges = None if mranges is None or np.size(mranges) == 0 else np.asarray(mranges, np.float64)
        if form not in FORMS:
            raise ValueError(f"butterfly: form {form!r} is not one of {FORMS}")
        self.form = form

    @classmethod
    def from_dense(cls, w: np.ndarray, b: np.ndarray, act: str | None, form: str = "levels") -> Butterfly:
        return cls(butterfly_project(w), b, act, form=form)

    def monarch_factors(self) -> tuple[np.ndarray, np.ndarray]:
        """Monarch factors ``(w1, w2)`` (``k = m = n/P`` blocks of ``P = 2**(L//2)``) of the same map.

        Levels ``0..h-1`` multiply into ``w1`` (block ``i``: inputs/outputs ``i*P .. i*P+P-1``), levels
        ``h..L-1`` into ``w2`` (block ``c``: elements ``c, c+P, ...``). A Monarch layer with these factors
        and its output grid transposed (index ``t*P + c``) equals the butterfly.
        """
        n, h = self.n, self.levels // 2
        P, m = 1 << h, self.n >> h
        d1 = np.eye(n, dtype=np.float32)
        for lvl in range(h):
            d1 = level_forward(d1, self.tw[lvl], 1 << lvl)
        d2 = np.eye(n, dtype=np.float32)
        for lvl in range(h, self.levels):
            d2 = level_forward(d2, self.tw[lvl], 1 << lvl)
        w1 = np.stack([d1[i * P : (i + 1) * P, i * P : (i + 1) * P] for i in range(m)])  # (m, P, P)
        w2 = np.einsum("icjc->cij", d2.reshape(m, P, m, P))  # (P, m, m)
        return w1, np.ascontiguousarray(w2)

    @property
    def n(self) -> int:
        return int(self.b.shape[0])

    @property
    def levels(self) -> int:
        return int(self.tw.shape[0])

    @property
    def in_dim(self) -> int:
        return self.n

    @property
    def out_dim(self) -> int:
        return self.n

    @property
    def bias(self) -> np.ndarray:
        return self.b

    def linear(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(x, dtype=np.float32)
        for lvl in range(self.levels):
            y = level_forward(y, self.tw[lvl], 1 << lvl)
        return y

    def to_dense(self) -> np.ndarray:
        return self.linear(np.eye(self.n, dtype=np.float32))

    def n_params(self) -> int:
        return int(self.tw.size + self.b.size)

    def macs(self) -> int:
        """``2 n log2 n`` for the ``levels`` form (the MCU runs this); the Monarch MACs for ``monarch``."""
        if self.form == "monarch":
            h = self.levels // 2
            return int(self.n * ((1 << h) + (self.n >> h)))
        return int(self.tw.size)

    # --- training ---
    def params(self) -> list[np.ndarray]:
        return [self.tw, self.b]

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        n = self.n
        xs = [np.asarray(x, dtype=np.float32)]
        for lvl in range(self.levels - 1):
            xs.append(level_forward(xs[-1], self.tw[lvl], 1 << lvl))
        dtw = np.zeros_like(self.tw)
        d = np.asarray(dz, dtype=np.float32)
        for lvl in reversed(range(self.levels)):
            s = 1 << lvl
            t = _level_view(self.tw[lvl], n, s)  # (g, s, out, in)
            v = xs[lvl].reshape(-1, n // (2 * s), 2, s)  # (B, g, in, s)
            dv = d.reshape(-1, n // (2 * s), 2, s)  # (B, g, out, s)
            gt = np.empty((n // (2 * s), s, 2, 2), dtype=np.float32)
            for o in (0, 1):
                for i in (0, 1):
                    gt[:, :, o, i] = (dv[:, :, o, :] * v[:, :, i, :]).sum(axis=0)
            dtw[lvl] = gt.reshape(n // 2, 2, 2)
            d0, d1 = dv[:, :, 0, :], dv[:, :, 1, :]
            dxv = np.empty(dv.shape, dtype=np.float32)
            np.multiply(t[:, :, 0, 0], d0, out=dxv[:, :, 0, :])
            dxv[:, :, 0, :] += t[:, :, 1, 0] * d1
            np.multiply(t[:, :, 0, 1], d0, out=dxv[:, :, 1, :])
            dxv[:, :, 1, :] += t[:, :, 1, 1] * d1
            d = dxv.reshape(-1, n)
        return d, [dtw, dz.sum(axis=0)]

    def calibrate(self, x: np.ndarray) -> None:
        """Record per-level ranges of ``x*A``, ``x[perm]*C`` and their sum for int8 export."""
        y = np.asarray(x, dtype=np.float32)
        out = []
        for lvl in range(self.levels):
            a, c, perm = level_coefs(self.tw[lvl], self.n, 1 << lvl)
            m1, m2 = y * a, y[:, perm] * c
            y = m1 + m2
            out.append([range_of(m1), range_of(m2), range_of(y)])
        self.ranges = np.array(out)
        w1, w2 = self.monarch_factors()
        mon = Monarch(w1, w2, np.zeros(self.n))
        mon.calibrate(np.asarray(x, dtype=np.float32))
        self.mranges = mon.ranges

    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = {"tw": self.tw, "b": self.b, "act": self.act or "", "form": self.form}
        if self.ranges is not None:
            st["ranges"] = self.ranges
        if self.mranges is not None:
            st["mranges"] = self.mranges
        return st

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Butterfly:
        return cls(
            state["tw"],
            state["b"],
            str(state["act"]) or None,
            state.get("ranges"),
            str(state.get("form") or "levels"),
            state.get("mranges"),
        )

    # --- export ---
    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        if self.form == "monarch":
            w1, w2 = self.monarch_factors()
            t = monarch_onnx(g, x, w1, w2, "matmul", out_transposed=True)
            t = g.node("Add", [t, g.initializer("b", self.b)])
            return g.node("Relu", [t]) if self.act == "relu" else t
        t = x
        for lvl in range(self.levels):
            a, c, perm = level_coefs(self.tw[lvl], self.n, 1 << lvl)
            sw = g.node("Gather", [t, g.initializer("perm", perm.astype(np.int64))], axis=1)
            m1 = g.node("Mul", [t, g.initializer("a", a)])
            m2 = g.node("Mul", [sw, g.initializer("c", c)])
            t = g.node("Add", [m1, m2])
        t = g.node("Add", [t, g.initializer("b", self.b)])
        return g.node("Relu", [t]) if self.act == "relu" else t

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        return self._tflite(g, x, None, None)

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        return self._tflite(g, x, qin, qout)

    def _level_ranges(self, qin: QParams) -> np.ndarray:
        if self.ranges is not None:
            return self.ranges
        lo = float(qin.scale * (-128 - qin.zero_point))
        hi = float(qin.scale * (127 - qin.zero_point))
        xmax = max(abs(lo), abs(hi))
        out = []
        for lvl in range(self.levels):
            a, c, _ = level_coefs(self.tw[lvl], self.n, 1 << lvl)
            m1, m2 = xmax * float(np.abs(a).max()), xmax * float(np.abs(c).max())
            xmax = m1 + m2
            out.append([[-m1, m1], [-m2, m2], [-xmax, xmax]])
        return np.array(out)

    def _tflite(self, g: TfliteGraph, x: int, qin: QParams | None, qout: QParams | None) -> int:
        n = self.n
        if self.form == "monarch":
            from .monarch import monarch_bound

            w1, w2 = self.monarch_factors()
            if qin is None or qout is None:
                t = monarch_tflite(g, x, w1, w2, out_transposed=True)
                return tfl_add(g, t, g.const("b", self.b), [-1, n], np.float32, relu=self.act == "relu")
            r = self.mranges if self.mranges is not None else monarch_bound(w1, w2, qin)
            t = monarch_tflite(g, x, w1, w2, qin=qin, ranges=r, out_transposed=True)
            bq, qb = const_qparams(self.b)
            return tfl_add(g, t, g.const("b", bq, qb), [-1, n], np.int8, qout, relu=self.act == "relu")
        int8 = qin is not None and qout is not None
        dt = np.int8 if int8 else np.float32
        ranges = self._level_ranges(qin) if qin is not None else None
        t, qt = x, qin
        q1: QParams | None
        q2: QParams | None
        qy: QParams | None
        for lvl in range(self.levels):
            a, c, perm = level_coefs(self.tw[lvl], n, 1 << lvl)
            if ranges is not None:
                r = ranges[lvl]
                q1, q2, qy = (activation_qparams(*r[j]) for j in range(3))
                (aq, qa), (cq, qc) = symmetric_qparams(a), symmetric_qparams(c)
                at, ct = g.const("a", aq, qa), g.const("c", cq, qc)
            else:
                q1 = q2 = qy = None
                at, ct = g.const("a", a), g.const("c", c)
            sw = tfl_act(g, [-1, n], dt, qt)
            opt = tfl.GatherOptionsT()
            opt.axis, opt.batchDims = 1, 0
            g.op(
                tfl.BuiltinOperator.GATHER,
                [t, g.const("perm", perm.astype(np.int32))],
                [sw],
                tfl.BuiltinOptions.GatherOptions,
                opt,
            )
            m1 = tfl_mul(g, t, at, [-1, n], dt, q1)
            m2 = tfl_mul(g, sw, ct, [-1, n], dt, q2)
            t = tfl_add(g, m1, m2, [-1, n], dt, qy, relu=False)
            qt = qy
        if int8:
            bq, qb = const_qparams(self.b)
            bt = g.const("b", bq, qb)
        else:
            bt = g.const("b", self.b)
        return tfl_add(g, t, bt, [-1, n], dt, qout, relu=self.act == "relu")


def check_butterfly_fits(layer_name: str, n_in: int, n_out: int) -> None:
    """Raise :class:`CompressionError` unless the layer is square with a power-of-two size."""
    if n_in != n_out or not is_pow2(n_in):
        raise CompressionError(
            f"butterfly: {layer_name} is {n_in}x{n_out}; butterfly factors need a square layer whose size "
            "is a power of two (e.g. 256x256, 512x512, 1024x1024). Resize the model or exclude this layer"
        )
