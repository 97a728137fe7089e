# Cortex-M0 (Armv6-M: Thumb-1, no DSP, no FPU, 32x32 MUL only, no unaligned access).
ARCH := -mcpu=cortex-m0 -mthumb -mfloat-abi=soft
