/* BBC micro:bit v1 under QEMU `-M microbit`: nRF51822 (Cortex-M0, 16 MHz), 256 KiB flash, 16 KiB RAM.
 * Buffers are sized to that RAM: a model blob of up to 8 KiB (e.g. a 64-64-10 int8 MLP), a 1 KiB
 * input buffer and 256-wide activations. */
#ifndef FB_BOARD_CONFIG_H
#define FB_BOARD_CONFIG_H
#define FB_BOARD_NAME "qemu-microbit"
#define FB_MODEL_MAX (8u * 1024u) /* model blob area (.noinit) */
#define FB_DB_MAX 1024u           /* input / batch buffer */
#define FB_ACT_MAX 256u           /* widest activation vector */
#define FB_ARENA_MAX 1024u        /* tensor arena of blob version 2 graphs (a tiny CNN at most) */
#define FB_SCRATCH_MAX 256u       /* per-op scratch */
#define FB_BOARD_TICKS 1          /* no SysTick on the nRF51: board.c counts with TIMER0 */
#define FB_TICK_HZ 16000000u
#endif
