"""Monarch layer: two block-diagonal factors with a reshape/transpose between them (Dao et al. 2022).

Parametrisation (stable: the MCU blob exporter reads it)
--------------------------------------------------------
With ``k`` first-factor blocks of input size ``p`` and output size ``q``, and ``q`` second-factor
blocks of input size ``k`` and output size ``s``::

    w1: float32 (k, p, q)   block i maps x[i*p:(i+1)*p] (p values) to q values
    w2: float32 (q, k, s)   block j maps the j-th value of every first-factor block (k values) to s values
    b:  float32 (q*s,)
    in_dim = k*p,  out_dim = q*s

Forward pass of one sample ``x`` (``in_dim`` values)::

    h[i, j] = sum_c x[i*p + c] * w1[i, c, j]          for i < k, j < q     (first block-diagonal factor)
    y[j*s + t] = act(b[j*s + t] + sum_i h[i, j] * w2[j, i, t])     for j < q, t < s

i.e. ``h`` is the ``(k, q)`` grid of first-factor outputs; the permutation between the factors is
the transpose of that grid (``(k, q) -> (q, k)``), so second-factor block ``j`` reads column ``j``.
The dense equivalent (``x @ W``, ``W`` of shape ``(in_dim, out_dim)`` as in :class:`Dense`) is
``W[i*p + c, j*s + t] = w1[i, c, j] * w2[j, i, t]``. For a square layer ``n = b*b`` with ``b`` blocks
(``k = p = q = s = b``) this is Dao's ``M = P L P^T R`` with ``2 n sqrt(n)`` parameters and MACs.

Projection of a dense matrix is closed form: every ``(i, j)`` slice ``W[i*p:(i+1)*p, j*s:(j+1)*s]``
must be rank one (``w1[i, :, j]`` outer ``w2[j, i, :]``), so the best Monarch approximation in
Frobenius norm is the rank-1 SVD of every slice (:func:`monarch_project`).

int8 export needs the ranges of the intermediate ``h`` and of the pre-bias output; they are set by
:meth:`Monarch.calibrate` (the compressor calls it on calibration data after fine-tuning) and kept in
the saved state (``ranges``, shape ``(2, 2)``: ``[[h_lo, h_hi], [y_lo, y_hi]]``). The saved scalar
``form`` only picks the ONNX node layout (:data:`ONNX_FORMS`), never the arithmetic. TFLite (float
and int8): RESHAPE, TRANSPOSE, BATCH_MATMUL, TRANSPOSE, BATCH_MATMUL, TRANSPOSE, RESHAPE, ADD; int8
weights are symmetric per tensor (one scale per factor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from ai_edge_litert import schema_py_generated as tfl

from ...errors import CompressionError
from ..quant import QParams, activation_qparams
from .base import LAYERS, Layer

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph

# ONNX graph forms (same arithmetic, different node layouts; benches/perf/monarch.py times them):
#   "matmul": Reshape, Transpose, MatMul (k, B, p)@(k, p, q), Transpose, MatMul, Transpose, Reshape
#             (the blocked-GEMM form of Dao's BlockdiagButterflyMultiply; good at every batch size)
#   "einsum": Reshape, Einsum "bkp,kpq->bqk", Einsum "bqk,qks->bqs", Reshape (best at large batch)
#   "bcast":  batch-first MatMul broadcast over blocks, one Transpose (fewest nodes: best at batch 1)
ONNX_FORMS = ("matmul", "einsum", "bcast")
ONNX_FORM = "matmul"


def monarch_dense(w1: np.ndarray, w2: np.ndarray) -> np.ndarray:
    """The dense ``(in_dim, out_dim)`` matrix of the factors (``W[i*p+c, j*s+t] = w1[i,c,j]*w2[j,i,t]``)."""
    k, p, q = w1.shape
    s = w2.shape[2]
    return np.einsum("icj,jit->icjt", w1, w2).reshape(k * p, q * s)


def monarch_project(w: np.ndarray, k: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form Frobenius projection of a dense ``(in_dim, out_dim)`` matrix onto Monarch factors.

    ``k`` first-factor blocks (``k`` divides ``in_dim``), ``q`` second-factor blocks (``q`` divides
    ``out_dim``). Returns ``(w1, w2)`` with the singular value split evenly between them.
    """
    n_in, n_out = w.shape
    p, s = n_in // k, n_out // q
    t = np.asarray(w, dtype=np.float64).reshape(k, p, q, s).transpose(0, 2, 1, 3)  # (k, q, p, s)
    u, sv, vt = np.linalg.svd(t, full_matrices=False)
    root = np.sqrt(sv[..., 0])  # (k, q)
    a = u[..., :, 0] * root[..., None]  # (k, q, p)
    c = vt[..., 0, :] * root[..., None]  # (k, q, s)
    w1 = a.transpose(0, 2, 1)  # (k, p, q)
    w2 = c.transpose(1, 0, 2)  # (q, k, s)
    return w1.astype(np.float32), w2.astype(np.float32)


