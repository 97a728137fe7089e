/* Board layer for the BBC micro:bit v1 (nRF51822, Cortex-M0) under QEMU `-M microbit`, written from
 * the nRF51 Series Reference Manual v3.0 (UART and TIMER chapters); real boards untested.
 *
 * - UART0 @0x40002000 (IRQ 2): events RXDRDY / TXDRDY; QEMU ignores the pins and the baud rate.
 * - Time: the nRF51's Cortex-M0 has no SysTick, so TIMER0 @0x40008000 (IRQ 8) counts at 16 MHz in
 *   32-bit mode; board_ticks() extends it to 64 bits, and compare channel 1 wakes the core every
 *   2^24 ticks, so no wrap is missed while it idles and timed reads see their deadline.
 * - Armv6-M faults on unaligned word access and has no LDREX: the tick state is guarded by PRIMASK. */
#include "board.h"
#include "cortex_m.h"

#define REG(a) (*(volatile uint32_t *)(a))
#define UART 0x40002000u
#define U_STARTRX REG(UART + 0x000)
#define U_STARTTX REG(UART + 0x008)
#define U_RXDRDY REG(UART + 0x108)
#define U_TXDRDY REG(UART + 0x11C)
#define U_INTENSET REG(UART + 0x304)
#define U_INTENCLR REG(UART + 0x308)
#define U_ENABLE REG(UART + 0x500)
#define U_RXD REG(UART + 0x518)
#define U_TXD REG(UART + 0x51C)
#define U_BAUDRATE REG(UART + 0x524)
#define INT_RXDRDY (1u << 2)

#define TIMER 0x40008000u
#define T_START REG(TIMER + 0x000)
#define T_STOP REG(TIMER + 0x004)
#define T_CLEAR REG(TIMER + 0x00C)
#define T_CAPTURE0 REG(TIMER + 0x040)
#define T_COMPARE1 REG(TIMER + 0x144)
#define T_INTENSET REG(TIMER + 0x304)
#define T_MODE REG(TIMER + 0x504)
#define T_BITMODE REG(TIMER + 0x508)
#define T_PRESCALER REG(TIMER + 0x510)
#define T_CC0 REG(TIMER + 0x540)
#define T_CC1 REG(TIMER + 0x544)
#define NVIC_ISER REG(0xE000E100u)

#define WAKE_TICKS (1u << 24)

static uint32_t t_hi, t_last; /* 64-bit extension of the 32-bit counter */
static uint64_t t_base;       /* board_ticks() at the last board_ticks_restart() */

static uint32_t irq_save(void) {
  uint32_t m;
  __asm volatile("mrs %0, primask\n cpsid i" : "=r"(m)::"memory");
  return m;
}
static void irq_restore(uint32_t m) { __asm volatile("msr primask, %0" ::"r"(m) : "memory"); }

uint64_t board_ticks(void) {
  uint32_t m = irq_save();
  T_CAPTURE0 = 1u;
  uint32_t v = T_CC0;
  if (v < t_last) t_hi++;
  t_last = v;
  uint64_t r = t_base + (((uint64_t)t_hi << 32) | v);
  irq_restore(m);
  return r;
}

/* Compare channel 1 fires every 2^24 ticks (1.05 s, like a SysTick wrap): it ends WFI so that
 * board_getc_until sees its deadline, and reading the counter there keeps the wrap count. */
void TIMER0_IRQHandler(void) {
  T_COMPARE1 = 0;
  (void)board_ticks();
  T_CC1 = t_last + WAKE_TICKS;
}

static void timer_start(void) {
  t_hi = t_last = 0;
  T_CC1 = WAKE_TICKS;
  T_START = 1u;
}

void board_ticks_restart(void) {
  uint64_t now = board_ticks();
  T_STOP = 1u;
  T_CLEAR = 1u;
  t_base = now;
  timer_start();
}

/* RXDRDY stays set until software clears it, which only board_getc does (before reading RXD, as the
 * manual asks); the handler masks the interrupt so that the pending event ends WFI exactly once. */
void UART0_IRQHandler(void) { U_INTENCLR = INT_RXDRDY; }

void board_init(void) {
  U_BAUDRATE = 0x01D7E000u; /* 115200 */
  U_ENABLE = 4u;
  U_STARTTX = 1u;
  U_STARTRX = 1u;
  T_MODE = 0u;      /* timer */
  T_BITMODE = 3u;   /* 32 bit */
  T_PRESCALER = 0u; /* 16 MHz */
  T_INTENSET = 1u << (16 + 1);
  NVIC_ISER = (1u << 2) | (1u << 8);
  timer_start();
}

void board_putc(char c) {
  U_TXD = (uint8_t)c;
  while (!U_TXDRDY) {
  }
  U_TXDRDY = 0;
}

static int rx_byte(void) {
  U_RXDRDY = 0;
  return (int)(U_RXD & 0xFFu);
}

int board_getc(void) {
  __asm volatile("cpsid i");
  while (!U_RXDRDY) {
    U_INTENSET = INT_RXDRDY; /* wake on the next byte */
    __asm volatile("wfi\n cpsie i\n isb\n cpsid i");
  }
  __asm volatile("cpsie i");
  return rx_byte();
}

int board_getc_until(uint64_t deadline) {
  __asm volatile("cpsid i");
  while (!U_RXDRDY) {
    if (board_ticks() > deadline) {
      __asm volatile("cpsie i");
      return -1;
    }
    U_INTENSET = INT_RXDRDY;
    __asm volatile("wfi\n cpsie i\n isb\n cpsid i"); /* TIMER0 or RX wakes it */
  }
  __asm volatile("cpsie i");
  return rx_byte();
}

uint32_t board_tick_hz(void) { return FB_TICK_HZ; }

void board_marker(int level) { (void)level; /* no marker pin wired under QEMU */ }
