"""Explicit registries: a new target, meter, compressor or layer is one module plus one entry.

Unknown names raise :class:`ConfigError` listing what is registered (no silent fall-through).
:func:`load_all` imports every plug-in package so that their registries are filled.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError, FrugalbenchError

T = TypeVar("T")


class RegistrationError(FrugalbenchError):
    """Two classes were registered under the same name."""


class Registry(Generic[T]):
    """A name → class table for one kind of plug-in.

    Example:
        >>> meters: Registry[type] = Registry("meter")
        >>> @meters.register("null")
        ... class Null: ...
        >>> meters.get("null") is Null
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``; refuses duplicates."""

        def deco(obj: T) -> T:
            if name in self._items:
                raise RegistrationError(f"{self.kind} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """Return the entry for ``name`` or raise a ConfigError listing the known names."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


# Named as strings, not imported: every plug-in package imports this module, so this module must not
# import them (it stays at the bottom of the import graph); they are imported when load_all() runs.
PLUGIN_PACKAGES = ("harness.ir.layers", "harness.compress", "harness.runtimes", "harness.targets", "harness.meters")


def load_all() -> None:
    """Import every plug-in package once, which registers all layers, compressors, runtimes, targets, meters."""
    for pkg in PLUGIN_PACKAGES:
        importlib.import_module(pkg)
