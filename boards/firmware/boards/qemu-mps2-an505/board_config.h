/* QEMU mps2-an505 (Cortex-M33): 4 MiB code SSRAM, 4 MiB data SSRAM (Secure aliases, see link.ld). */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H
#define FB_BOARD_NAME "qemu-mps2-an505"
#define FB_MODEL_MAX (2u * 1024u * 1024u) /* model blob area (.noinit) */
#define FB_DB_MAX (256u * 1024u)          /* input / batch buffer */
#define FB_ACT_MAX 4096u                  /* widest activation vector */
#define FB_ARENA_MAX (1024u * 1024u)  /* tensor arena of blob version 2 graphs */
#define FB_SCRATCH_MAX (256u * 1024u) /* per-op scratch (im2col patch, padded depthwise input) */
#define FB_OUT_MAX (64u * 1024u)      /* widest graph output (blob version 2) */
#define FB_UART_BASE 0x50200000u          /* CMSDK UART0, Secure alias of 0x40200000 (behind a PPC) */
#define FB_UART_IRQ 42u                   /* UART0 combined interrupt (only RX is enabled) */
#define FB_TICK_HZ 20000000u              /* SysTick at the AN505's 20 MHz sysclk */
#endif
