"""MCU support: model blob format, NumPy reference interpreter, EEMBC protocol client, QEMU DUT.

The firmware (C) lives in ``boards/firmware/``; ``harness.targets.mcu`` drives it.
"""
