/* ST NUCLEO-L552ZE-Q (STM32L552ZE, Cortex-M33, 512 KiB flash, 256 KiB SRAM). */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H
#define FB_BOARD_NAME "nucleo-l552ze-q"
#define FB_MODEL_MAX (112u * 1024u)  /* model blob uploaded to SRAM1; ~27 KiB stay for the stack */
#define FB_DB_MAX (32u * 1024u)
#define FB_ACT_MAX 2048u
#define FB_ARENA_MAX (48u * 1024u)   /* tensor arena of blob version 2 graphs */
#define FB_SCRATCH_MAX (16u * 1024u) /* per-op scratch (im2col patch, padded depthwise input) */
#define FB_UART_IRQ 66u                 /* the ST-LINK VCP UART's NVIC line (board.c enables it) */
#define FB_UART_HANDLER LPUART1_IRQHandler
#endif
