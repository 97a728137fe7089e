"""A residual block ``y = act(body(x) + shortcut(x))`` that keeps the network a sequential stack.

``body`` and ``shortcut`` are short lists of layers run in order; ``shortcut=None`` is the identity
(then the body must keep the sample shape). ResNet-8's blocks are ``Residual([conv, bn, conv, bn],
None | [conv 1x1 stride 2], "relu")``. Parameters, MACs, training and ONNX export come from the inner
layers; the add itself has no multiply-accumulates. Saved as the inner layers' states under the
prefixes ``body<i>.`` and ``shortcut<i>.`` (each with its ``kind``), so blocks may nest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import LAYERS, Layer, act_grad, apply_act, check_act
from .shaped import ShapedLayer

if TYPE_CHECKING:
    from ..export.onnx_graph import OnnxGraph
    from ..export.tflite_graph import TfliteGraph
    from ..quant import QParams


def _check_chain(kind: str, layers: Sequence[Layer]) -> None:
    for a, b in zip(layers, layers[1:], strict=False):
        if a.out_shape != b.in_shape:
            raise ValueError(
                f"{kind}: {a.kind} outputs {a.out_shape} but the next {b.kind} expects {b.in_shape}"
            )


def _run(layers: Sequence[Layer], x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = layer.forward(x)
    return x


@LAYERS.register("residual")
class Residual(ShapedLayer):
    """``act(body(x) + shortcut(x))``; ``shortcut=None`` adds ``x`` itself."""

    kind = "residual"

    def __init__(
        self, body: Sequence[Layer], shortcut: Sequence[Layer] | None = None, act: str | None = "relu"
    ) -> None:
        if not body:
            raise ValueError("residual: the body needs at least one layer")
        self.body = list(body)
        self.shortcut = list(shortcut) if shortcut else []
        self.act = check_act(self.kind, act)
        _check_chain("residual body", self.body)
        _check_chain("residual shortcut", self.shortcut)
        sc_in = self.shortcut[0].in_shape if self.shortcut else self.body[0].in_shape
        sc_out = self.shortcut[-1].out_shape if self.shortcut else self.body[0].in_shape
        if sc_in != self.body[0].in_shape or sc_out != self.body[-1].out_shape:
            raise ValueError(
                f"residual: the body maps {self.body[0].in_shape} to {self.body[-1].out_shape} but the shortcut "
                f"maps {sc_in} to {sc_out}; give a shortcut (e.g. a 1x1 conv) that matches the body"
            )

    @property
    def children(self) -> list[Layer]:
        return self.body + self.shortcut

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.body[0].in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.body[-1].out_shape

    def linear(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        return _run(self.body, x) + (_run(self.shortcut, x) if self.shortcut else x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return apply_act(self.linear(x), self.act).astype(np.float32, copy=False)

    # --- training: composed from the inner layers ---
    def _trainable(self) -> list[ShapedLayer]:
        bad = [la.kind for la in self.children if not isinstance(la, ShapedLayer)]
        if bad:
            raise NotImplementedError(
                f"residual: cannot train inner layers {bad}; use convolutional layers inside"
            )
        return self.children  # type: ignore[return-value]

    def params(self) -> list[np.ndarray]:
        return [p for la in self._trainable() for p in la.params()]

    def buffers(self) -> list[np.ndarray]:
        return [p for la in self._trainable() for p in la.buffers()]

    def train_forward(self, x: np.ndarray) -> tuple[np.ndarray, Any]:
        self._trainable()
        caches: list[Any] = []
        y = x
        for la in self.body:
            y, c = la.train_forward(y)  # type: ignore[attr-defined]
            caches.append(c)
        s = x
        for la in self.shortcut:
            s, c = la.train_forward(s)  # type: ignore[attr-defined]
            caches.append(c)
        z = y + s
        return apply_act(z, self.act), (caches, z)

    def train_backward(self, cache: Any, dy: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        caches, z = cache
        dz = act_grad(z, dy, self.act)
        grads: list[list[np.ndarray]] = [[] for _ in self.children]
        nb = len(self.body)
        d = dz
        for i in reversed(range(nb)):
            d, grads[i] = self.body[i].train_backward(caches[i], d)  # type: ignore[attr-defined]
        ds = dz
        for i in reversed(range(len(self.shortcut))):
            ds, grads[nb + i] = self.shortcut[i].train_backward(caches[nb + i], ds)  # type: ignore[attr-defined]
        return d + ds, [g for gs in grads for g in gs]

    # --- cost, persistence, export ---
    def n_params(self) -> int:
        return sum(la.n_params() for la in self.children)

    def macs(self) -> int:
        return sum(la.macs() for la in self.children)

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "act": self.act or "",
            "n_body": len(self.body),
            "n_shortcut": len(self.shortcut),
        }
        for prefix, layers in (("body", self.body), ("shortcut", self.shortcut)):
            for i, la in enumerate(layers):
                out[f"{prefix}{i}.kind"] = la.kind
                for key, val in la.state().items():
                    out[f"{prefix}{i}.{key}"] = val
        return out

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Residual:
        def part(prefix: str, n: int) -> list[Layer]:
            layers = []
            for i in range(n):
                head = f"{prefix}{i}."
                sub = {k[len(head) :]: v for k, v in state.items() if k.startswith(head)}
                layers.append(LAYERS.get(str(sub.pop("kind"))).from_state(sub))
            return layers

        return cls(
            part("body", int(state["n_body"])),
            part("shortcut", int(state["n_shortcut"])) or None,
            str(state["act"]) or None,
        )

    def to_onnx(self, g: OnnxGraph, x: str) -> str:
        y = x
        for la in self.body:
            y = la.to_onnx(g, y)
        s = x
        for la in self.shortcut:
            s = la.to_onnx(g, s)
        return g.activation(g.node("Add", [y, s]), self.act)

    # --- TFLite: body and shortcut ops, then ADD with the fused activation ---
    def _tflite(self, g: TfliteGraph, x: int, dynamic: bool) -> int:
        from ..export.tflite_conv import add

        y = x
        for la in self.body:
            y = la.to_tflite_dynamic(g, y) if dynamic else la.to_tflite(g, y)
        s = x
        for la in self.shortcut:
            s = la.to_tflite_dynamic(g, s) if dynamic else la.to_tflite(g, s)
        return add(g, y, s, act=self.act)

    def to_tflite(self, g: TfliteGraph, x: int) -> int:
        return self._tflite(g, x, False)

    def to_tflite_dynamic(self, g: TfliteGraph, x: int) -> int:
        return self._tflite(g, x, True)

    def to_tflite_int8(self, g: TfliteGraph, x: int, qin: QParams, qout: QParams) -> int:
        """int8 body and shortcut with the parameters that :func:`harness.ir.quant.calibrate` stored as
        ``inner_q`` (a :class:`harness.ir.quant.BlockQ`), then an int8 ADD requantising to ``qout``."""
        from ..export.tflite_conv import add_int8

        inner = getattr(self, "inner_q", None)
        if inner is None or (len(inner.body), len(inner.shortcut)) != (len(self.body), len(self.shortcut)):
            raise ValueError(
                "residual: int8 export needs the parameters of the tensors inside the block; calibrate the "
                "exported network first (harness.ir.export.prepare.quantisable(net, x_calib))"
            )
        y, qy = x, qin
        for la, q in zip(self.body, inner.body, strict=True):
            y, qy = la.to_tflite_int8(g, y, qy, q), q
        s, qs = x, qin
        for la, q in zip(self.shortcut, inner.shortcut, strict=True):
            s, qs = la.to_tflite_int8(g, s, qs, q), q
        return add_int8(g, y, s, qy, qs, qout, act=self.act)
