/* Board layer: everything the protocol and runtime need from a microcontroller.
 * One implementation per board in boards/<name>/board.c (QEMU mps2-an386, NUCLEO-L4R5ZI). */
#ifndef FB_BOARD_H
#define FB_BOARD_H
#include <stdint.h>
#include "board_config.h" /* FB_BOARD_NAME, FB_MODEL_MAX, FB_DB_MAX, FB_ACT_MAX */

void board_init(void);
void board_putc(char c);
/* Blocking read of one byte; idles in WFI until the UART RX interrupt fires. */
int board_getc(void);
/* Read for bulk transfers: idles in WFI like board_getc but gives up (-1) once board_ticks()
 * passes deadline. (Under QEMU -icount, WFI waiting doubled the upload rate over spinning.) */
int board_getc_until(uint64_t deadline);
/* Free-running 64-bit tick counter (SysTick at the core clock plus a wrap count). */
uint64_t board_ticks(void);
uint32_t board_tick_hz(void);
/* Restart SysTick in phase so that the next interval is deterministic under QEMU -icount;
 * board_ticks() stays monotonic across the restart. */
void board_ticks_restart(void);
/* Optional GPIO marker for the energy window (1 = inside the timed section). */
void board_marker(int level);

#endif
