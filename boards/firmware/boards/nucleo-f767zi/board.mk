# STM32F767ZI: Cortex-M7 (Armv7E-M with DSP, double-precision FPv5), 16 KiB I-cache + 16 KiB D-cache.
ARCH := -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16
