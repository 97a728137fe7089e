/* Board layer for ST NUCLEO-L552ZE-Q, written from RM0438 (STM32L552xx/L562xx reference manual) and
 * UM2581 (STM32L5 Nucleo-144 user manual). Built in CI; NOT run on hardware in this project: verify on
 * a board. TrustZone is off (TZEN=0, as shipped), so every peripheral is reached at its non-secure
 * address (the secure aliases are the same + 0x10000000).
 *
 * - Clock: HSI16 -> PLL (M=4, N=55, R=2) = 110 MHz SYSCLK (the device maximum), voltage range 0,
 *   flash 5 wait states (RM0438 "number of wait states according to CPU clock frequency"), ICACHE on.
 * - UART: LPUART1 on PG7 (TX) / PG8 (RX), AF8, wired to the ST-LINK virtual COM port (UM2581).
 *   Port G pins 2..15 are powered from VDDIO2: PWR_CR2.IOSV. Kernel clock HSI16, BRR = 256 * 16 MHz / baud.
 * - Timer: SysTick at HCLK (110 MHz) with a wrap counter.
 * - Marker: PF13 (Arduino D7 on the Nucleo-144 ZIO connector, the pin the MLPerf Tiny reference uses
 *   for its timestamp edge). */
#include "board.h"
#include "cortex_m.h"

#define REG(a) (*(volatile uint32_t *)(a))
/* RCC (RM0438 section "RCC registers"; non-secure base 0x40021000) */
#define RCC 0x40021000u
#define RCC_CR REG(RCC + 0x00)
#define RCC_CFGR REG(RCC + 0x08)
#define RCC_PLLCFGR REG(RCC + 0x0C)
#define RCC_AHB2ENR REG(RCC + 0x4C)
#define RCC_APB1ENR1 REG(RCC + 0x58)
#define RCC_APB1ENR2 REG(RCC + 0x5C)
#define RCC_CCIPR1 REG(RCC + 0x88)
/* PWR (section "PWR registers") */
#define PWR 0x40007000u
#define PWR_CR1 REG(PWR + 0x00)
#define PWR_CR2 REG(PWR + 0x04)
#define PWR_SR2 REG(PWR + 0x14)
/* FLASH and the instruction cache */
#define FLASH_ACR REG(0x40022000u)
#define ICACHE_CR REG(0x40030400u)
/* GPIO (AHB2, non-secure 0x42020000 + 0x400 per port) */
#define GPIOF 0x42021400u
#define GPIOG 0x42021800u
/* LPUART1 (section "LPUART registers") */
#define LPU 0x40008000u
#define LPU_CR1 REG(LPU + 0x00)
#define LPU_BRR REG(LPU + 0x0C)
#define LPU_ISR REG(LPU + 0x1C)
#define LPU_ICR REG(LPU + 0x20)
#define ISR_ORE (1u << 3)
/* Core */
#define NVIC_ISER2 REG(0xE000E108) /* IRQ 64..95 */
#define HCLK_HZ 110000000u
#ifndef FB_BAUD
#define FB_BAUD 115200u
#endif

/* Reading RDR in board_getc clears RXNE; here only clear overrun so the IRQ line drops. */
#define FB_STM32_UART LPU
#define FB_MARKER_GPIO GPIOF
#define FB_MARKER_PIN 13
#include "stm32_usart.c"

void LPUART1_IRQHandler(void) {
  if (LPU_ISR & ISR_ORE) LPU_ICR = ISR_ORE;
  LPU_CR1 &= ~(1u << 5); /* RXNEIE off until the next board_getc re-arms it */
}

static void clock_110mhz(void) {
  RCC_APB1ENR1 |= 1u << 28;      /* PWREN */
  (void)RCC_APB1ENR1;            /* read back: the enable takes effect before PWR is written */
  PWR_CR1 &= ~(3u << 9);         /* VOS = 00: range 0 (needed above 80 MHz) */
  while (PWR_SR2 & (1u << 10)) { /* VOSF: the regulator reached the new range */
  }
  FLASH_ACR = (FLASH_ACR & ~0xFu) | 5u; /* LATENCY = 5 WS for 110 MHz in range 0 */
  while ((FLASH_ACR & 0xFu) != 5u) {
  }
  RCC_CR |= 1u << 8; /* HSION */
  while (!(RCC_CR & (1u << 10))) {
  }
  RCC_PLLCFGR = 2u /* PLLSRC=HSI16 */ | (3u << 4) /* M=4: 4 MHz VCO input */ | (55u << 8) /* N=55 */ |
                (0u << 25) /* R=2 */ | (1u << 24) /* PLLREN */;
  RCC_CR |= 1u << 24; /* PLLON */
  while (!(RCC_CR & (1u << 25))) {
  }
  RCC_CFGR = (RCC_CFGR & ~0xF3u) | (8u << 4) | 3u; /* AHB /2 during the switch above 80 MHz, SW=PLL */
  while (((RCC_CFGR >> 2) & 3u) != 3u) {
  }
  for (volatile int i = 0; i < 200; i++) {
  } /* > 1 us at 55 MHz before AHB /1 */
  RCC_CFGR &= ~0xF0u;
  ICACHE_CR |= 1u; /* EN (reset default: 2-way): hits fetch flash code without wait states */
}

void board_init(void) {
  clock_110mhz();
  RCC_AHB2ENR |= (1u << 5) | (1u << 6); /* GPIOF, GPIOG */
  PWR_CR2 |= 1u << 9;                    /* IOSV: VDDIO2 valid, port G usable */
  gpio_af(GPIOG, 7, 8);                  /* LPUART1_TX */
  gpio_af(GPIOG, 8, 8);                  /* LPUART1_RX */
  marker_pin_init(); /* PF13 */
  RCC_CCIPR1 = (RCC_CCIPR1 & ~(3u << 10)) | (2u << 10); /* LPUART1SEL = HSI16 */
  RCC_APB1ENR2 |= 1u;                                   /* LPUART1EN */
  LPU_BRR = (uint32_t)((256ull * 16000000ull + FB_BAUD / 2) / FB_BAUD);
  LPU_CR1 = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
  NVIC_ISER2 = 1u << (FB_UART_IRQ - 64);
  cm_systick_start();
}