def monarch_sizes(n_in: int, n_out: int) -> list[int]:
    """Block counts that fit a layer (common divisors of both sizes, 2 ≤ nblocks < min size)."""
    return [d for d in range(2, min(n_in, n_out)) if n_in % d == 0 and n_out % d == 0]


def default_nblocks(n_in: int, n_out: int) -> int | None:
    """The common divisor closest to ``sqrt(max(n_in, n_out))`` (``b`` for ``n = b*b``)."""
    sizes = monarch_sizes(n_in, n_out)
    if not sizes:
        return None
    target = np.sqrt(max(n_in, n_out))
    return min(sizes, key=lambda d: (abs(np.log(d / target)), d))


# --- TFLite helpers shared by the structured layers (generic: only g.tensor/g.const/g.op) ---


def tfl_act(g: TfliteGraph, shape: list[int], dtype: Any, q: QParams | None = None) -> int:
    """An activation tensor whose shape may hold ``-1`` (the batch) at any position."""
    idx = g.tensor("act", [1 if d == -1 else d for d in shape], dtype, q=q)
    if -1 in shape:
        g.sub.tensors[idx].shapeSignature = list(shape)
    return idx


def tfl_reshape(g: TfliteGraph, x: int, shape: list[int], dtype: Any, q: QParams | None = None) -> int:
    y = tfl_act(g, shape, dtype, q)
    opt = tfl.ReshapeOptionsT()
    opt.newShape = list(shape)
    g.op(
        tfl.BuiltinOperator.RESHAPE,
        [x, g.const("shape", np.array(shape, dtype=np.int32))],
        [y],
        tfl.BuiltinOptions.ReshapeOptions,
        opt,
    )
    return y


def tfl_transpose(
    g: TfliteGraph, x: int, perm: list[int], shape: list[int], dtype: Any, q: QParams | None = None
) -> int:
    """TRANSPOSE to ``shape`` (the caller states the result shape, ``-1`` for the batch)."""
    y = tfl_act(g, shape, dtype, q)
    g.op(
        tfl.BuiltinOperator.TRANSPOSE,
        [x, g.const("perm", np.array(perm, dtype=np.int32))],
        [y],
        tfl.BuiltinOptions.TransposeOptions,
        tfl.TransposeOptionsT(),
    )
    return y


def tfl_batch_matmul(
    g: TfliteGraph, x: int, w: int, shape: list[int], dtype: Any, q: QParams | None = None
) -> int:
    y = tfl_act(g, shape, dtype, q)
    opt = tfl.BatchMatMulOptionsT()
    opt.adjX, opt.adjY, opt.asymmetricQuantizeInputs = False, False, False
    g.op(tfl.BuiltinOperator.BATCH_MATMUL, [x, w], [y], tfl.BuiltinOptions.BatchMatMulOptions, opt)
    return y


def tfl_add(
    g: TfliteGraph, a: int, b: int, shape: list[int], dtype: Any, q: QParams | None = None, *, relu: bool
) -> int:
    y = tfl_act(g, shape, dtype, q)
    opt = tfl.AddOptionsT()
    opt.fusedActivationFunction = tfl.ActivationFunctionType.RELU if relu else tfl.ActivationFunctionType.NONE
    g.op(tfl.BuiltinOperator.ADD, [a, b], [y], tfl.BuiltinOptions.AddOptions, opt)
    return y


