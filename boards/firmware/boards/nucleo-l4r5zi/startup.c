/* Vector table for STM32L4R5ZI: the core entries, then LPUART1 (IRQ 70, FB_UART_IRQ). */
#include "vectors.c"
