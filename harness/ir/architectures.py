"""Builders of convolutional networks in the IR (He-initialised, untrained; train with
:func:`harness.ir.train.train_network`, e.g. ``epochs=20, lr=1e-2, batch_size=32, schedule="cosine"``
for the digits CNN and ``epochs=40`` with the same settings for the MNIST-1D CNN).

Every builder takes flat input rows (``(B, prod(input))``, as datasets store them) and starts with a
``Reshape``. Counts below are what :meth:`Network.n_params` / :meth:`Network.macs` return; BatchNorm
counts its four stored vectors per channel (as Keras does), and after
:func:`harness.ir.network.fold_batchnorm` its parameters and MACs disappear into the convolutions.

* :func:`digits_cnn`: 8x8x1 digits, conv 3x3x16 relu, max pool 2, conv 3x3x32 relu, global average
  pool, dense 10 (5,130 parameters, 83,264 MACs).
* :func:`mnist1d_cnn`: MNIST-1D (40 samples), 3 x conv1d k5 stride 2 32 ch relu, flatten, dense 10
  (12,106 parameters, 81,600 MACs).
* :func:`ds_cnn_kws`: MLPerf Tiny keyword spotting DS-CNN on 49x10 MFCCs: conv 10x4 stride 2 64 ch,
  4 x (depthwise 3x3, pointwise 64), each followed by BatchNorm + relu, average pool, dense 12:
  24,908 parameters (22,604 once BatchNorm is folded), 2,656,768 MACs folded.
* :func:`resnet8`: MLPerf Tiny image classification ResNet-8 on 32x32x3: conv 16, three residual
  stacks of 16/32/64 channels (1x1 stride-2 shortcut convs in the last two), average pool, dense 10:
  78,666 parameters (77,706 folded), 12,501,632 MACs folded.
* :func:`mobilenet_v1`: MLPerf Tiny visual wake words MobileNetV1 (width 0.25) on 96x96x3: conv 3x3
  stride 2 8 ch, 13 depthwise-separable blocks (16, 32, 32, 64, 64, 128 x 6, 256, 256 channels; stride
  2 at blocks 2, 4, 6, 12), each convolution followed by BatchNorm + relu, average pool, dense 2.
* :func:`dense_autoencoder`: MLPerf Tiny anomaly detection autoencoder on 640 inputs: dense
  640-128-128-128-128-8-128-128-128-128-640, relu between (the reference's BatchNorms are folded
  into the dense layers here, so they carry no parameters of their own).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .layers import (
    AvgPool2D,
    BatchNorm,
    Conv1D,
    Conv2D,
    Dense,
    DepthwiseConv2D,
    Flatten,
    GlobalAveragePool,
    Layer,
    MaxPool2D,
    Reshape,
    Residual,
)
from .network import Network


def _he(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def conv2d(
    rng: np.random.Generator,
    in_shape: tuple[int, ...],
    c_out: int,
    k: int | tuple[int, int],
    *,
    stride: int = 1,
    padding: str = "same",
    act: str | None = None,
) -> Conv2D:
    """A He-initialised :class:`Conv2D` with zero bias."""
    kh, kw = (k, k) if isinstance(k, int) else k
    c_in = in_shape[-1]
    w = _he(rng, (kh, kw, c_in, c_out), kh * kw * c_in)
    return Conv2D(w, np.zeros(c_out, np.float32), in_shape, stride=stride, padding=padding, act=act)


def dense(rng: np.random.Generator, n_in: int, n_out: int, act: str | None = None) -> Dense:
    """A He-initialised :class:`Dense` with zero bias."""
    return Dense(_he(rng, (n_in, n_out), n_in), np.zeros(n_out, np.float32), act)


def _input(shape: Sequence[int]) -> Reshape:
    shape = tuple(int(v) for v in shape)
    return Reshape((int(np.prod(shape)),), shape)


def digits_cnn(seed: int = 0, channels: tuple[int, int] = (16, 32), classes: int = 10) -> Network:
    """Small 2-D CNN for scikit-learn's 8x8 digits."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = [_input((8, 8, 1))]
    layers.append(conv2d(rng, layers[-1].out_shape, channels[0], 3, act="relu"))
    layers.append(MaxPool2D(layers[-1].out_shape, 2))
    layers.append(conv2d(rng, layers[-1].out_shape, channels[1], 3, act="relu"))
    layers.append(GlobalAveragePool(layers[-1].out_shape))
    layers.append(dense(rng, channels[1], classes))
    return Network(layers)


