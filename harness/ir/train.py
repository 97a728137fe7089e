"""NumPy training and fine-tuning of a :class:`Network` (no torch): Adam on softmax cross-entropy.

Every layer type needs ``params()`` (the arrays updated in place) and ``backward(x, dz) -> (dx,
grads)`` (``dz`` is the gradient at the pre-activation output). Structured layers (Monarch,
butterfly, low-rank) carry these methods; :class:`Dense` is handled here by its known form
(``x @ w + b``). Convolutional layers (:class:`~.layers.ShapedLayer`) bring their own training-mode
pass, ``train_forward``/``train_backward`` (BatchNorm uses batch statistics there and updates its
running ones, which the best-epoch snapshot keeps with the weights). Pruned weights stay zero: give
``masks`` (one array per parameter, or ``None``) and both the gradients and the weights are
multiplied by the mask at every step.

NumPy rather than torch: no multi-gigabyte dependency, the same arithmetic on every machine (CI has
two cores), and the small networks this suite trains (MLPs, the CNNs of
:mod:`harness.ir.architectures`) train in seconds with im2col and BLAS.

Deterministic for a given ``seed`` (shuffling is the only randomness; NumPy's BLAS is deterministic
for a fixed thread count).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import CompressionError
from .layers import Dense, Layer, Pointwise, ShapedLayer
from .layers.conv import _Conv
from .network import Network

Masks = dict[int, list[np.ndarray | None]]


def layer_params(layer: Layer) -> list[np.ndarray]:
    """The trainable arrays of a layer (updated in place)."""
    if isinstance(layer, Dense):
        return [layer.w, layer.b]
    fn = getattr(layer, "params", None)
    if fn is None:
        raise CompressionError(
            f"layer {layer.kind} cannot be trained: it has no params()/backward(); "
            "add them to its module (see harness/ir/layers/monarch.py)"
        )
    return list(fn())


def layer_backward(layer: Layer, x: np.ndarray, dz: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """``(dx, grads)`` for a layer given its input and the gradient at its pre-activation output."""
    if isinstance(layer, Dense):
        return dz @ layer.w.T, [x.T @ dz, dz.sum(axis=0)]
    return layer.backward(x, dz)  # type: ignore[attr-defined, no-any-return]


def softmax_xent(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y] + 1e-12).mean())
    p[np.arange(n), y] -= 1.0
    return loss, (p / n).astype(np.float32)


def accuracy(net: Network, x: np.ndarray, y: np.ndarray, batch: int = 1024) -> float:
    """Top-1 accuracy of the float IR."""
    hits = 0
    for i in range(0, len(x), batch):
        hits += int((net.forward(x[i : i + batch]).argmax(axis=1) == y[i : i + batch]).sum())
    return hits / max(len(x), 1)


@dataclass
class TrainResult:
    """What a training run did: epochs run, the epoch kept, losses and validation accuracies."""

    epochs: int
    best_epoch: int
    loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    seconds: float = 0.0


def layer_buffers(layer: Layer) -> list[np.ndarray]:
    """Non-trainable arrays that training changes (BatchNorm running statistics), kept with the best epoch."""
    return layer.buffers() if isinstance(layer, ShapedLayer) else []


def _step_grads(net: Network, xb: np.ndarray, yb: np.ndarray) -> tuple[float, list[list[np.ndarray]]]:
    xs = [xb]
    zs: list[object] = []  # pre-activation outputs (dense family) or train_forward caches (shaped layers)
    for layer in net.layers:
        if isinstance(layer, ShapedLayer):
            y, cache = layer.train_forward(xs[-1])
            zs.append(cache)
            xs.append(y)
            continue
        z = layer.linear(xs[-1]) + layer.bias
        zs.append(z)
        xs.append(np.maximum(z, 0.0) if layer.act == "relu" else z)
    loss, d = softmax_xent(xs[-1], yb)
    grads: list[list[np.ndarray]] = [[] for _ in net.layers]
    for i in reversed(range(len(net.layers))):
        layer = net.layers[i]
        if isinstance(layer, ShapedLayer):
            d, grads[i] = layer.train_backward(zs[i], d)
            continue
        if layer.act == "relu":
            d = d * (zs[i] > 0)  # type: ignore[operator]
        d, grads[i] = layer_backward(layer, xs[i], d.astype(np.float32))
    return loss, grads


def fit(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    weight_decay: float = 0.0,
    masks: Masks | None = None,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    trainable: Sequence[int] | None = None,
    schedule: str = "constant",
) -> TrainResult:
    """Train ``net`` in place with Adam; with a validation set, keep the weights of the best epoch.

    Args:
        masks: ``{layer index: [mask per param or None]}``; masked entries stay exactly zero.
        trainable: layer indices to update (default: all).
        weight_decay: decoupled (AdamW-style) decay, applied to weights only (not to 1-D biases).
        schedule: ``"constant"`` learning rate or ``"cosine"`` decay to zero over the run.
    """
    import time

    t0 = time.perf_counter()
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    params = [layer_params(layer) for layer in net.layers]
    kept = [params[i] + layer_buffers(layer) for i, layer in enumerate(net.layers)]  # the best-epoch snapshot
    train_idx = set(range(len(net.layers)) if trainable is None else trainable)
    masks = masks or {}
    for i, ms in masks.items():
        for p, m in zip(params[i], ms, strict=False):
            if m is not None:
                p *= m
    m1 = [[np.zeros_like(p) for p in ps] for ps in params]
    m2 = [[np.zeros_like(p) for p in ps] for ps in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    step = 0
    total_steps = max(1, epochs * -(-len(x) // batch_size))
    result = TrainResult(epochs=epochs, best_epoch=0)
    best: list[list[np.ndarray]] | None = None
    best_acc = -1.0
    if x_val is not None and y_val is not None:
        best_acc = accuracy(net, x_val, y_val)
        best = [[p.copy() for p in ps] for ps in kept]
        result.val_acc.append(best_acc)
    for ep in range(1, epochs + 1):
        order = rng.permutation(len(x))
        losses = []
        for s in range(0, len(x), batch_size):
            idx = order[s : s + batch_size]
            loss, grads = _step_grads(net, x[idx], y[idx])
            losses.append(loss)
            step += 1
            c1, c2 = 1 - b1**step, 1 - b2**step
            lr_t = lr * 0.5 * (1 + np.cos(np.pi * (step - 1) / total_steps)) if schedule == "cosine" else lr
            for i in train_idx:
                lm = masks.get(i, [])
                for j, (p, g) in enumerate(zip(params[i], grads[i], strict=True)):
                    mask = lm[j] if j < len(lm) else None
                    if mask is not None:
                        g = g * mask
                    m1[i][j] = b1 * m1[i][j] + (1 - b1) * g
                    m2[i][j] = b2 * m2[i][j] + (1 - b2) * g * g
                    upd = lr_t * (m1[i][j] / c1) / (np.sqrt(m2[i][j] / c2) + eps)
                    if weight_decay and p.ndim > 1:
                        upd = upd + lr_t * weight_decay * p
                    p -= upd.astype(p.dtype)
                    if mask is not None:
                        p *= mask
        result.loss.append(float(np.mean(losses)))
        if x_val is not None and y_val is not None:
            acc = accuracy(net, x_val, y_val)
            result.val_acc.append(acc)
            if acc > best_acc:
                best_acc, result.best_epoch = acc, ep
                best = [[p.copy() for p in ps] for ps in kept]
        else:
            result.best_epoch = ep
    if best is not None:
        for ps, bs in zip(kept, best, strict=True):
            for p, bp in zip(ps, bs, strict=True):
                p[...] = bp
    result.seconds = time.perf_counter() - t0
    return result


def split_train_val(
    x: np.ndarray, y: np.ndarray, *, val_frac: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic split of a training set into train and validation rows (never the eval set)."""
    rng = np.random.default_rng(seed + 7919)
    idx = rng.permutation(len(x))
    n_val = max(1, int(round(len(x) * val_frac)))
    va, tr = idx[:n_val], idx[n_val:]
    return x[tr], y[tr], x[va], y[va]


