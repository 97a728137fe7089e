/* Vector table for the nRF51822: 16 core entries + 26 peripheral lines (UART0 = IRQ 2, TIMER0 = IRQ 8). */
#include <stdint.h>

#include "cortex_m.h"

extern uint32_t _estack;
void UART0_IRQHandler(void);
void TIMER0_IRQHandler(void);

typedef void (*vec_t)(void);
__attribute__((section(".vectors"), used)) const vec_t fb_vectors[16 + 26] = {
    [0] = (vec_t)&_estack,
    [1] = Reset_Handler,
    [2] = Default_Handler,  /* NMI */
    [3] = Default_Handler,  /* HardFault */
    [11] = Default_Handler, /* SVC */
    [14] = Default_Handler, /* PendSV */
    [15] = Default_Handler, /* SysTick: the nRF51 has none */
    [16 + 2] = UART0_IRQHandler,
    [16 + 8] = TIMER0_IRQHandler,
};