def mnist1d_cnn(seed: int = 0, channels: int = 32, length: int = 40, classes: int = 10) -> Network:
    """1-D CNN for MNIST-1D: three stride-2 convolutions of kernel 5, then a dense classifier."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = [_input((length, 1))]
    for _ in range(3):
        shape = layers[-1].out_shape
        w = _he(rng, (5, shape[-1], channels), 5 * shape[-1])
        layers.append(Conv1D(w, np.zeros(channels, np.float32), shape, stride=2, act="relu"))
    layers.append(Flatten(layers[-1].out_shape))
    layers.append(dense(rng, layers[-1].out_dim, classes))
    return Network(layers)


def ds_cnn_kws(input: tuple[int, int, int] = (49, 10, 1), classes: int = 12, seed: int = 0) -> Network:
    """MLPerf Tiny's DS-CNN for keyword spotting (channels 64, four depthwise-separable blocks)."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = [_input(input)]
    layers.append(conv2d(rng, layers[-1].out_shape, 64, (10, 4), stride=2))
    layers.append(BatchNorm(layers[-1].out_shape, act="relu"))
    for _ in range(4):
        shape = layers[-1].out_shape
        w = _he(rng, (3, 3, shape[-1]), 9)
        layers.append(DepthwiseConv2D(w, np.zeros(shape[-1], np.float32), shape))
        layers.append(BatchNorm(shape, act="relu"))
        layers.append(conv2d(rng, shape, 64, 1))
        layers.append(BatchNorm(layers[-1].out_shape, act="relu"))
    h, w_, _ = layers[-1].out_shape
    layers.append(AvgPool2D(layers[-1].out_shape, (h, w_)))
    layers.append(Flatten(layers[-1].out_shape))
    layers.append(dense(rng, 64, classes))
    return Network(layers)


def _resnet_stack(rng: np.random.Generator, shape: tuple[int, ...], c: int, stride: int) -> Residual:
    a = conv2d(rng, shape, c, 3, stride=stride)
    bn_a = BatchNorm(a.out_shape, act="relu")
    b = conv2d(rng, a.out_shape, c, 3)
    bn_b = BatchNorm(b.out_shape)
    shortcut = [conv2d(rng, shape, c, 1, stride=stride)] if stride != 1 or shape[-1] != c else None
    return Residual([a, bn_a, b, bn_b], shortcut, "relu")


def resnet8(input: tuple[int, int, int] = (32, 32, 3), classes: int = 10, seed: int = 0) -> Network:
    """MLPerf Tiny's ResNet-8 for CIFAR-10-sized images (16/32/64 channels)."""
    rng = np.random.default_rng(seed)
    layers: list[Layer] = [_input(input)]
    layers.append(conv2d(rng, layers[-1].out_shape, 16, 3))
    layers.append(BatchNorm(layers[-1].out_shape, act="relu"))
    for c, stride in ((16, 1), (32, 2), (64, 2)):
        layers.append(_resnet_stack(rng, layers[-1].out_shape, c, stride))
    h, w, _ = layers[-1].out_shape
    layers.append(AvgPool2D(layers[-1].out_shape, (h, w)))
    layers.append(Flatten(layers[-1].out_shape))
    layers.append(dense(rng, 64, classes))
    return Network(layers)


def _separable(rng: np.random.Generator, shape: tuple[int, ...], c_out: int, stride: int) -> list[Layer]:
    """Depthwise 3x3 (stride ``stride``) + BatchNorm relu, pointwise 1x1 ``c_out`` + BatchNorm relu."""
    w = _he(rng, (3, 3, shape[-1]), 9)
    dw = DepthwiseConv2D(w, np.zeros(shape[-1], np.float32), shape, stride=stride)
    pw = conv2d(rng, dw.out_shape, c_out, 1)
    return [dw, BatchNorm(dw.out_shape, act="relu"), pw, BatchNorm(pw.out_shape, act="relu")]


# MobileNetV1's 13 depthwise-separable blocks at width 1.0: (pointwise channels, depthwise stride)
_MOBILENET_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *[(512, 1)] * 5,
    (1024, 2),
    (1024, 1),
)


def mobilenet_v1(
    input: tuple[int, int, int] = (96, 96, 3), alpha: float = 0.25, classes: int = 2, seed: int = 0
) -> Network:
    """MLPerf Tiny's visual wake words MobileNetV1 (``alpha`` scales every channel count)."""
    rng = np.random.default_rng(seed)
    width = lambda c: max(1, int(c * alpha))  # noqa: E731
    layers: list[Layer] = [_input(input)]
    layers.append(conv2d(rng, layers[-1].out_shape, width(32), 3, stride=2))
    layers.append(BatchNorm(layers[-1].out_shape, act="relu"))
    for c, stride in _MOBILENET_BLOCKS:
        layers += _separable(rng, layers[-1].out_shape, width(c), stride)
    h, w, c_last = layers[-1].out_shape
    layers.append(AvgPool2D(layers[-1].out_shape, (h, w)))
    layers.append(Flatten(layers[-1].out_shape))
    layers.append(dense(rng, c_last, classes))
    return Network(layers)


def dense_autoencoder(
    n_in: int = 640, hidden: int = 128, bottleneck: int = 8, depth: int = 4, seed: int = 0
) -> Network:
    """MLPerf Tiny's anomaly detection autoencoder: ``depth`` relu layers each side of the bottleneck."""
    rng = np.random.default_rng(seed)
    dims = [n_in, *[hidden] * depth, bottleneck, *[hidden] * depth, n_in]
    return Network(
        [
            dense(rng, a, b, None if i == len(dims) - 2 else "relu")
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True))
        ]
    )
