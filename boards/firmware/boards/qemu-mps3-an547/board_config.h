/* QEMU mps3-an547 (Cortex-M55): 512 KiB ITCM for code, 4 MiB SRAM for data (see link.ld). */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H
#define FB_BOARD_NAME "qemu-mps3-an547"
#define FB_MODEL_MAX (2u * 1024u * 1024u) /* model blob area (.noinit) */
#define FB_DB_MAX (256u * 1024u)          /* input / batch buffer */
#define FB_ACT_MAX 4096u                  /* widest activation vector */
#define FB_ARENA_MAX (1024u * 1024u)  /* tensor arena of blob version 2 graphs */
#define FB_SCRATCH_MAX (256u * 1024u) /* per-op scratch (im2col patch, padded depthwise input) */
#define FB_OUT_MAX (64u * 1024u)      /* widest graph output (blob version 2) */
#define FB_UART_BASE 0x59303000u          /* CMSDK UART0, Secure alias of 0x49303000 (behind a PPC) */
#define FB_UART_IRQ 43u                   /* UART0 combined interrupt (only RX is enabled) */
#define FB_TICK_HZ 32000000u              /* SysTick at the AN547's 32 MHz sysclk */
#endif
