/* Board layer for QEMU mps2-an386 (Cortex-M4F): the CMSDK UART + SysTick layer every MPS machine
 * shares, with this board's addresses from board_config.h. */
#include "cmsdk_uart.c"
