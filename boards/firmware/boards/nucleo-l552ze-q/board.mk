# STM32L552ZE: Cortex-M33 (Armv8-M Mainline with DSP, single-precision FPv5). TrustZone is off as the
# chip ships (option bit TZEN=0): the firmware runs non-secure-only, on the non-secure aliases.
ARCH := -mcpu=cortex-m33 -mthumb -mfloat-abi=hard -mfpu=fpv5-sp-d16
