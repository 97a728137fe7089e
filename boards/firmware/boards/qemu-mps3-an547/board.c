/* Board layer for QEMU mps3-an547 (Cortex-M55): the CMSDK UART + SysTick layer every MPS machine
 * shares, with this board's addresses from board_config.h. */
#include "cmsdk_uart.c"
