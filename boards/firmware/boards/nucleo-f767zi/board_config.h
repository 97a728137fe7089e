/* ST NUCLEO-F767ZI (STM32F767ZI, Cortex-M7, 2 MiB flash, 512 KiB SRAM). */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H
#define FB_BOARD_NAME "nucleo-f767zi"
#define FB_MODEL_MAX (256u * 1024u)  /* model blob uploaded to SRAM1 */
#define FB_DB_MAX (64u * 1024u)
#define FB_ACT_MAX 2048u
#define FB_ARENA_MAX (96u * 1024u)   /* tensor arena of blob version 2 graphs */
#define FB_SCRATCH_MAX (24u * 1024u) /* per-op scratch (im2col patch, padded depthwise input) */
#define FB_UART_IRQ 39u                 /* the ST-LINK VCP UART's NVIC line (board.c enables it) */
#define FB_UART_HANDLER USART3_IRQHandler
#endif
