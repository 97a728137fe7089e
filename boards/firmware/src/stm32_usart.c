/* Board layer shared by the STM32 Nucleo boards: GPIO alternate functions, the ST-LINK virtual COM port
 * on a USART/LPUART of the "ISR/ICR/RDR/TDR" register layout (GPIO and UART offsets are the same on the
 * L4, L4+, L5 and F7 families), idled in WFI between bytes, SysTick at HCLK, and the active-low
 * timestamp marker pin. Included by such a board's board.c (one copy of the code) before its
 * board_init, which clocks the ports and the UART; the board defines first:
 *   FB_STM32_UART  the UART's base address (already clocked and enabled by board_init),
 *   FB_MARKER_GPIO the marker pin's GPIO port base, FB_MARKER_PIN its pin, HCLK_HZ the core clock. */
#define GPIO_MODER 0x00u
#define GPIO_OSPEEDR 0x08u
#define GPIO_BSRR 0x18u
#define GPIO_AFRL 0x20u
#define GPIO_AFRH 0x24u

/* Pin ``pin`` of ``port`` to alternate function ``af``, very high speed. */
static void gpio_af(uint32_t port, int pin, uint32_t af) {
  REG(port + GPIO_MODER) = (REG(port + GPIO_MODER) & ~(3u << (2 * pin))) | (2u << (2 * pin));
  REG(port + GPIO_OSPEEDR) |= 3u << (2 * pin);
  uint32_t reg = pin < 8 ? port + GPIO_AFRL : port + GPIO_AFRH;
  int sh = 4 * (pin & 7);
  REG(reg) = (REG(reg) & ~(0xFu << sh)) | (af << sh);
}

/* The marker pin as an output, idle high (its port clocked already). */
static void marker_pin_init(void) {
  uint32_t sh = 2u * FB_MARKER_PIN;
  REG(FB_MARKER_GPIO + GPIO_MODER) = (REG(FB_MARKER_GPIO + GPIO_MODER) & ~(3u << sh)) | (1u << sh);
  REG(FB_MARKER_GPIO + GPIO_BSRR) = 1u << FB_MARKER_PIN;
}

#define SU_CR1 REG(FB_STM32_UART + 0x00)
#define SU_ISR REG(FB_STM32_UART + 0x1C)
#define SU_ICR REG(FB_STM32_UART + 0x20)
#define SU_RDR REG(FB_STM32_UART + 0x24)
#define SU_TDR REG(FB_STM32_UART + 0x28)
#define SU_ISR_ORE (1u << 3)
#define SU_ISR_RXNE (1u << 5)
#define SU_ISR_TXE (1u << 7)
#define SU_CR1_RXNEIE (1u << 5)

void board_putc(char c) {
  while (!(SU_ISR & SU_ISR_TXE)) {
  }
  SU_TDR = (uint8_t)c;
}

int board_getc(void) {
  __asm volatile("cpsid i");
  while (!(SU_ISR & SU_ISR_RXNE)) {
    SU_CR1 |= SU_CR1_RXNEIE; /* wake on the next byte */
    __asm volatile("wfi\n cpsie i\n isb\n cpsid i");
  }
  __asm volatile("cpsie i");
  return (int)(SU_RDR & 0xFFu);
}

int board_getc_until(uint64_t deadline) {
  __asm volatile("cpsid i");
  for (;;) {
    uint32_t isr = SU_ISR;
    if (isr & SU_ISR_ORE) SU_ICR = SU_ISR_ORE; /* an overrun loses a byte: the bulk CRC will catch it */
    if (isr & SU_ISR_RXNE) break;
    if (board_ticks() > deadline) {
      __asm volatile("cpsie i");
      return -1;
    }
    SU_CR1 |= SU_CR1_RXNEIE;
    __asm volatile("wfi\n cpsie i\n isb\n cpsid i");
  }
  __asm volatile("cpsie i");
  return (int)(SU_RDR & 0xFFu);
}

uint32_t board_tick_hz(void) { return HCLK_HZ; }

/* active low: BSRR's upper half resets the pin (marker on), its lower half sets it (idle high) */
void board_marker(int level) {
  REG(FB_MARKER_GPIO + GPIO_BSRR) = level ? (1u << (FB_MARKER_PIN + 16)) : (1u << FB_MARKER_PIN);
}
