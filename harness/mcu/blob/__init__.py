"""The MCU model blob: the int8 container format, and its dense, sparse and factored layer payloads."""
