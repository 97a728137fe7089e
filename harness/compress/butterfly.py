"""Butterfly factorisation (log2 n sparse factors, Dao et al. 2019): projection, then fine-tuning.

Each selected square power-of-two dense layer becomes a :class:`harness.ir.layers.Butterfly` whose
twiddles come from our hierarchical projection (:func:`harness.ir.layers.butterfly.butterfly_project`),
then the whole network is fine-tuned. The projection alone loses most of a trained layer (relative
error > 0.9 at n >= 256, see the reference notes), so fine-tuning is not optional here. Layers that
are not square powers of two are skipped with ``layers="hidden"`` (listed in the history) and raise
:class:`CompressionError` when named explicitly.

``export_form="monarch"`` exports each trained butterfly as the two block-diagonal factors its
levels multiply into (same function, fewer and larger ops: much faster in ONNX Runtime and LiteRT
than ``"levels"``, at ``n (2**(L//2) + n/2**(L//2))`` MACs instead of ``2 n log2 n``).
"""

from __future__ import annotations

from typing import Literal

from ..errors import CompressionError
from ..ir.layers import Butterfly, Layer
from ..ir.layers.butterfly import check_butterfly_fits
from .base import COMPRESSORS
from .refit import RefitCompressor, dense_weight, require_fine_tuning


@COMPRESSORS.register("butterfly")
class ButterflyCompressor(RefitCompressor):
    """Dense → butterfly (log2 n factors with 2 non-zeros per row), fine-tuned."""

    name = "butterfly"

    def __init__(
        self,
        *,
        layers: Literal["hidden", "all"] | list[int] = "hidden",
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 128,
        seed: int = 0,
        export_form: Literal["levels", "monarch"] = "levels",
    ) -> None:
        self.layers = layers
        self.export_form = export_form
        require_fine_tuning(epochs, "butterfly")
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def replace(self, idx: int, layer: Layer, explicit: bool) -> Layer | None:
        try:
            check_butterfly_fits(f"layer {idx}", layer.in_dim, layer.out_dim)
        except CompressionError:
            if explicit:
                raise
            return None
        return Butterfly.from_dense(dense_weight(layer), layer.bias, layer.act, self.export_form)

    def help_sizes(self) -> str:
        return "butterfly needs square layers whose size is a power of two (e.g. 256x256, 1024x1024)"
