"""Random int8 operator graphs with plausible quantisation: test and benchmark workloads for the MCU.

:class:`GraphBuilder` appends operators with random int8 weights, random tensor scales and zero
points, and requantisation multipliers chosen so that outputs mostly stay inside int8 (the integers
are what matters: firmware and NumPy reference must agree on them). :func:`kws_dscnn` and
:func:`resnet8` are MLPerf Tiny's keyword-spotting DS-CNN and ResNet-8 at their layer shapes.
"""

from __future__ import annotations

import numpy as np

from ..ir.quant import quantize_multiplier_tflite
from .blob.graph import QGraph, QOp, QTensor


class GraphBuilder:
    """Builds a random :class:`QGraph` op by op with plausible scales (outputs stay mostly in range)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...], relu_zp: int | None = None) -> None:
        self.rng = rng
        self.relu_zp = relu_zp  # zero point of ReLU outputs (TFLite's converter gives them -128), else random
        self.tensors: list[QTensor] = []
        self.ops: list[QOp] = []
        self.input = self.tensor(shape)

    def tensor(self, shape: tuple[int, ...], scale: float | None = None, zp: int | None = None) -> int:
        r = self.rng
        self.tensors.append(
            QTensor(
                f"t{len(self.tensors)}",
                tuple(shape),
                float(r.uniform(0.01, 0.1)) if scale is None else scale,
                int(r.integers(-128, 100)) if zp is None else zp,
            )
        )
        return len(self.tensors) - 1

    def _act(self, y: int, act: str | None) -> tuple[int, int]:
        t = self.tensors[y]
        if act == "relu":
            return max(-128, t.zero_point), 127
        if act == "relu6":
            return max(-128, t.zero_point), min(127, t.zero_point + int(round(6 / t.scale)))
        return -128, 127

    def _requant(self, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        # acc ~ sqrt(k) * 60 * 70; map about 3 standard deviations onto +-128
        real = self.rng.uniform(0.5, 2.0, size=n) * 40.0 / (np.sqrt(k) * 4200.0)
        return quantize_multiplier_tflite(real)

    def conv(self, x: int, cout: int, k: tuple[int, int], stride: tuple[int, int], same: bool,
             act: str | None = None, depthwise: bool = False) -> int:  # fmt: skip
        h, w, c = self.tensors[x].shape
        (kh, kw), (sh, sw) = k, stride
        if same:
            oh, ow = -(-h // sh), -(-w // sw)
            pt = max((oh - 1) * sh + kh - h, 0) // 2
            pl = max((ow - 1) * sw + kw - w, 0) // 2
        else:
            oh, ow, pt, pl = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0
        co = c if depthwise else cout
        y = self.tensor((oh, ow, co), zp=self.relu_zp if act else None)
        r = self.rng
        wshape = (kh, kw, c) if depthwise else (co, kh, kw, c)
        wq = r.integers(-127, 128, size=wshape).astype(np.int8)
        mult, shift = self._requant(co, kh * kw * (1 if depthwise else c))
        params: dict[str, np.ndarray] = {
            "w": wq,
            "bias": r.integers(-3000, 3000, size=co).astype(np.int32),
            "mult": mult,
            "shift": shift,
        }
        lo, hi = self._act(y, act)
        attrs = {"stride_h": sh, "stride_w": sw, "pad_top": pt, "pad_left": pl}
        self.ops.append(QOp("dwconv2d" if depthwise else "conv2d", [x], y, params, attrs, lo, hi))
        return y

    def dense(self, x: int, n: int, act: str | None = None, rounding: int = 0) -> int:
        k = self.tensors[x].size
        y = self.tensor((n,), zp=self.relu_zp if act else None)
        r = self.rng
        mult, shift = self._requant(n, k)
        params: dict[str, np.ndarray] = {"w": r.integers(-127, 128, size=(n, k)).astype(np.int8),
                  "bias": r.integers(-3000, 3000, size=n).astype(np.int32), "mult": mult, "shift": shift}  # fmt: skip
        lo, hi = self._act(y, act)
        self.ops.append(QOp("dense", [x], y, params, {"rounding": rounding} if rounding else {}, lo, hi))
        return y

    def pw_sparse(self, x: int, cout: int, density: float, act: str | None = None) -> int:
        """A 1x1 convolution with about ``density`` of its weights nonzero (unstructured), as ``pwconv_csr``."""
        r = self.rng
        shape = self.tensors[x].shape
        cin = shape[-1]
        y = self.tensor((*shape[:-1], cout), zp=self.relu_zp if act else None)
        w = r.integers(-127, 128, size=(cout, 1, 1, cin)) * (r.random((cout, 1, 1, cin)) < density)
        mult, shift = self._requant(cout, max(1, round(density * cin)))
        params: dict[str, np.ndarray] = {"w": w.astype(np.int8), "bias": r.integers(-3000, 3000, size=cout).astype(np.int32),
                  "mult": mult, "shift": shift}  # fmt: skip
        lo, hi = self._act(y, act)
        self.ops.append(QOp("pwconv_csr", [x], y, params, {}, lo, hi))
        return y

    def pw_monarch(self, x: int, cout: int, k: int, q: int, act: str | None = None, sh1: int = 4) -> int:
        """A Monarch pointwise convolution: ``k`` blocks of factor 1, ``q`` of factor 2, one requantisation
        for every channel (as the MLP blob's export), int16 intermediate shifted down by ``sh1``."""
        r = self.rng
        shape = self.tensors[x].shape
        cin = shape[-1]
        p, s = cin // k, cout // q
        y = self.tensor((*shape[:-1], cout), zp=self.relu_zp if act else None)
        w1 = r.integers(-127, 128, size=(k, q, p)).astype(np.int8)
        w2 = r.integers(-127, 128, size=(q, s, k)).astype(np.int8)
        h_std = np.sqrt(p) * 73.0 * 73.0 / (1 << sh1)  # int16 intermediate: about sqrt(p) * 73^2 >> sh1
        (m,), (e,) = quantize_multiplier_tflite(
            np.array([r.uniform(0.5, 2.0) * 40.0 / (np.sqrt(k) * 73.0 * h_std)])
        )
        params: dict[str, np.ndarray] = {"w1": w1, "bias1": r.integers(-3000, 3000, size=k * q).astype(np.int32),
                  "sh1": np.array([sh1], np.int32), "w2": w2,
                  "bias": r.integers(-3000, 3000, size=cout).astype(np.int32),
                  "mult": np.full(cout, m, np.int32), "shift": np.full(cout, e, np.int32)}  # fmt: skip
        lo, hi = self._act(y, act)
        self.ops.append(QOp("pwconv_monarch", [x], y, params, {}, lo, hi))
        return y

    def pool(self, x: int, kind: str, k: tuple[int, int], stride: tuple[int, int], same: bool) -> int:
        h, w, c = self.tensors[x].shape
        (kh, kw), (sh, sw) = k, stride
        if same:
            oh, ow = -(-h // sh), -(-w // sw)
            pt = max((oh - 1) * sh + kh - h, 0) // 2
            pl = max((ow - 1) * sw + kw - w, 0) // 2
        else:
            oh, ow, pt, pl = (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0
        t = self.tensors[x]
        y = self.tensor((oh, ow, c), t.scale, t.zero_point)
        attrs = {"kh": kh, "kw": kw, "stride_h": sh, "stride_w": sw, "pad_top": pt, "pad_left": pl}
        self.ops.append(QOp(kind, [x], y, {}, attrs))
        return y

    def mean(self, x: int, keep_dims: bool = False) -> int:
        h, w, c = self.tensors[x].shape
        n = h * w
        y = self.tensor((1, 1, c) if keep_dims else (c,))
        (m,), (s,) = quantize_multiplier_tflite(np.array([self.tensors[x].scale / self.tensors[y].scale]))
        up = min(n.bit_length() - 1, 32, 31 + int(s))
        params = {
            "mult": np.array([(int(m) << up) // n], np.int32),
            "shift": np.array([int(s) - up], np.int32),
        }
        self.ops.append(QOp("mean", [x], y, params))
        return y

    def add(self, a: int, b: int, act: str | None = None) -> int:
        ta, tb = self.tensors[a], self.tensors[b]
        y = self.tensor(ta.shape, zp=self.relu_zp if act else None)
        so = self.tensors[y].scale
        twice = 2 * max(ta.scale, tb.scale)
        ma, sa = quantize_multiplier_tflite(np.array([ta.scale / twice]))
        mb, sb = quantize_multiplier_tflite(np.array([tb.scale / twice]))
        mo, sho = quantize_multiplier_tflite(np.array([twice / ((1 << 20) * so)]))
        params = {"left_shift": np.array([20], np.int32), "mult_a": ma, "shift_a": sa, "mult_b": mb,
                  "shift_b": sb, "mult_out": mo, "shift_out": sho}  # fmt: skip
        lo, hi = self._act(y, act)
        self.ops.append(QOp("add", [a, b], y, params, {}, lo, hi))
        return y

    def reshape(self, x: int, shape: tuple[int, ...]) -> int:
        t = self.tensors[x]
        y = self.tensor(shape, t.scale, t.zero_point)
        self.ops.append(QOp("reshape", [x], y))
        return y

    def graph(self, output: int) -> QGraph:
        return QGraph(self.tensors, self.ops, self.input, output)


def kws_dscnn(rng: np.random.Generator) -> QGraph:
    """MLPerf Tiny KWS DS-CNN: 49x10x1 input, conv 10x4 stride 2 (64), 4 x (dw 3x3 + pw 1x1, 64), avgpool, fc 12."""
    b = GraphBuilder(rng, (49, 10, 1), relu_zp=-128)
    x = b.conv(b.input, 64, (10, 4), (2, 2), True, "relu")
    for _ in range(4):
        x = b.conv(x, 0, (3, 3), (1, 1), True, "relu", depthwise=True)
        x = b.conv(x, 64, (1, 1), (1, 1), False, "relu")
    h, w, _ = b.tensors[x].shape
    x = b.pool(x, "avgpool", (h, w), (1, 1), False)
    x = b.reshape(x, (64,))
    return b.graph(b.dense(x, 12))


def resnet8(rng: np.random.Generator) -> QGraph:
    """MLPerf Tiny ResNet-8: 32x32x3 input, conv 3x3 16, three residual stacks (16, 32/2, 64/2), avgpool, fc 10."""
    b = GraphBuilder(rng, (32, 32, 3), relu_zp=-128)
    x = b.conv(b.input, 16, (3, 3), (1, 1), True, "relu")
    for c, s in ((16, 1), (32, 2), (64, 2)):
        a = b.conv(x, c, (3, 3), (s, s), True, "relu")
        a = b.conv(a, c, (3, 3), (1, 1), True)
        sc = x if s == 1 and b.tensors[x].shape[-1] == c else b.conv(x, c, (1, 1), (s, s), False)
        x = b.add(a, sc, "relu")
    h, w, _ = b.tensors[x].shape
    x = b.pool(x, "avgpool", (h, w), (1, 1), False)
    x = b.reshape(x, (64,))
    return b.graph(b.dense(x, 10))
