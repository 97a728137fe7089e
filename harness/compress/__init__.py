"""Compression techniques, one module each; importing this package registers them."""

from . import int8  # noqa: F401
