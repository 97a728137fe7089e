"""Low-rank (truncated SVD) factorisation at a parameter budget, then fine-tuning.

The baseline that structured factorisations must beat: ``match="monarch"`` (default) or
``match="butterfly"`` picks, for every replaced layer, the largest rank whose weights fit in the
budget of that factorisation on the same layer; ``params_budget`` gives the budget per layer
directly and ``rank`` the rank itself.
"""

from __future__ import annotations

from typing import Literal

from ..errors import CompressionError
from ..ir.layers import Layer, LowRank
from ..ir.layers.monarch import check_monarch_fits
from .base import COMPRESSORS
from .refit import RefitCompressor, dense_weight, require_fine_tuning


def monarch_budget(layer: Layer, nblocks: int | None, name: str) -> int:
    """Weights of the Monarch replacement of ``layer`` (same rule as the monarch technique)."""
    nb = check_monarch_fits(name, layer.in_dim, layer.out_dim, nblocks)
    return nb * layer.in_dim + nb * layer.out_dim


def butterfly_budget(layer: Layer, name: str) -> int:
    from ..ir.layers.butterfly import check_butterfly_fits

    check_butterfly_fits(name, layer.in_dim, layer.out_dim)
    n = layer.in_dim
    return 2 * n * (n.bit_length() - 1)


@COMPRESSORS.register("lowrank")
class LowRankSVD(RefitCompressor):
    """Truncated SVD of the selected layers at a rank or parameter budget, then fine-tuning."""

    name = "lowrank"

    def __init__(
        self,
        *,
        match: Literal["monarch", "butterfly"] | None = "monarch",
        rank: int | None = None,
        params_budget: int | None = None,
        nblocks: int | None = None,
        layers: Literal["hidden", "all"] | list[int] = "hidden",
        epochs: int = 15,
        lr: float = 1e-3,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        self.match = match
        self.rank = rank
        self.params_budget = params_budget
        self.nblocks = nblocks
        self.layers = layers
        require_fine_tuning(epochs, "lowrank")
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        if rank is not None and rank < 1:
            raise ValueError("rank must be >= 1")

    def layer_rank(self, idx: int, layer: Layer, explicit: bool) -> int | None:
        name = f"layer {idx}"
        if self.rank is not None:
            return self.rank
        if self.params_budget is not None:
            budget = self.params_budget
        else:
            try:
                if self.match == "butterfly":
                    budget = butterfly_budget(layer, name)
                else:
                    budget = monarch_budget(layer, self.nblocks, name)
            except CompressionError:
                if explicit:
                    raise
                return None
        return max(1, budget // (layer.in_dim + layer.out_dim))

    def replace(self, idx: int, layer: Layer, explicit: bool) -> Layer | None:
        r = self.layer_rank(idx, layer, explicit)
        if r is None:
            return None
        if r >= min(layer.in_dim, layer.out_dim):
            raise CompressionError(
                f"lowrank: rank {r} for layer {idx} ({layer.in_dim}x{layer.out_dim}) saves nothing; "
                f"use a rank below {min(layer.in_dim, layer.out_dim)} (or a smaller params_budget)"
            )
        return LowRank.from_dense(dense_weight(layer), layer.bias, layer.act, r)

    def help_sizes(self) -> str:
        if self.match == "butterfly":
            return "matching a butterfly budget needs square power-of-two layers; give rank= instead"
        return "matching a Monarch budget needs layers whose sizes share a divisor; give rank= instead"
