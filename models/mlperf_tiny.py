"""The four MLPerf Tiny reference architectures at their published input shapes, for performance only.

Untrained (He-initialised, BatchNorm at its initial statistics) and fed **synthetic random inputs**
(standard normal rows, labels drawn at random): their accuracy means nothing, so a task built on them
must set ``performance_only = true`` in its suite, and it is then listed by latency and energy only.
The real datasets (Speech Commands, CIFAR-10, Visual Wake Words, ToyADMOS) are not shipped in any
package here; what these recipes measure is the cost of the published networks on a target.

* ``mlperf_kws_dscnn``: DS-CNN, 49x10x1 MFCCs, 12 classes (:func:`~harness.ir.architectures.ds_cnn_kws`)
* ``mlperf_ic_resnet8``: ResNet-8, 32x32x3 images, 10 classes (:func:`~harness.ir.architectures.resnet8`)
* ``mlperf_vww_mobilenet``: MobileNetV1 alpha 0.25, 96x96x3 images, 2 classes
  (:func:`~harness.ir.architectures.mobilenet_v1`)
* ``mlperf_ad_autoencoder``: dense autoencoder 640-128x4-8-128x4-640 on 640 log-mel features
  (:func:`~harness.ir.architectures.dense_autoencoder`; its 640 outputs are scored as if they were
  640 classes, which is meaningless and why the task is performance-only)

No training, so building takes under a second each (0.2-0.7 s measured); the calibration rows of static int8 are
synthetic too (standard normal), which is what the quantiser then sizes its scales for.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from harness.ir import architectures
from harness.ir.data import Dataset
from harness.ir.network import Network
from harness.pipeline.recipes import RECIPES


def _synthetic(name: str, net: Network, classes: int, n_eval: int, data_seed: int) -> Dataset:
    rng = np.random.default_rng(data_seed)
    x = rng.standard_normal((n_eval + 64, net.in_dim)).astype(np.float32)
    y = rng.integers(0, classes, n_eval + 64).astype(np.int64)
    return Dataset(
        name,
        x[:n_eval],
        y[:n_eval],
        x[n_eval:],
        n_classes=classes,
        meta={"source": "synthetic standard-normal rows: performance only, accuracy meaningless"},
    )


def _recipe(name: str, make: Callable[[int], Network], classes: int) -> None:
    def build(seed: int = 0, n_eval: int = 64, data_seed: int = 0) -> tuple[Network, Dataset]:
        net = make(seed)
        return net, _synthetic(name, net, classes, n_eval, data_seed)

    build.__doc__ = f"Untrained {name} with ``n_eval`` synthetic evaluation rows (performance only)."
    RECIPES.register(name)(build)


_recipe("mlperf_kws_dscnn", lambda s: architectures.ds_cnn_kws((49, 10, 1), 12, seed=s), 12)
_recipe("mlperf_ic_resnet8", lambda s: architectures.resnet8((32, 32, 3), 10, seed=s), 10)
_recipe("mlperf_vww_mobilenet", lambda s: architectures.mobilenet_v1((96, 96, 3), 0.25, 2, seed=s), 2)
_recipe("mlperf_ad_autoencoder", lambda s: architectures.dense_autoencoder(640, 128, 8, 4, seed=s), 640)
