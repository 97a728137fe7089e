/* Board layer shared by the QEMU MPS2/MPS3 machines: CMSDK APB UART0 (interrupt-driven RX wake-up)
 * and SysTick at the core clock. board_config.h names the differences: FB_UART_BASE (the address
 * the core reaches UART0 at), FB_UART_IRQ (the NVIC line that carries its RX interrupt) and
 * FB_TICK_HZ (QEMU's sysclk for the machine). QEMU ignores the baud divisor; with -icount shift=S
 * one instruction takes 2^S ns of virtual time, so SysTick ticks count instructions / (1e9 /
 * (FB_TICK_HZ * 2^S)). DWT->CYCCNT is not emulated. Included by those boards' board.c (one copy of
 * the code, compiled with each board's board_config.h). */
#include "board.h"
#include "cortex_m.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define U_DATA REG(FB_UART_BASE + 0x00)
#define U_STATE REG(FB_UART_BASE + 0x04) /* bit0 TX full, bit1 RX full */
#define U_CTRL REG(FB_UART_BASE + 0x08)  /* bit0 TX en, bit1 RX en, bit3 RX irq en */
#define U_INTCLR REG(FB_UART_BASE + 0x0C)
#define U_BAUD REG(FB_UART_BASE + 0x10)
#define NVIC_ISER(n) REG(0xE000E100u + 4u * (n))

void UART0RX_Handler(void) { U_INTCLR = 2; } /* clear the RX interrupt; its job is to end WFI */

void board_init(void) {
  U_BAUD = 16;
  U_CTRL = 1u | 2u | 8u;
  NVIC_ISER(FB_UART_IRQ / 32u) = 1u << (FB_UART_IRQ % 32u);
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

uint32_t board_tick_hz(void) { return FB_TICK_HZ; }

void board_marker(int level) { (void)level; /* no GPIO marker under QEMU */ }
