"""The model IR: a feed-forward stack of layers mapping a float vector to logits or scores.

Layers declare per-sample shapes (``(in_dim,)`` for dense layers, NHWC ``(H, W, C)`` or ``(L, C)`` for
convolutional ones) and the network checks that they chain. The network's input stays a flat row
``(B, in_dim)``: a convolutional network starts with a ``Reshape`` layer.

Recipes train one, compressors rewrite its layers, exporters write it to ONNX, TFLite and the MCU
blob. User models that arrive as files (ONNX/TFLite) have no IR; only post-training techniques
apply to them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .layers import LAYERS, Layer, fold_batchnorm_layers


class Network:
    """An ordered list of layers, each fusing its own activation.

    Example:
        >>> import numpy as np
        >>> from harness.ir.layers import Dense
        >>> net = Network([Dense(np.ones((4, 3)), np.zeros(3), "relu"), Dense(np.ones((3, 2)), np.zeros(2))])
        >>> net.forward(np.ones((1, 4))).tolist()
        [[12.0, 12.0]]
    """

    def __init__(self, layers: Sequence[Layer]) -> None:
        if not layers:
            raise ModelError("a network needs at least one layer")
        for i, (a, b) in enumerate(zip(layers, layers[1:], strict=False)):
            if a.out_shape != b.in_shape:
                hint = (
                    f"; insert Flatten({a.out_shape}) between them"
                    if len(b.in_shape) == 1 and a.out_dim == b.in_dim
                    else ""
                )
                raise ModelError(
                    f"layer {i} ({a.kind}) outputs samples of shape {a.out_shape} but the next layer "
                    f"({b.kind}) expects {b.in_shape}{hint}"
                )
        if len(layers[0].in_shape) != 1:
            raise ModelError(
                f"the first layer ({layers[0].kind}) expects samples of shape {layers[0].in_shape}; networks take "
                f"flat rows: start with Reshape(({layers[0].in_dim},), {layers[0].in_shape})"
            )
        self.layers = list(layers)

    @property
    def in_dim(self) -> int:
        return self.layers[0].in_dim

    @property
    def out_dim(self) -> int:
        return self.layers[-1].out_dim

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float forward pass of a ``(B, in_dim)`` batch."""
        y = np.asarray(x, dtype=np.float32)
        for layer in self.layers:
            y = layer.forward(y)
        return y

    def activations(self, x: np.ndarray) -> list[np.ndarray]:
        """Input plus the output of every layer (for calibration)."""
        out = [np.asarray(x, dtype=np.float32)]
        for layer in self.layers:
            out.append(layer.forward(out[-1]))
        return out

    def n_params(self) -> int:
        return sum(layer.n_params() for layer in self.layers)

    def macs(self) -> int:
        return sum(layer.macs() for layer in self.layers)

    def describe(self) -> str:
        """One line such as ``64-dense-128-dense-10`` (shapes as ``8x8x16`` for convolutional layers)."""
        parts = [str(self.in_dim)]
        for layer in self.layers:
            parts += [layer.kind, "x".join(map(str, layer.out_shape))]
        return "-".join(parts)

    # --- persistence (npz with a JSON manifest, no pickle) ---
    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {}
        manifest = []
        for i, layer in enumerate(self.layers):
            names: list[str] = []
            scalars: dict[str, object] = {}
            for key, val in layer.state().items():
                if isinstance(val, np.ndarray):
                    arrays[f"{i}.{key}"] = val
                    names.append(key)
                else:
                    scalars[key] = val
            manifest.append({"kind": layer.kind, "scalars": scalars, "arrays": names})
        arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Network:
        try:
            z = np.load(io.BytesIO(data), allow_pickle=False)
            manifest = json.loads(bytes(z["manifest"]).decode())
            layers = []
            for i, entry in enumerate(manifest):
                state = dict(entry["scalars"])
                for key in entry["arrays"]:
                    state[key] = z[f"{i}.{key}"]
                layers.append(LAYERS.get(entry["kind"]).from_state(state))
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot read network: {e}") from e
        return cls(layers)

    def save(self, path: Path) -> None:
        path.write_bytes(self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> Network:
        return cls.from_bytes(Path(path).read_bytes())


def fold_batchnorm(net: Network) -> Network:
    """A copy of ``net`` with every BatchNorm folded into the convolution (or dense layer) before it.

    The result computes the same function in inference mode; exporters and int8 quantisation use it.
    """
    return Network(fold_batchnorm_layers(Network.from_bytes(net.to_bytes()).layers))
