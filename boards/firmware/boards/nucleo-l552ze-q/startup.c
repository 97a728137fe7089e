/* Vector table for STM32L552ZE: 16 core entries + 67 device entries (up to LPUART1 = IRQ 66, RM0438
 * table "STM32L552xx/L562xx vector table").
 * VTOR resets to 0x08000000, where the linker script puts this table. */
#include <stdint.h>

#include "cortex_m.h"

extern uint32_t _estack;
void LPUART1_IRQHandler(void);

#define N_IRQ 67
typedef void (*vec_t)(void);
__attribute__((section(".vectors"), used)) const vec_t fb_vectors[16 + N_IRQ] = {
    [0] = (vec_t)&_estack,
    [1] = Reset_Handler,
    [2] = Default_Handler, /* NMI */
    [3] = Default_Handler, /* HardFault */
    [4] = Default_Handler, /* MemManage */
    [5] = Default_Handler, /* BusFault */
    [6] = Default_Handler, /* UsageFault */
    [7] = Default_Handler, /* SecureFault */
    [11] = Default_Handler, /* SVC */
    [14] = Default_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 + 66] = LPUART1_IRQHandler,
};
