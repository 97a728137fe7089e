/* Vector table for STM32F767ZI: 16 core entries + 40 device entries (up to USART3 = IRQ 39, RM0410
 * table "STM32F76xxx and STM32F77xxx vector table"). The core boots from BOOT_ADD0 (default 0x0080:
 * 0x00200000, the same flash on the ITCM interface); board_init points VTOR at this table's AXIM
 * address so the interrupts use it whatever the boot option bytes say. */
#include <stdint.h>

#include "cortex_m.h"

extern uint32_t _estack;
void USART3_IRQHandler(void);

#define N_IRQ 40
typedef void (*vec_t)(void);
__attribute__((section(".vectors"), used)) const vec_t fb_vectors[16 + N_IRQ] = {
    [0] = (vec_t)&_estack,
    [1] = Reset_Handler,
    [2] = Default_Handler, /* NMI */
    [3] = Default_Handler, /* HardFault */
    [4] = Default_Handler, /* MemManage */
    [5] = Default_Handler, /* BusFault */
    [6] = Default_Handler, /* UsageFault */
    [11] = Default_Handler, /* SVC */
    [14] = Default_Handler, /* PendSV */
    [15] = SysTick_Handler,
    [16 + 39] = USART3_IRQHandler,
};
