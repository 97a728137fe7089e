/* Shared Cortex-M pieces used by the board layers (see cortex_m.c). */
#ifndef FB_CORTEX_M_H
#define FB_CORTEX_M_H
void Reset_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);
/* Start SysTick free-running at the core clock with its wrap interrupt (board_ticks() counts it). */
void cm_systick_start(void);
#endif
