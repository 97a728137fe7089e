/* Vector table for QEMU mps2-an386: core exceptions, then IRQ0 = UART0 RX. */
#include <stdint.h>

#include "cortex_m.h"

extern uint32_t _estack;
void UART0RX_Handler(void);

__attribute__((section(".vectors"), used)) void (*const fb_vectors[17])(void) = {
    (void (*)(void))&_estack, Reset_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler,          Default_Handler, 0, 0, 0, 0, Default_Handler, Default_Handler, 0,
    Default_Handler,          SysTick_Handler, UART0RX_Handler /* IRQ0: UART0 RX */};
