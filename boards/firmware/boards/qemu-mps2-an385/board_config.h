/* QEMU mps2-an385 (Cortex-M3): 4 MiB code SSRAM at 0, 4 MiB data SSRAM at 0x20000000 (as mps2-an386). */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H
#define FB_BOARD_NAME "qemu-mps2-an385"
#define FB_MODEL_MAX (2u * 1024u * 1024u) /* model blob area (QEMU -device loader may preload it) */
#define FB_MODEL_ADDR 0x20200000u         /* fixed address of that area (see link.ld) */
#define FB_DB_MAX (256u * 1024u)          /* input / batch buffer */
#define FB_ACT_MAX 4096u                  /* widest activation vector */
#define FB_ARENA_MAX (1024u * 1024u)  /* tensor arena of blob version 2 graphs */
#define FB_SCRATCH_MAX (256u * 1024u) /* per-op scratch (im2col patch, padded depthwise input) */
#define FB_OUT_MAX (64u * 1024u)      /* widest graph output (blob version 2) */
#define FB_UART_BASE 0x40004000u          /* CMSDK UART0 (QEMU hw/arm/mps2.c) */
#define FB_UART_IRQ 0u                    /* its RX interrupt */
#define FB_TICK_HZ 25000000u              /* SysTick at QEMU's 25 MHz sysclk */
#endif
