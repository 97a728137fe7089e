"""Datasets: arrays for evaluation, calibration and (optionally) training, validated on creation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import DatasetError


@dataclass(frozen=True)
class Dataset:
    """Float32 inputs ``(N, ...)`` and labels/targets for one task.

    ``x_calib`` is a small slice of the training data used for int8 calibration; ``x_train`` may be
    ``None`` for a user's dataset without a training split (then only post-training techniques run).
    """

    name: str
    x_eval: np.ndarray
    y_eval: np.ndarray
    x_calib: np.ndarray
    x_train: np.ndarray | None = None
    y_train: np.ndarray | None = None
    n_classes: int | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key in ("x_eval", "y_eval", "x_calib", "x_train", "y_train"):
            arr = getattr(self, key)
            if arr is None:
                continue
            if not isinstance(arr, np.ndarray) or arr.size == 0:
                raise DatasetError(f"dataset {self.name!r}: {key} is empty or not an array")
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr)).sum())
                raise DatasetError(
                    f"dataset {self.name!r}: {key} holds {bad} NaN/inf values; clean or impute them first"
                )
        if len(self.x_eval) != len(self.y_eval):
            raise DatasetError(
                f"dataset {self.name!r}: x_eval has {len(self.x_eval)} rows but y_eval {len(self.y_eval)}"
            )
        if (self.x_train is None) != (self.y_train is None):
            raise DatasetError(f"dataset {self.name!r}: give both x_train and y_train, or neither")
        if self.x_train is not None and self.y_train is not None and len(self.x_train) != len(self.y_train):
            raise DatasetError(
                f"dataset {self.name!r}: x_train has {len(self.x_train)} rows but y_train {len(self.y_train)}"
            )
        if self.n_classes is not None:
            for key in ("y_eval", "y_train"):
                y = getattr(self, key)
                if y is None:
                    continue
                if y.dtype.kind not in "iu" or y.min() < 0 or y.max() >= self.n_classes:
                    raise DatasetError(
                        f"dataset {self.name!r}: {key} must hold integer labels in [0, {self.n_classes - 1}]"
                        f" (found dtype {y.dtype}, range [{y.min()}, {y.max()}])"
                    )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_eval.shape[1:])