def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    hidden: Sequence[int],
    n_classes: int,
    *,
    seed: int = 0,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 0.0,
) -> tuple[Network, TrainResult]:
    """Train a ReLU MLP from scratch (He initialisation), keeping the best epoch on a 10 % validation split."""
    rng = np.random.default_rng(seed)
    dims = [x.shape[1], *hidden, n_classes]
    layers: list[Layer] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        w = (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(np.float32)
        layers.append(Dense(w, np.zeros(b, np.float32), "relu" if i < len(dims) - 2 else None))
    net = Network(layers)
    xtr, ytr, xva, yva = split_train_val(x, y, seed=seed)
    res = fit(
        net,
        xtr,
        ytr,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        weight_decay=weight_decay,
        x_val=xva,
        y_val=yva,
    )
    return net, res


def train_network(
    net: Network,
    x: np.ndarray,
    y: np.ndarray,
    *,
    seed: int = 0,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 128,
    weight_decay: float = 0.0,
    schedule: str = "constant",
) -> TrainResult:
    """Train an initialised network (e.g. from :mod:`harness.ir.architectures`) in place, keeping the best
    epoch on a 10 % validation split of ``x``; inputs are flat rows ``(N, net.in_dim)``."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if x.shape[1] != net.in_dim:
        raise CompressionError(f"the network takes rows of {net.in_dim} values but the data has {x.shape[1]}")
    xtr, ytr, xva, yva = split_train_val(x, y, seed=seed)
    return fit(
        net,
        xtr,
        ytr,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        weight_decay=weight_decay,
        x_val=xva,
        y_val=yva,
        schedule=schedule,
    )


def sklearn_mlp(
    x: np.ndarray, y: np.ndarray, hidden: Sequence[int], *, seed: int, max_iter: int = 200
) -> Network:
    """Train a ReLU MLP classifier with scikit-learn's ``MLPClassifier`` (deterministic in ``seed``, early
    stopping on its own 10 % split) and return its IR; the recipes of the small bases use it."""
    import warnings

    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        tuple(hidden), random_state=seed, max_iter=max_iter, early_stopping=True, n_iter_no_change=20
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected in quick recipes
        clf.fit(x, y)
    ws, bs = clf.coefs_, clf.intercepts_
    layers: list[Layer] = [Dense(w, b, "relu") for w, b in zip(ws[:-1], bs[:-1], strict=True)]
    layers.append(Dense(ws[-1], bs[-1]))
    return Network(layers)


# --- helpers shared by the fine-tuning compressors (prune, structured, lowrank, monarch, butterfly) ---


def training_data(data: object, technique: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train/validation rows of a :class:`harness.ir.data.Dataset`, or a CompressionError saying why not."""
    x, y = getattr(data, "x_train", None), getattr(data, "y_train", None)
    if x is None or y is None:
        raise CompressionError(
            f"{technique} fine-tunes the model and needs a training split; this dataset "
            f"({getattr(data, 'name', '?')}) has none. Use a recipe with x_train/y_train or a post-training "
            "technique (int8)"
        )
    return split_train_val(np.asarray(x, np.float32), np.asarray(y, np.int64))


