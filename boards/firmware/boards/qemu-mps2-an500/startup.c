/* Vector table for QEMU mps2-an500: core exceptions, then IRQ0 = UART0 RX (FB_UART_IRQ). */
#include "vectors.c"
