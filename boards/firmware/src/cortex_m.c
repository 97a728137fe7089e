/* What every Cortex-M board shares: start-up (copy .data, zero .bss, FPU on, main) and a 64-bit
 * tick counter on SysTick at the core clock (the board's vector table points at these handlers). */
#include <stdint.h>

#include "board.h"
#include "cortex_m.h"

extern uint32_t _etext, _sdata, _edata, _sbss, _ebss;
int main(void);

void Reset_Handler(void) {
  uint32_t *src = &_etext, *dst = &_sdata;
  while (dst < &_edata) *dst++ = *src++;
  for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
  *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20; /* CPACR: CP10/CP11 full access (FPU, MVE) */
  __asm volatile("dsb\n isb");
#endif
  main();
  for (;;) {
  }
}

void Default_Handler(void) {
  for (;;) {
  }
}

#if !defined(FB_BOARD_TICKS) /* a board without SysTick (nRF51) brings its own timer */
#define REG(a) (*(volatile uint32_t *)(a))
#define SYST_CSR REG(0xE000E010)
#define SYST_RVR REG(0xE000E014)
#define SYST_CVR REG(0xE000E018)
#define SYSTICK_MAX 0xFFFFFFu

static volatile uint32_t wraps;
static uint64_t tick_base;

void SysTick_Handler(void) { wraps++; }

void cm_systick_start(void) {
  SYST_RVR = SYSTICK_MAX;
  SYST_CVR = 0;
  SYST_CSR = 7u; /* core clock, interrupt, enable */
}

uint64_t board_ticks(void) {
  uint32_t w, v;
  do {
    w = wraps;
    v = SYST_CVR;
  } while (w != wraps);
  return tick_base + ((uint64_t)w << 24) + (SYSTICK_MAX - v);
}

void board_ticks_restart(void) {
  uint64_t now = board_ticks();
  SYST_CSR = 0;
  wraps = 0;
  tick_base = now;
  SYST_CVR = 0;
  SYST_CSR = 7u;
  while (SYST_CVR == 0) {
  }
}
#endif
