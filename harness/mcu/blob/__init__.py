"""The MCU model blob: the int8 container, its dense/sparse and factored layer payloads, the codec on top."""
