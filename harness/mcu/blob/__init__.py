"""The MCU model blob: the int8 container format, and its dense, sparse and factored layer payloads."""

from .codec import export_blob, read_blob, variant_blob

__all__ = ["export_blob", "read_blob", "variant_blob"]
