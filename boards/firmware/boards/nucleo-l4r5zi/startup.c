/* Vector table for STM32L4R5ZI: 16 core entries + 71 device entries (up to LPUART1 = IRQ 70). */
#include <stdint.h>

#include "cortex_m.h"

extern uint32_t _estack;
void LPUART1_IRQHandler(void);

#define N_IRQ 71
typedef void (*vec_t)(void);
__attribute__((section(".vectors"), used)) const vec_t fb_vectors[16 + N_IRQ] = {
    [0] = (vec_t)&_estack,
    [1] = Reset_Handler,
    [2] = Default_Handler, /* NMI */
    [3] = Default_Handler, /* HardFault */
    [4] = Default_Handler,
    [5] = Default_Handler,
    [6] = Default_Handler,
    [11] = Default_Handler, /* SVC */
    [14] = Default_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 + 70] = LPUART1_IRQHandler,
};
