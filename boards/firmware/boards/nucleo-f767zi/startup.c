/* Vector table for STM32F767ZI: the core entries, then USART3 (IRQ 39, FB_UART_IRQ; RM0410 table
 * "STM32F76xxx and STM32F77xxx vector table"). The core boots from BOOT_ADD0 (default 0x0080:
 * 0x00200000, the same flash on the ITCM interface); board_init points VTOR at this table's AXIM
 * address so the interrupts use it whatever the boot option bytes say. */
#include "vectors.c"
