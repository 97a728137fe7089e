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
from typing import Annotated, Any, get_type_hints

import numpy as np
from pydantic import ConfigDict, Field, ValidationError, create_model

from ..errors import ConfigError
from ..ir.data import Dataset
from ..ir.network import Network
from ..registry import Registry

RecipeFn = Callable[..., tuple[Network, Dataset]]

# parameter types with their ranges, for the recipes' signatures (checked when a suite loads)
Count = Annotated[int, Field(ge=1, le=100_000)]  # iterations, epochs
Samples = Annotated[int, Field(ge=100, le=1_000_000)]  # generated dataset rows
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy and scikit-learn seeds
Hidden = Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(min_length=1, max_length=16)]
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


def check_recipe_params(name: str, params: dict[str, Any]) -> None:
    """Refuse unknown ``recipe_params`` and values outside the types and ranges of the recipe's signature."""
    fn = load_recipes().get(name)
    sig = inspect.signature(fn)
    allowed = [p for p in sig.parameters if p != "seed"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"recipe {name!r} has no parameter {unknown}; it takes: {allowed}")
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {p: (hints.get(p, Any), sig.parameters[p].default) for p in allowed}
    model = create_model(f"{name}_params", __config__=ConfigDict(strict=True), **fields)
    try:
        model(**params)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(k) for k in err["loc"])
        raise ConfigError(f"recipe {name!r}: {key} = {params.get(str(err['loc'][0]))!r}: {err['msg']}") from None


def build_recipe(name: str, seed: int, params: dict[str, Any]) -> tuple[Network, Dataset]:
    check_recipe_params(name, params)
    return load_recipes().get(name)(seed=seed, **params)


def split(
    x: np.ndarray, y: np.ndarray, *, seed: int, eval_frac: float, calib_n: int = 256
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic train/eval split plus a calibration slice of the training rows."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    n_eval = int(round(len(x) * eval_frac))
    ev, tr = idx[:n_eval], idx[n_eval:]
    return x[tr], y[tr], x[ev], y[ev], x[tr[:calib_n]]
