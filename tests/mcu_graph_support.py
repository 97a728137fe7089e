"""Random int8 operator graphs (blob version 2) for the firmware and planner tests."""

from __future__ import annotations

import numpy as np

from harness.ir.quant import quantize_multiplier_tflite
from harness.mcu.blob.graph import QGraph, QOp, QTensor


class GraphBuilder:
    """Builds a random :class:`QGraph` op by op with plausible scales (outputs stay mostly in range)."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, ...]) -> None:
        self.rng = rng
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
        y = self.tensor((oh, ow, co))
        r = self.rng
        wshape = (kh, kw, c) if depthwise else (co, kh, kw, c)
        wq = r.integers(-127, 128, size=wshape).astype(np.int8)
        mult, shift = self._requant(co, kh * kw * (1 if depthwise else c))
        params = {
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
        y = self.tensor((n,))
        r = self.rng
        mult, shift = self._requant(n, k)
        params = {"w": r.integers(-127, 128, size=(n, k)).astype(np.int8),
                  "bias": r.integers(-3000, 3000, size=n).astype(np.int32), "mult": mult, "shift": shift}  # fmt: skip
        lo, hi = self._act(y, act)
        self.ops.append(QOp("dense", [x], y, params, {"rounding": rounding} if rounding else {}, lo, hi))
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
        y = self.tensor(ta.shape)
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


def random_graph(kind: str, rng: np.random.Generator) -> QGraph:
    """A small graph exercising one operator kind (several geometries and activations)."""
    if kind == "conv":
        b = GraphBuilder(rng, (9, 7, 3))
        x = b.conv(b.input, 6, (3, 3), (1, 1), True, "relu")  # 3 input channels, same padding
        x = b.conv(x, 8, (3, 2), (2, 2), True, "relu6")  # stride 2, odd sizes, channels not /4
        x = b.conv(x, 5, (2, 2), (1, 2), False)  # valid padding, mixed strides
        return b.graph(x)
    if kind == "conv-wide":  # Cin multiple of 4: taps widened straight from the input, 1x1 fast path
        b = GraphBuilder(rng, (6, 5, 8))
        x = b.conv(b.input, 12, (3, 3), (1, 1), True, "relu")
        x = b.conv(x, 16, (1, 1), (1, 1), False)
        x = b.conv(x, 7, (1, 1), (2, 2), False, "relu")
        return b.graph(x)
    if kind == "conv1ch":  # KWS-like first layer: 1 input channel, tall kernel, stride 2
        b = GraphBuilder(rng, (13, 6, 1))
        return b.graph(b.conv(b.input, 8, (5, 3), (2, 2), True, "relu"))
    if kind == "dwconv":
        b = GraphBuilder(rng, (7, 5, 6))
        x = b.conv(b.input, 0, (3, 3), (1, 1), True, "relu", depthwise=True)
        x = b.conv(x, 0, (3, 3), (2, 2), True, "relu6", depthwise=True)
        x = b.conv(x, 0, (2, 1), (1, 1), False, depthwise=True)  # generic path
        return b.graph(x)
    if kind == "dwconv-wide":
        b = GraphBuilder(rng, (8, 5, 16))
        x = b.conv(b.input, 0, (3, 3), (1, 1), True, "relu", depthwise=True)
        x = b.conv(x, 0, (3, 3), (2, 2), False, depthwise=True)
        return b.graph(x)
    if kind == "pool":
        b = GraphBuilder(rng, (9, 7, 5))
        x = b.pool(b.input, "maxpool", (3, 3), (2, 2), True)
        x = b.pool(x, "avgpool", (2, 3), (1, 1), True)
        x = b.pool(x, "avgpool", (2, 2), (2, 2), False)
        x = b.pool(x, "maxpool", (2, 2), (1, 1), False)
        return b.graph(x)
    if kind == "mean-dense":
        b = GraphBuilder(rng, (5, 4, 10))
        x = b.mean(b.input)
        x = b.dense(x, 9, "relu")
        x = b.dense(x, 6, rounding=1)
        return b.graph(x)
    if kind == "residual":  # conv -> conv -> add(residual) -> reshape -> dense
        b = GraphBuilder(rng, (6, 6, 4))
        x0 = b.conv(b.input, 8, (3, 3), (1, 1), True, "relu")
        x1 = b.conv(x0, 8, (3, 3), (1, 1), True)
        s = b.add(x1, x0, "relu")
        m = b.mean(s, keep_dims=True)
        f = b.reshape(m, (8,))
        return b.graph(b.dense(f, 5))
    if kind == "flatten":
        b = GraphBuilder(rng, (4, 3, 6))
        x = b.conv(b.input, 4, (2, 2), (1, 1), True, "relu")
        f = b.reshape(x, (b.tensors[x].size,))
        return b.graph(b.dense(f, 7))
    raise ValueError(kind)


GRAPH_KINDS = [
    "conv",
    "conv-wide",
    "conv1ch",
    "dwconv",
    "dwconv-wide",
    "pool",
    "mean-dense",
    "residual",
    "flatten",
]
