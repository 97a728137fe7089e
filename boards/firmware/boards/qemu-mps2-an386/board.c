/* Board layer for QEMU mps2-an386: CMSDK APB UART0, SysTick at the 25 MHz core clock.
 * QEMU ignores the baud divisor; with -icount shift=S one instruction takes 2^S ns of virtual
 * time, so SysTick ticks count instructions / (40 / 2^S). DWT->CYCCNT is not emulated. */
#include "board.h"
#include "cortex_m.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define UART0 0x40004000u
#define U_DATA REG(UART0 + 0x00)
#define U_STATE REG(UART0 + 0x04) /* bit0 TX full, bit1 RX full */
#define U_CTRL REG(UART0 + 0x08)  /* bit0 TX en, bit1 RX en, bit3 RX irq en */
#define U_INTCLR REG(UART0 + 0x0C)
#define U_BAUD REG(UART0 + 0x10)
#define NVIC_ISER0 REG(0xE000E100)

void UART0RX_Handler(void) { U_INTCLR = 2; } /* clear the RX interrupt; its job is to end WFI */

void board_init(void) {
  U_BAUD = 16;
  U_CTRL = 1u | 2u | 8u;
  NVIC_ISER0 = 1u;
  cm_systick_start();
}

void board_putc(char c) {
  while (U_STATE & 1u) {
  }
  U_DATA = (uint8_t)c;
}

int board_getc(void) {
  __asm volatile("cpsid i");
  while (!(U_STATE & 2u)) __asm volatile("wfi\n cpsie i\n isb\n cpsid i");
  __asm volatile("cpsie i");
  return (int)(U_DATA & 0xFFu);
}

int board_getc_until(uint64_t deadline) {
  __asm volatile("cpsid i");
  while (!(U_STATE & 2u)) {
    if (board_ticks() > deadline) {
      __asm volatile("cpsie i");
      return -1;
    }
    __asm volatile("wfi\n cpsie i\n isb\n cpsid i"); /* SysTick or RX wakes it */
  }
  __asm volatile("cpsie i");
  return (int)(U_DATA & 0xFFu);
}

uint32_t board_tick_hz(void) { return 25000000u; }

void board_marker(int level) { (void)level; /* no GPIO marker under QEMU */ }
