/* Board layer for QEMU mps2-an386: CMSDK APB UART0, SysTick at the 25 MHz core clock.
 * QEMU ignores the baud divisor; with -icount shift=S one instruction takes 2^S ns of virtual
 * time, so SysTick ticks count instructions / (40 / 2^S). DWT->CYCCNT is not emulated.
 *
 * Activity channel (the bench twin, harness/emulators/twin.py): UART1, a second -serial of QEMU,
 * carries what a power meter would see of this board, stamped in virtual time: the marker pin's
 * edges and the sleep (WFI) intervals while the firmware waits for a command. Records are 10 bytes:
 * 0xA5, a type ('B' boot: payload = tick rate; 'M'/'m' marker high/low; 'S' WFI entered; 'A' awake),
 * then the 64-bit tick count, little-endian. UART0 (the DUT protocol) is untouched. Waits inside bulk
 * transfers are not reported (counted as active): one record per received byte would slow uploads.
 * With no second -serial, QEMU drops UART1's bytes. */
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
#define UART1 0x40005000u /* the activity channel */

static void act_put(uint8_t b) {
  while (REG(UART1 + 0x04) & 1u) {
  }
  REG(UART1) = b;
}

static void act_record(char type, uint64_t value) {
  act_put(0xA5u);
  act_put((uint8_t)type);
  for (int i = 0; i < 8; i++) act_put((uint8_t)(value >> (8 * i)));
}

void UART0RX_Handler(void) { U_INTCLR = 2; } /* clear the RX interrupt; its job is to end WFI */

void board_init(void) {
  U_BAUD = 16;
  U_CTRL = 1u | 2u | 8u;
  REG(UART1 + 0x10) = 16u;
  REG(UART1 + 0x08) = 1u; /* TX only */
  NVIC_ISER0 = 1u;
  cm_systick_start();
  act_record('B', board_tick_hz());
}

void board_putc(char c) {
  while (U_STATE & 1u) {
  }
  U_DATA = (uint8_t)c;
}

int board_getc(void) {
  __asm volatile("cpsid i");
  while (!(U_STATE & 2u)) {
    act_record('S', board_ticks());
    __asm volatile("wfi\n cpsie i\n isb\n cpsid i");
    act_record('A', board_ticks());
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

uint32_t board_tick_hz(void) { return 25000000u; }

/* The marker pin exists only on the activity channel: its edge, stamped before the record is sent. */
void board_marker(int level) { act_record(level ? 'M' : 'm', board_ticks()); }
