"""Recipe registry: a recipe builds a task's base model and dataset from data shipped in packages.

Recipes live in ``models/`` (installed as ``frugalbench_models``); each module registers with
:data:`RECIPES` and exposes ``build(seed, **params) -> (Network, Dataset)``, deterministic in ``seed``.
They train with :mod:`harness.ir.train` (``train_mlp``, ``sklearn_mlp``) and split with :func:`split`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..ir.data import Dataset
from ..ir.network import Network
from ..registry import Registry

RecipeFn = Callable[..., tuple[Network, Dataset]]
RECIPES: Registry[RecipeFn] = Registry("recipe")
_loaded = False


def load_recipes() -> Registry[RecipeFn]:
    """Import every module of ``frugalbench_models`` once so that they register."""
    global _loaded
    if not _loaded:
        import frugalbench_models

        for mod in pkgutil.iter_modules(frugalbench_models.__path__):
            importlib.import_module(f"frugalbench_models.{mod.name}")
        _loaded = True
    return RECIPES


def recipe_source(name: str) -> str:
    """Source code of the recipe module (part of the cache key: a changed recipe rebuilds)."""
    fn = load_recipes().get(name)
    return inspect.getsource(inspect.getmodule(fn))  # type: ignore[arg-type]


def build_recipe(name: str, seed: int, params: dict[str, Any]) -> tuple[Network, Dataset]:
    fn = load_recipes().get(name)
    sig = inspect.signature(fn)
    unknown = sorted(set(params) - set(sig.parameters) - {"seed"})
    if unknown:
        allowed = [p for p in sig.parameters if p != "seed"]
        raise ConfigError(f"recipe {name!r} has no parameter {unknown}; it takes: {allowed}")
    return fn(seed=seed, **params)


def split(
    x: np.ndarray, y: np.ndarray, *, seed: int, eval_frac: float, calib_n: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/eval split plus a calibration slice of the training rows."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_eval = int(round(len(x) * eval_frac))
    ev, tr = idx[:n_eval], idx[n_eval:]
    return x[tr], y[tr], x[ev], y[ev], x[tr[:calib_n]]
