/* ST NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F, 2 MiB flash, 640 KiB SRAM): the MLPerf Tiny reference board. */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H
#define FB_BOARD_NAME "nucleo-l4r5zi"
#define FB_MODEL_MAX (384u * 1024u) /* model blob uploaded to SRAM3 */
#define FB_DB_MAX (64u * 1024u)
#define FB_ACT_MAX 2048u
#define FB_ARENA_MAX (96u * 1024u)  /* tensor arena of blob version 2 graphs */
#define FB_SCRATCH_MAX (24u * 1024u) /* per-op scratch (im2col patch, padded depthwise input) */
#define FB_UART_IRQ 70u                 /* the ST-LINK VCP UART's NVIC line (board.c enables it) */
#define FB_UART_HANDLER LPUART1_IRQHandler
#endif
