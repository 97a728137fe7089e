# Cortex-M55 (Armv8.1-M Mainline: DSP, M-profile Vector Extension (Helium, MVE with FP) and FPv5).
ARCH := -mcpu=cortex-m55 -mthumb -mfloat-abi=hard
