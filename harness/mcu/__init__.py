"""MCU support: model blobs, NumPy reference interpreters, DUT protocol, QEMU, memory plan and footprint.

The firmware (C) lives in ``boards/firmware/``; ``harness.targets.mcu`` drives it. The memory plan
(:mod:`.plan`) and RAM/flash footprint (:mod:`.footprint`) cover int8 operator graphs (blob version 2).
"""