def calibrate_inner(net: Network, x: np.ndarray) -> None:
    """Let layers with internal int8 tensors (Monarch, butterfly, low-rank) record their ranges."""
    acts = net.activations(np.asarray(x, dtype=np.float32))
    for i, layer in enumerate(net.layers):
        fn = getattr(layer, "calibrate", None)
        if fn is not None:
            fn(acts[i])


def model_stats(net: Network) -> dict[str, object]:
    """Parameters, MACs and file sizes (raw and gzip) of a float network's ONNX and TFLite files (no
    TFLite file nor size when a layer has no TFLite form yet)."""
    import gzip

    from .export.onnx_export import network_to_onnx_bytes
    from .export.tflite_export import network_to_tflite

    files = {"onnx": network_to_onnx_bytes(net)}
    with contextlib.suppress(NotImplementedError):  # a layer without a TFLite form yet: ONNX only, no size
        files["tflite"] = network_to_tflite(net)
    size: dict[str, int] = {}
    for fmt, blob in files.items():
        size[fmt] = len(blob)
        size[f"{fmt}_gzip"] = len(gzip.compress(blob, 9, mtime=0))
    return {"n_params": net.n_params(), "macs": net.macs(), "model_bytes": size, "files": files}


def matrix_layer(layer: Layer) -> Layer | None:
    """The layer as one ``(in, out)`` matrix map on vectors, or None when it is not one.

    Dense-family layers are themselves; a pointwise convolution (1x1 kernel, stride 1) and a
    :class:`~.layers.Pointwise` wrapper are the dense layer (no activation) they apply at every position;
    other shaped layers (kxk convolutions, pooling...) are None.
    """
    if not isinstance(layer, ShapedLayer):
        return layer
    if isinstance(layer, _Conv) and layer.pointwise and layer.stride == (1, 1):
        w = layer.w4
        return Dense(w.reshape(w.shape[2], w.shape[3]), layer.b)
    if isinstance(layer, Pointwise):
        return layer.inner
    return None


def select_layers(net: Network, layers: str | Sequence[int], technique: str) -> list[int]:
    """Indices named by ``layers``: ``"hidden"`` (neither the first nor the last layer), ``"all"``, or a list.

    ``"hidden"`` and ``"all"`` only name layers that are one matrix map (:func:`matrix_layer`: every layer
    of an MLP; dense layers and pointwise convolutions of a CNN).
    """
    n = len(net.layers)
    if layers == "all":
        return [i for i in range(n) if matrix_layer(net.layers[i]) is not None]
    if layers == "hidden":
        return [i for i in range(1, n - 1) if matrix_layer(net.layers[i]) is not None]
    if isinstance(layers, str):
        raise CompressionError(f"{technique}: layers={layers!r}; use 'hidden', 'all' or a list of indices")
    bad = [i for i in layers if not -n <= i < n]
    if bad:
        raise CompressionError(f"{technique}: layer indices {bad} out of range; the network has {n} layers")
    return sorted({i % n for i in layers})
