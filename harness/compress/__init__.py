"""Compression techniques, one module each; importing this package registers them."""

from . import (
    butterfly,  # noqa: F401
    int8,  # noqa: F401
    lowrank,  # noqa: F401
    monarch,  # noqa: F401
    posttrain,  # noqa: F401
    prune,  # noqa: F401
    structured,  # noqa: F401
)
