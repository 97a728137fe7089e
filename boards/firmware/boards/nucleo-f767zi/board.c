/* Board layer for ST NUCLEO-F767ZI, written from RM0410 (STM32F76xxx/F77xxx reference manual),
 * UM1974 (STM32 Nucleo-144 user manual) and the Armv7-M Architecture Reference Manual (caches).
 * Built in CI; NOT run on hardware in this project: verify on a board.
 *
 * - Clock: HSI (16 MHz) -> PLL (M=16, N=432, P=2, Q=9) = 216 MHz SYSCLK (the device maximum) with the
 *   regulator in scale 1 plus over-drive, flash 7 wait states at 2.7-3.6 V with ART accelerator and
 *   prefetch; APB1 /4 (54 MHz), APB2 /2 (108 MHz). I-cache and D-cache on (no DMA here: coherent).
 * - UART: USART3 on PD8 (TX) / PD9 (RX), AF7, wired to the ST-LINK virtual COM port (UM1974).
 *   Kernel clock HSI (DCKCFGR2.USART3SEL), BRR = 16 MHz / baud (oversampling by 16).
 * - Timer: SysTick at HCLK (216 MHz) with a wrap counter.
 * - Marker: PF13 (Arduino D7 on the Nucleo-144 ZIO connector, the pin the MLPerf Tiny reference uses
 *   for its timestamp edge). */
#include "board.h"
#include "cortex_m.h"

#define REG(a) (*(volatile uint32_t *)(a))
/* RCC (RM0410 section "RCC registers", base 0x40023800) */
#define RCC 0x40023800u
#define RCC_CR REG(RCC + 0x00)
#define RCC_PLLCFGR REG(RCC + 0x04)
#define RCC_CFGR REG(RCC + 0x08)
#define RCC_AHB1ENR REG(RCC + 0x30)
#define RCC_APB1ENR REG(RCC + 0x40)
#define RCC_DCKCFGR2 REG(RCC + 0x90)
/* PWR (section "PWR registers") */
#define PWR 0x40007000u
#define PWR_CR1 REG(PWR + 0x00)
#define PWR_CSR1 REG(PWR + 0x04)
/* FLASH (section "Embedded flash memory": FLASH_ACR) */
#define FLASH_ACR REG(0x40023C00u)
/* GPIO (AHB1, 0x40020000 + 0x400 per port) */
#define GPIOD 0x40020C00u
#define GPIOF 0x40021400u
/* USART3 (section "USART registers": the same layout as the L4's) */
#define U3 0x40004800u
#define U3_CR1 REG(U3 + 0x00)
#define U3_BRR REG(U3 + 0x0C)
#define U3_ISR REG(U3 + 0x1C)
#define U3_ICR REG(U3 + 0x20)
#define ISR_ORE (1u << 3)
/* Core (Armv7-M ARM: SCB and the cache maintenance registers) */
#define SCB_VTOR REG(0xE000ED08)
#define SCB_CCR REG(0xE000ED14)
#define SCB_CCSIDR REG(0xE000ED80)
#define SCB_CSSELR REG(0xE000ED84)
#define SCB_ICIALLU REG(0xE000EF50)
#define SCB_DCISW REG(0xE000EF60)
#define NVIC_ISER1 REG(0xE000E104) /* IRQ 32..63 */
#define HCLK_HZ 216000000u
#ifndef FB_BAUD
#define FB_BAUD 115200u
#endif

typedef void (*vec_t)(void);
extern const vec_t fb_vectors[]; /* startup.c */

/* Reading RDR in board_getc clears RXNE; here only clear overrun so the IRQ line drops. */
#define FB_STM32_UART U3
#define FB_MARKER_GPIO GPIOF
#define FB_MARKER_PIN 13
#include "stm32_usart.c"

void USART3_IRQHandler(void) {
  if (U3_ISR & ISR_ORE) U3_ICR = ISR_ORE;
  U3_CR1 &= ~(1u << 5); /* RXNEIE off until the next board_getc re-arms it */
}

static void clock_216mhz(void) {
  RCC_APB1ENR |= 1u << 28; /* PWREN */
  (void)RCC_APB1ENR;
  PWR_CR1 |= 3u << 14; /* VOS = scale 1 */
  RCC_CR |= 1u;        /* HSION (on at reset; kept explicit) */
  while (!(RCC_CR & (1u << 1))) {
  }
  RCC_PLLCFGR = 16u /* PLLM */ | (432u << 6) /* PLLN */ | (0u << 16) /* PLLP=2 */ | (0u << 22) /* HSI */ |
                (9u << 24) /* PLLQ: 48 MHz */ | (2u << 28) /* PLLR: its reset value (unused) */;
  RCC_CR |= 1u << 24; /* PLLON */
  PWR_CR1 |= 1u << 16; /* ODEN: over-drive, needed above 180 MHz */
  while (!(PWR_CSR1 & (1u << 16))) { /* ODRDY */
  }
  PWR_CR1 |= 1u << 17; /* ODSWEN */
  while (!(PWR_CSR1 & (1u << 17))) { /* ODSWRDY */
  }
  while (!(RCC_CR & (1u << 25))) { /* PLLRDY */
  }
  FLASH_ACR = 7u | (1u << 8) | (1u << 9); /* LATENCY = 7 WS (216 MHz at 2.7-3.6 V), PRFTEN, ARTEN */
  while ((FLASH_ACR & 0xFu) != 7u) {
  }
  RCC_CFGR = (RCC_CFGR & ~((7u << 13) | (7u << 10) | (0xFu << 4) | 3u)) | (4u << 13) /* APB2 /2 */ |
             (5u << 10) /* APB1 /4 */ | 2u /* SW = PLL */;
  while (((RCC_CFGR >> 2) & 3u) != 2u) {
  }
}

/* Invalidate, then enable, both L1 caches (Armv7-M ARM B2.2.7; the M7 TRM gives 32-byte lines). */
static void caches_on(void) {
  __asm volatile("dsb\n isb");
  SCB_ICIALLU = 0;
  SCB_CSSELR = 0; /* level 1 data cache */
  __asm volatile("dsb");
  uint32_t ccsidr = SCB_CCSIDR;
  uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u, ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
  for (uint32_t s = 0; s < sets; s++) {
    for (uint32_t w = 0; w < ways; w++) SCB_DCISW = (s << 5) | (w << 30);
  }
  __asm volatile("dsb");
  SCB_CCR |= (1u << 17) | (1u << 16); /* IC, DC */
  __asm volatile("dsb\n isb");
}

void board_init(void) {
  SCB_VTOR = (uint32_t)fb_vectors;
  clock_216mhz();
  caches_on();
  RCC_AHB1ENR |= (1u << 3) | (1u << 5); /* GPIOD, GPIOF */
  (void)RCC_AHB1ENR;
  gpio_af(GPIOD, 8, 7); /* USART3_TX */
  gpio_af(GPIOD, 9, 7); /* USART3_RX */
  marker_pin_init(); /* PF13 */
  RCC_DCKCFGR2 = (RCC_DCKCFGR2 & ~(3u << 4)) | (2u << 4); /* USART3SEL = HSI */
  RCC_APB1ENR |= 1u << 18;                                /* USART3EN */
  (void)RCC_APB1ENR;
  U3_BRR = (16000000u + FB_BAUD / 2) / FB_BAUD;
  U3_CR1 = (1u << 3) | (1u << 2) | 1u; /* TE, RE, UE */
  NVIC_ISER1 = 1u << (FB_UART_IRQ - 32);
  cm_systick_start();
}
