"""Quality metrics on model outputs, computed with scikit-learn so figures match its definitions."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ConfigError

HIGHER_IS_BETTER = {"accuracy": True, "top_k": True, "auc": True, "macro_f1": True, "mae": False}


def _scores_1d(out: np.ndarray) -> np.ndarray:
    """Positive-class score: a single output column, or the last column of two (logits/probabilities)."""
    out = out.reshape(len(out), -1)
    return out[:, -1] if out.shape[1] <= 2 else out.max(axis=1)


def score(metric: str, outputs: np.ndarray, y: np.ndarray, params: dict[str, Any] | None = None) -> float:
    """The task's metric for model ``outputs`` against ``y``."""
    from sklearn import metrics as skm  # imported here: it costs ~1.5 s at CLI start-up

    params = params or {}
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if metric == "accuracy":
        pred = out.argmax(1) if out.shape[1] > 1 else (out[:, 0] > params.get("threshold", 0.0)).astype(int)
        return float(skm.accuracy_score(y, pred))
    if metric == "top_k":
        k = int(params.get("k", 5))
        return float(skm.top_k_accuracy_score(y, out, k=k, labels=np.arange(out.shape[1])))
    if metric == "auc":
        return float(skm.roc_auc_score(y, _scores_1d(out)))
    if metric == "macro_f1":
        return float(skm.f1_score(y, out.argmax(1), average="macro"))
    if metric == "mae":
        return float(skm.mean_absolute_error(np.asarray(y, dtype=np.float64).reshape(len(y), -1), out))
    raise ConfigError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_BETTER)}")


def passes(metric: str, value: float | None, minimum: float) -> bool:
    if value is None:
        return False
    return value >= minimum if HIGHER_IS_BETTER[metric] else value <= minimum
