/* Board layer for ST NUCLEO-L4R5ZI, written from RM0432 (STM32L4+ reference manual) and UM2179
 * (Nucleo-144 user manual). Built in CI; NOT run on hardware in this project: verify on a board.
 *
 * - Clock: HSI16 -> PLL (M=1, N=15, R=2) = 120 MHz SYSCLK, range 1 boost, flash 5 wait states.
 * - UART: LPUART1 on PG7 (TX) / PG8 (RX), AF8, wired to the ST-LINK virtual COM port (UM2179).
 *   Port G pins 2..15 need VDDIO2: PWR_CR2.IOSV. Kernel clock HSI16, BRR = 256 * 16 MHz / baud.
 * - Timer: SysTick at HCLK (120 MHz) with a wrap counter.
 * - Marker: PF13 (Arduino D7, the pin the MLPerf Tiny reference uses for its timestamp edge). */
#include "board.h"
#include "cortex_m.h"

#define REG(a) (*(volatile uint32_t *)(a))
/* RCC (RM0432 section 6.4) */
#define RCC 0x40021000u
#define RCC_CR REG(RCC + 0x00)
#define RCC_CFGR REG(RCC + 0x08)
#define RCC_PLLCFGR REG(RCC + 0x0C)
#define RCC_AHB2ENR REG(RCC + 0x4C)
#define RCC_APB1ENR1 REG(RCC + 0x58)
#define RCC_APB1ENR2 REG(RCC + 0x5C)
#define RCC_CCIPR REG(RCC + 0x88)
/* PWR (section 5.4) */
#define PWR 0x40007000u
#define PWR_CR2 REG(PWR + 0x04)
#define PWR_CR5 REG(PWR + 0x80)
/* FLASH (section 3.7) */
#define FLASH_ACR REG(0x40022000u)
/* GPIO (section 8.5) */
#define GPIOF 0x48001400u
#define GPIOG 0x48001800u
/* LPUART1 (section 52.7) */
#define LPU 0x40008000u
#define LPU_CR1 REG(LPU + 0x00)
#define LPU_BRR REG(LPU + 0x0C)
#define LPU_ISR REG(LPU + 0x1C)
#define LPU_ICR REG(LPU + 0x20)
#define ISR_ORE (1u << 3)
/* Core */
#define NVIC_ISER2 REG(0xE000E108) /* IRQ 64..95 */
#define HCLK_HZ 120000000u
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

static void clock_120mhz(void) {
  RCC_APB1ENR1 |= 1u << 28;                  /* PWREN */
  PWR_CR5 &= ~(1u << 8);                     /* R1MODE=0: range 1 boost (needed above 80 MHz) */
  FLASH_ACR = (FLASH_ACR & ~0xFu) | 5u | (1u << 8) | (1u << 9) | (1u << 10); /* 5 WS, PRFT, IC, DC */
  while ((FLASH_ACR & 0xFu) != 5u) {
  }
  RCC_CR |= 1u << 8; /* HSION */
  while (!(RCC_CR & (1u << 10))) {
  }
  RCC_PLLCFGR = 2u /* PLLSRC=HSI16 */ | (0u << 4) /* M=1 */ | (15u << 8) /* N=15 */ | (0u << 25) /* R=2 */ |
                (1u << 24) /* PLLREN */;
  RCC_CR |= 1u << 24; /* PLLON */
  while (!(RCC_CR & (1u << 25))) {
  }
  RCC_CFGR = (RCC_CFGR & ~0xF3u) | (8u << 4) | 3u; /* AHB /2 during the switch (RM0432 6.2.8), SW=PLL */
  while (((RCC_CFGR >> 2) & 3u) != 3u) {
  }
  for (volatile int i = 0; i < 200; i++) {
  } /* > 1 us at 60 MHz before AHB /1 */
  RCC_CFGR &= ~0xF0u;
}

void board_init(void) {
  clock_120mhz();
  RCC_AHB2ENR |= (1u << 5) | (1u << 6); /* GPIOF, GPIOG */
  PWR_CR2 |= 1u << 9;                    /* IOSV: VDDIO2 valid, port G usable */
  gpio_af(GPIOG, 7, 8);                  /* LPUART1_TX */
  gpio_af(GPIOG, 8, 8);                  /* LPUART1_RX */
  marker_pin_init(); /* PF13 */
  RCC_CCIPR = (RCC_CCIPR & ~(3u << 10)) | (2u << 10); /* LPUART1SEL = HSI16 */
  RCC_APB1ENR2 |= 1u;                                 /* LPUART1EN */
  LPU_BRR = (uint32_t)((256ull * 16000000ull + FB_BAUD / 2) / FB_BAUD);
  LPU_CR1 = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
  NVIC_ISER2 = 1u << (FB_UART_IRQ - 64);
  cm_systick_start();
}
