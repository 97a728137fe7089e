"""Quality metrics on model outputs, computed with scikit-learn so figures match its definitions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError, DatasetError, ModelError

HIGHER_IS_BETTER = {"accuracy": True, "top_k": True, "auc": True, "macro_f1": True, "mae": False}
PARAMS: dict[str, dict[str, str]] = {  # the metric_params each metric takes, with what they hold
    "accuracy": {"threshold": "a finite number (single-output models: positive above it)"},
    "top_k": {"k": "an integer >= 1, below the number of classes"},
    "auc": {},
    "macro_f1": {},
    "mae": {},
}


def check_params(metric: str, params: dict[str, Any]) -> None:
    """Refuse unknown ``metric_params`` keys and values of the wrong type or range (:class:`ConfigError`)."""
    known = PARAMS.get(metric)
    if known is None:
        raise ConfigError(f"unknown metric {metric!r}; known: {sorted(HIGHER_IS_BETTER)}")
    unknown = sorted(set(params) - set(known))
    if unknown:
        takes = ", ".join(f"{k} ({v})" for k, v in known.items()) or "none"
        raise ConfigError(f"metric {metric!r} has no parameter {unknown}; it takes: {takes}")
    if "k" in params:
        k = params["k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"top_k: k = {k!r}; give an integer >= 1 (e.g. k = 5)")
    if "threshold" in params:
        t = params["threshold"]
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise ConfigError(f"accuracy: threshold = {t!r}; give a finite number (e.g. threshold = 0.5)")


def _scores_1d(out: np.ndarray) -> np.ndarray:
    """Positive-class score: a single output column, or the last column of two (logits/probabilities)."""
    out = out.reshape(len(out), -1)
    return out[:, -1] if out.shape[1] <= 2 else out.max(axis=1)


def _check_auc(y: np.ndarray) -> None:
    classes = np.unique(y)
    if len(classes) > 2:
        raise ConfigError(
            f"auc scores a binary task, but the eval set has {len(classes)} classes; "
            "use accuracy, top_k or macro_f1"
        )
    if len(classes) < 2:
        raise DatasetError(
            f"auc needs both classes in the eval set, but every label is {classes.tolist()}; "
            "add eval rows of the other class, or use another metric"
        )


def score(metric: str, outputs: np.ndarray, y: np.ndarray, params: dict[str, Any] | None = None) -> float:
    """The task's metric for model ``outputs`` against ``y``; a meaningless figure is refused."""
    from sklearn import metrics as skm  # imported here: it costs ~1.5 s at CLI start-up

    params = params or {}
    check_params(metric, params)
    out = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    if metric == "top_k":
        k = int(params.get("k", 5))
        if k >= out.shape[1]:
            raise ConfigError(
                f"top_k with k = {k} on {out.shape[1]} classes always scores 1.0; give k < {out.shape[1]}"
            )
    if metric == "auc":
        _check_auc(np.asarray(y))
    try:
        value = _score(skm, metric, out, y, params)
    except ValueError as e:  # labels that do not fit the outputs, and the like
        raise DatasetError(f"{metric} cannot be computed on this eval set: {e}") from None
    if not math.isfinite(value):
        raise ModelError(f"{metric} is {value} (the model's outputs hold NaN or inf values?)")
    return value


def _score(skm: Any, metric: str, out: np.ndarray, y: np.ndarray, params: dict[str, Any]) -> float:
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
