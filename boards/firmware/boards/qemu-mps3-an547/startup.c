/* Vector table for QEMU mps3-an547: core exceptions, then up to IRQ 43 = UART0 combined (FB_UART_IRQ).
 * The machine's init-svtor is 0x00000000 (ITCM), where link.ld puts it. */
#include "vectors.c"
