# Cortex-M33 (Armv8-M Mainline with the DSP extension and single-precision FPv5; TrustZone, and the
# firmware runs in the Secure state it boots in).
ARCH := -mcpu=cortex-m33 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16