def tfl_mul(g: TfliteGraph, a: int, b: int, shape: list[int], dtype: Any, q: QParams | None = None) -> int:
    y = tfl_act(g, shape, dtype, q)
    opt = tfl.MulOptionsT()
    opt.fusedActivationFunction = tfl.ActivationFunctionType.NONE
    g.op(tfl.BuiltinOperator.MUL, [a, b], [y], tfl.BuiltinOptions.MulOptions, opt)
    return y


def symmetric_qparams(x: np.ndarray) -> tuple[np.ndarray, QParams]:
    """Per-tensor symmetric int8 (zero point 0) for constants that BATCH_MATMUL/MUL read."""
    m = float(np.abs(x).max())
    scale = m / 127.0 if m > 0 else 1.0
    q = np.clip(np.round(x / scale), -127, 127).astype(np.int8)
    return q, QParams(np.float64(scale), np.int64(0))


def const_qparams(x: np.ndarray) -> tuple[np.ndarray, QParams]:
    """Per-tensor asymmetric int8 for a constant operand of ADD (e.g. a bias)."""
    qp = activation_qparams(float(x.min()), float(x.max()))
    return qp.quantize(x), qp


def range_of(a: np.ndarray) -> list[float]:
    return [float(a.min()), float(a.max())]


@LAYERS.register("monarch")
class Monarch(Layer):
    """Monarch layer ``y = act(monarch(x) + b)``; see the module docstring for shapes and formula."""

    kind = "monarch"

    def __init__(
        self,
        w1: np.ndarray,
        w2: np.ndarray,
        b: np.ndarray,
        act: str | None = None,
        ranges: np.ndarray | None = None,
        form: str | None = None,
    ) -> None:
        self.w1 = np.ascontiguousarray(w1, dtype=np.float32)
        self.w2 = np.ascontiguousarray(w2, dtype=np.float32)
        self.b = np.ascontiguousarray(b, dtype=np.float32)
        if self.w1.ndim != 3 or self.w2.ndim != 3:
            raise ValueError(f"monarch: w1 {self.w1.shape} and w2 {self.w2.shape} must be 3-D")
        k, _, q = self.w1.shape
        if self.w2.shape[:2] != (q, k) or self.b.shape != (self.out_dim,):
            raise ValueError(
                f"monarch: w1 {self.w1.shape} (k, p, q) needs w2 (q, k, s) and b (q*s,);"
                f" got w2 {self.w2.shape}, b {self.b.shape}"
            )
        self.act = act
        self.ranges = None if ranges is None or np.size(ranges) == 0 else np.asarray(ranges, np.float64)
        self.form = form or ONNX_FORM
        if self.form not in ONNX_FORMS:
            raise ValueError(f"monarch: ONNX form {self.form!r} is not one of {ONNX_FORMS}")

    @classmethod
    def from_dense(
        cls, w: np.ndarray, b: np.ndarray, act: str | None, k: int, q: int, form: str | None = None
    ) -> Monarch:
        """Project a dense ``(in_dim, out_dim)`` weight (closed form, no fine-tuning)."""
        w1, w2 = monarch_project(w, k, q)
        return cls(w1, w2, b, act, form=form)

    @property
    def nblocks(self) -> tuple[int, int]:
        return int(self.w1.shape[0]), int(self.w1.shape[2])

    @property
    def in_dim(self) -> int:
        return int(self.w1.shape[0] * self.w1.shape[1])

    @property
    def out_dim(self) -> int:
        return int(self.w2.shape[0] * self.w2.shape[2])

    @property
    def bias(self) -> np.ndarray:
        return self.b

    def _first(self, x: np.ndarray) -> np.ndarray:
        k, p, _ = self.w1.shape
        return np.matmul(x.reshape(-1, k, p).transpose(1, 0, 2), self.w1)  # (k, B, q)

    def linear(self, x: np.ndarray) -> np.ndarray:
        h = self._first(np.asarray(x, dtype=np.float32))
        y = np.matmul(h.transpose(2, 1, 0), self.w2)  # (q, B, s)
        return y.transpose(1, 0, 2).reshape(-1, self.out_dim)

    def to_dense(self) -> np.ndarray:
        """Dense ``(in_dim, out_dim)`` weight with the same linear map."""
        return monarch_dense(self.w1, self.w2)

    def n_params(self) -> int:
        return int(self.w1.size + self.w2.size + self.b.size)

    def macs(self) -> int:
        """``k*p*q`` for the first factor plus ``q*k*s`` for the second (per sample)."""
        return int(self.w1.size + self.w2.size)

    # --- training (used by harness.ir.train) ---
    def params(self) -> list[np.ndarray]:
        return [self.w1, self.w2, self.b]

    def backward(self, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Given the input batch and d(loss)/d(pre-activation output), return dx and grads of params()."""
        k, p, q = self.w1.shape
        s = self.w2.shape[2]
        a = x.reshape(-1, k, p).transpose(1, 0, 2)  # (k, B, p)
        gq = np.matmul(a, self.w1).transpose(2, 1, 0)  # (q, B, k)
        dy = dz.reshape(-1, q, s).transpose(1, 0, 2)  # (q, B, s)
        dw2 = np.matmul(gq.transpose(0, 2, 1), dy)  # (q, k, s)
        dh = np.matmul(dy, self.w2.transpose(0, 2, 1)).transpose(2, 1, 0)  # (k, B, q)
        dw1 = np.matmul(a.transpose(0, 2, 1), dh)  # (k, p, q)
        dx = np.matmul(dh, self.w1.transpose(0, 2, 1)).transpose(1, 0, 2).reshape(-1, k * p)
        return dx, [dw1, dw2, dz.sum(axis=0)]

    def calibrate(self, x: np.ndarray) -> None:
        """Record the ranges of the intermediate and of the pre-bias output for int8 export."""
        h = self._first(np.asarray(x, dtype=np.float32))
        self.ranges = np.array([range_of(h), range_of(self.linear(x))])

    # --- persistence ---
    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "w1": self.w1,
            "w2": self.w2,
            "b": self.b,
            "act": self.act or "",
            "form": self.form,
        }
        if self.ranges is not None:
            st["ranges"] = self.ranges
        return st

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Monarch:
        return cls(
            state["w1"],
            state["w2"],
            state["b"],
            str(state["act"]) or None,
            state.get("ranges"),
            str(state.get("form") or ONNX_FORM),
        )

    # --- export ---
    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        t = monarch_onnx(g, x, self.w1, self.w2, self.form)
        t = g.node("Add", [t, g.initializer("b", self.b)])
        return g.node("Relu", [t]) if self.act == "relu" else t

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        t = monarch_tflite(g, x, self.w1, self.w2)
        return tfl_add(g, t, g.const("b", self.b), [-1, self.out_dim], np.float32, relu=self.act == "relu")

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        ranges = self.ranges if self.ranges is not None else monarch_bound(self.w1, self.w2, qin)
        t = monarch_tflite(g, x, self.w1, self.w2, qin=qin, ranges=ranges)
        bq, qb = const_qparams(self.b)
        return tfl_add(g, t, g.const("b", bq, qb), [-1, self.out_dim], np.int8, qout, relu=self.act == "relu")


def monarch_bound(w1: np.ndarray, w2: np.ndarray, qin: QParams) -> np.ndarray:
    """Ranges of ``h`` and of the output bounded from the input range (when not calibrated; loose)."""
    xmax = float(max(abs(qin.scale * (-128 - qin.zero_point)), abs(qin.scale * (127 - qin.zero_point))))
    hmax = xmax * float(np.abs(w1).sum(axis=1).max())
    ymax = hmax * float(np.abs(w2).sum(axis=1).max())
    return np.array([[-hmax, hmax], [-ymax, ymax]])


def monarch_onnx(
    g: OnnxGraph, x: str, w1: np.ndarray, w2: np.ndarray, form: str, *, out_transposed: bool = False
) -> str:
    """ONNX nodes for the linear part (no bias). ``out_transposed`` writes the output grid as
    ``(s, q)`` instead of ``(q, s)`` (output index ``t*q + j``; the butterfly's order), at no extra cost
    except in the ``bcast`` form."""
    k, p, q = w1.shape
    s = w2.shape[2]

    def shape(*dims: int) -> str:
        return g.initializer("shape", np.array(dims, dtype=np.int64))

    w1n, w2n = g.initializer("w1", w1), g.initializer("w2", w2)
    if form == "bcast":
        # batch-first: (B, k, 1, p) @ (k, p, q) broadcast over blocks; one Transpose between factors
        t = g.node("Reshape", [x, shape(-1, k, 1, p)])
        t = g.node("MatMul", [t, w1n])  # (B, k, 1, q)
        t = g.node("Reshape", [t, shape(-1, k, q)])
        t = g.node("Transpose", [t], perm=[0, 2, 1])  # (B, q, k)
        t = g.node("Reshape", [t, shape(-1, q, 1, k)])
        t = g.node("MatMul", [t, w2n])  # (B, q, 1, s)
        if out_transposed:
            t = g.node("Reshape", [t, shape(-1, q, s)])
            t = g.node("Transpose", [t], perm=[0, 2, 1])
    else:
        t = g.node("Reshape", [x, shape(-1, k, p)])
        if form == "einsum":
            t = g.node("Einsum", [t, w1n], equation="bkp,kpq->bqk")
            t = g.node("Einsum", [t, w2n], equation="bqk,qks->bsq" if out_transposed else "bqk,qks->bqs")
        else:
            t = g.node("Transpose", [t], perm=[1, 0, 2])  # (k, B, p)
            t = g.node("MatMul", [t, w1n])  # (k, B, q)
            t = g.node("Transpose", [t], perm=[2, 1, 0])  # (q, B, k)
            t = g.node("MatMul", [t, w2n])  # (q, B, s)
            t = g.node(
                "Transpose", [t], perm=[1, 2, 0] if out_transposed else [1, 0, 2]
            )  # (B, s, q) | (B, q, s)
    return g.node("Reshape", [t, shape(-1, q * s)])


def monarch_tflite(
    g: TfliteGraph,
    x: int,
    w1: np.ndarray,
    w2: np.ndarray,
    *,
    qin: QParams | None = None,
    ranges: np.ndarray | None = None,
    out_transposed: bool = False,
) -> int:
    """RESHAPE/TRANSPOSE/BATCH_MATMUL ops for the linear part (no bias); int8 when ``qin`` is given
    (``ranges`` = ``[[h_lo, h_hi], [y_lo, y_hi]]``; weights per-tensor symmetric)."""
    k, p, q = w1.shape
    s = w2.shape[2]
    if qin is not None:
        assert ranges is not None
        dt: Any = np.int8
        qh, qy = activation_qparams(*ranges[0]), activation_qparams(*ranges[1])
        (w1q, q1), (w2q, q2) = symmetric_qparams(w1), symmetric_qparams(w2)
        w1t, w2t = g.const("w1", w1q, q1), g.const("w2", w2q, q2)
    else:
        dt, qh, qy = np.float32, None, None
        w1t, w2t = g.const("w1", w1.astype(np.float32)), g.const("w2", w2.astype(np.float32))
    t = tfl_reshape(g, x, [-1, k, p], dt, qin)
    t = tfl_transpose(g, t, [1, 0, 2], [k, -1, p], dt, qin)
    t = tfl_batch_matmul(g, t, w1t, [k, -1, q], dt, qh)
    t = tfl_transpose(g, t, [2, 1, 0], [q, -1, k], dt, qh)
    t = tfl_batch_matmul(g, t, w2t, [q, -1, s], dt, qy)
    if out_transposed:
        t = tfl_transpose(g, t, [1, 2, 0], [-1, s, q], dt, qy)
    else:
        t = tfl_transpose(g, t, [1, 0, 2], [-1, q, s], dt, qy)
    return tfl_reshape(g, t, [-1, q * s], dt, qy)


def check_monarch_fits(layer_name: str, n_in: int, n_out: int, nblocks: int | None) -> int:
    """Return the block count to use, or raise :class:`CompressionError` saying which would work."""
    sizes = monarch_sizes(n_in, n_out)
    if nblocks is None:
        nb = default_nblocks(n_in, n_out)
        if nb is None:
            raise CompressionError(
                f"monarch: {layer_name} is {n_in}x{n_out}; no block count >= 2 divides both sizes. "
                "Use sizes with a common divisor (e.g. 256, 512, 1024) or exclude this layer"
            )
        return nb
    if nblocks not in sizes:
        raise CompressionError(
            f"monarch: nblocks={nblocks} does not fit {layer_name} ({n_in}x{n_out}): it must divide both "
            f"sizes. Block counts that work: {sizes or 'none'}"
        )
    return nblocks
