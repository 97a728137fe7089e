/* Vector table for QEMU mps2-an505: core exceptions, then up to IRQ 42 = UART0 combined (FB_UART_IRQ).
 * The Secure vector table sits at 0x10000000 (the machine's init-svtor). */
#include "vectors.c"
