"""MCU support: model blob format, NumPy reference interpreters, EEMBC protocol client, QEMU DUT,
memory plan (:mod:`.plan`) and RAM/flash footprint (:mod:`.footprint`) of int8 operator graphs.

The firmware (C) lives in ``boards/firmware/``; ``harness.targets.mcu`` drives it.
"""
