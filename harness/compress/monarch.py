"""Monarch factorisation (Dao et al. 2022): closed-form projection of dense layers, then fine-tuning.

Each selected dense layer ``in x out`` becomes a :class:`harness.ir.layers.Monarch` with ``nblocks``
blocks in each factor (``nblocks`` must divide both sizes; default: the common divisor nearest
``sqrt(max(in, out))``, i.e. ``b`` for a ``b*b``-wide layer). With ``layers="hidden"`` (default)
layers whose sizes share no divisor are skipped and listed in the history; a layer named
explicitly, or an ``nblocks`` that does not fit, raises :class:`CompressionError` with the block
counts that would work.

``onnx_form`` picks the ONNX node layout of the layer (see :data:`harness.ir.layers.monarch.ONNX_FORMS`;
``benches/perf/monarch.py`` times them): the arithmetic and the TFLite graph are the same.
"""

from __future__ import annotations

from typing import Literal

from ..errors import CompressionError
from ..ir.layers import Layer, Monarch
from ..ir.layers.monarch import check_monarch_fits
from .base import COMPRESSORS
from .refit import RefitCompressor, dense_weight, require_fine_tuning


@COMPRESSORS.register("monarch")
class MonarchCompressor(RefitCompressor):
    """Dense → Monarch (two block-diagonal factors + transpose), fine-tuned."""

    name = "monarch"

    def __init__(
        self,
        *,
        nblocks: int | None = None,
        layers: Literal["hidden", "all"] | list[int] = "hidden",
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 128,
        seed: int = 0,
        onnx_form: Literal["matmul", "einsum", "bcast"] = "matmul",
    ) -> None:
        self.nblocks = nblocks
        self.onnx_form = onnx_form
        self.layers = layers
        require_fine_tuning(epochs, "monarch")
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def replace(self, idx: int, layer: Layer, explicit: bool) -> Layer | None:
        try:
            nb = check_monarch_fits(f"layer {idx}", layer.in_dim, layer.out_dim, self.nblocks)
        except CompressionError:
            if explicit or self.nblocks is not None:
                raise
            return None
        return Monarch.from_dense(dense_weight(layer), layer.bias, layer.act, nb, nb, self.onnx_form)

    def help_sizes(self) -> str:
        return "Monarch needs in and out sizes with a common divisor >= 2 (e.g. 256x256 with nblocks=16)"
