/* Vector table of every board whose only device interrupt is its serial port's: the core exceptions,
 * then FB_UART_HANDLER on NVIC line FB_UART_IRQ (both from board_config.h; the handler defaults to the
 * CMSDK layer's UART0RX_Handler). Included by the boards' startup.c; entries a core lacks (SecureFault
 * before Armv8-M) are reserved and never taken. */
#include <stdint.h>

#include "board.h"
#include "cortex_m.h"

#ifndef FB_UART_HANDLER
#define FB_UART_HANDLER UART0RX_Handler
#endif

extern uint32_t _estack;
void FB_UART_HANDLER(void);

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
    [16 + FB_UART_IRQ] = FB_UART_HANDLER,
};
