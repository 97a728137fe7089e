"""The compressor contract (scikit-learn shaped).

A compressor is configured only through keyword arguments to ``__init__`` (the suite's
``technique`` parameters, validated against the signature), learns in ``fit`` and rewrites the model
in ``transform``. ``get_params()`` is what the store keeps, so a variant can be rebuilt exactly.
"""

from __future__ import annotations

import inspect
import typing
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import ConfigDict, ValidationError, create_model

from ..errors import ConfigError
from ..ir.data import Dataset
from ..ir.model import Model
from ..registry import Registry

COMPRESSORS: Registry[type[Compressor]] = Registry("technique")


class Compressor(ABC):
    """Base class of every technique.

    Class attributes:
        name: the ``technique`` name used in suite files.
        needs_net: the technique rewrites the float IR (so it cannot apply to a bare model file).
        needs_training: it fine-tunes, so the dataset needs a training split.
        quantizes: it produces int8 files (nothing after it may rewrite the float IR).
    """

    name: ClassVar[str]
    needs_net: ClassVar[bool] = False
    needs_training: ClassVar[bool] = False
    quantizes: ClassVar[bool] = False

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, by name (stored with the variant)."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    @abstractmethod
    def fit(self, model: Model, data: Dataset) -> Compressor:
        """Learn what the transform needs (scales, masks, factors); return ``self``."""

    @abstractmethod
    def transform(self, model: Model) -> Model:
        """Return the compressed model; append one entry to ``history``."""

    def fit_transform(self, model: Model, data: Dataset) -> Model:
        return self.fit(model, data).transform(model)


def make_compressor(technique: str, params: dict[str, Any], *, where: str = "") -> Compressor:
    """Build a compressor from suite parameters, with an error naming the bad parameter."""
    cls = COMPRESSORS.get(technique)
    sig = inspect.signature(cls.__init__)
    allowed = [p for p in sig.parameters if p != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{where}technique {technique!r} has no parameter {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(allowed) or '(none)'}"
        )
    hints = typing.get_type_hints(cls.__init__)
    fields: dict[str, Any] = {
        p: (
            hints.get(p, Any),
            sig.parameters[p].default if sig.parameters[p].default is not inspect.Parameter.empty else ...,
        )
        for p in allowed
    }
    checker = create_model(f"{cls.__name__}Params", __config__=ConfigDict(strict=True), **fields)
    try:
        checker(**params)
        return cls(**params)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{where}technique {technique!r} parameter {loc}: {err['msg']}") from None
    except ValueError as e:
        raise ConfigError(f"{where}technique {technique!r}: {e}") from None
