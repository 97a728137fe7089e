/* Vector table of the QEMU MPS2/MPS3 machines: core exceptions, then UART0's RX interrupt on NVIC
 * line FB_UART_IRQ (board_config.h). Included by those boards' startup.c. */
#include <stdint.h>

#include "board.h"
#include "cortex_m.h"

extern uint32_t _estack;
void UART0RX_Handler(void);

typedef void (*vec_t)(void);
__attribute__((section(".vectors"), used)) const vec_t fb_vectors[16 + FB_UART_IRQ + 1] = {
    [0] = (vec_t)&_estack,
    [1] = Reset_Handler,
    [2] = Default_Handler, /* NMI */
    [3] = Default_Handler, /* HardFault */
    [4] = Default_Handler,
    [5] = Default_Handler,
    [6] = Default_Handler,
    [7] = Default_Handler, /* SecureFault (Armv8-M) */
    [11] = Default_Handler, /* SVC */
    [14] = Default_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 + FB_UART_IRQ] = UART0RX_Handler,
};
