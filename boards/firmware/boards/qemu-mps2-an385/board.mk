# Cortex-M3 (Armv7-M, no DSP extension, no FPU): the portable C kernels.
ARCH := -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
