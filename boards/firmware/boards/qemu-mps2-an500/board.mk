# Cortex-M7 (Armv7E-M with DSP; QEMU's cortex-m7 has the double-precision FPv5).
ARCH := -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16
