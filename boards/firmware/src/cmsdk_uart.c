/* Board layer shared by the QEMU MPS2/MPS3 machines: CMSDK APB UART0 (interrupt-driven RX wake-up)
 * and SysTick at the core clock. board_config.h names the differences: FB_UART_BASE (the address
 * the core reaches UART0 at), FB_UART_IRQ (the NVIC line that carries its RX interrupt) and
 * FB_TICK_HZ (QEMU's sysclk for the machine). QEMU ignores the baud divisor; with -icount shift=S
 * one instruction takes 2^S ns of virtual time, so SysTick ticks count instructions / (1e9 /
 * (FB_TICK_HZ * 2^S)). DWT->CYCCNT is not emulated. Included by those boards' board.c (one copy of
 * the code, compiled with each board's board_config.h).
 *
 * Activity channel (the bench twin, harness/emulators/twin.py), on boards that define
 * FB_ACT_UART_BASE (a second CMSDK UART, a second -serial of QEMU): what a power meter would see of
 * the board, stamped in virtual time: the marker pin's edges and the sleep (WFI) intervals while the
 * firmware waits for a command. Records are 10 bytes: 0xA5, a type ('B' boot: payload = tick rate;
 * 'M'/'m' marker high/low; 'S' WFI entered; 'A' awake), then the 64-bit tick count, little-endian.
 * UART0 (the DUT protocol) is untouched. Waits inside bulk transfers are not reported (counted as
 * active): one record per received byte would slow uploads. With no second -serial, QEMU drops the
 * bytes. */
#include "board.h"
#include "cortex_m.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define U_DATA REG(FB_UART_BASE + 0x00)
#define U_STATE REG(FB_UART_BASE + 0x04) /* bit0 TX full, bit1 RX full */
#define U_CTRL REG(FB_UART_BASE + 0x08)  /* bit0 TX en, bit1 RX en, bit3 RX irq en */
#define U_INTCLR REG(FB_UART_BASE + 0x0C)
#define U_BAUD REG(FB_UART_BASE + 0x10)
#define NVIC_ISER(n) REG(0xE000E100u + 4u * (n))

#ifdef FB_ACT_UART_BASE
static void act_put(uint8_t b) {
  while (REG(FB_ACT_UART_BASE + 0x04) & 1u) {
  }
  REG(FB_ACT_UART_BASE) = b;
}

static void act_record(char type, uint64_t value) {
  act_put(0xA5u);
  act_put((uint8_t)type);
  for (int i = 0; i < 8; i++) act_put((uint8_t)(value >> (8 * i)));
}
#define ACT_RECORD(type, value) act_record((type), (value))
#else
#define ACT_RECORD(type, value) ((void)0)
#endif

void UART0RX_Handler(void) { U_INTCLR = 2; } /* clear the RX interrupt; its job is to end WFI */

void board_init(void) {
  U_BAUD = 16;
  U_CTRL = 1u | 2u | 8u;
  NVIC_ISER(FB_UART_IRQ / 32u) = 1u << (FB_UART_IRQ % 32u);
#ifdef FB_ACT_UART_BASE
  REG(FB_ACT_UART_BASE + 0x10) = 16u;
  REG(FB_ACT_UART_BASE + 0x08) = 1u; /* TX only */
#endif
  cm_systick_start();
  ACT_RECORD('B', board_tick_hz());
}

void board_putc(char c) {
  while (U_STATE & 1u) {
  }
  U_DATA = (uint8_t)c;
}

int board_getc(void) {
  __asm volatile("cpsid i");
  while (!(U_STATE & 2u)) {
    ACT_RECORD('S', board_ticks());
    __asm volatile("wfi\n cpsie i\n isb\n cpsid i");
    ACT_RECORD('A', board_ticks());
  }
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

#ifdef FB_ACT_UART_BASE
/* The marker pin exists only on the activity channel: its edge, stamped before the record is sent. */
void board_marker(int level) { act_record(level ? 'M' : 'm', board_ticks()); }
#else
void board_marker(int level) { (void)level; /* no GPIO marker under QEMU without an activity channel */ }
#endif
