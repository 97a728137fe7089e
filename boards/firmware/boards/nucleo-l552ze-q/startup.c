/* Vector table for STM32L552ZE: the core entries, then LPUART1 (IRQ 66, FB_UART_IRQ; RM0438 table
 * "STM32L552xx/L562xx vector table"). VTOR resets to 0x08000000, where the linker script puts it. */
#include "vectors.c"
