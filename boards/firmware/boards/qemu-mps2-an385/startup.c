/* Vector table for QEMU mps2-an385: core exceptions, then IRQ0 = UART0 RX (FB_UART_IRQ). */
#include "vectors.c"
