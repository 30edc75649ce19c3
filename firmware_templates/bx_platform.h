/* bx_platform.h: what each target provides to the portable firmware (main.c,
 * bx_protocol.c). One implementation per target: platform_host.c (x86 emulator over
 * stdin/stdout) or the Cortex-M4 startup + UART driver. See docs/INTERNALS.md. */
#ifndef BX_PLATFORM_H
#define BX_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "bx_board.h"           /* BX_BOARD_NAME, BX_COST_UNIT, BX_LINE_MAX, BX_RX_RING */

#define BX_GETC_EOF      (-1)   /* input closed (host emulator only) */
#define BX_GETC_OVERRUN  (-2)   /* bytes of the line in progress were lost before the next byte */
#define BX_GETC_LOST_LINE (-3)  /* bytes were lost up to and including a line end: the line in
                                 * progress ended there (one result per line end lost) */

/* Bring up clocks, FPU, UART, counters. Called once, first thing in main(). */
void     bx_platform_init(void);

/* Next received byte 0..255, blocking (WFI on boards), or BX_GETC_EOF / BX_GETC_OVERRUN /
 * BX_GETC_LOST_LINE. */
int      bx_platform_getc(void);

/* Send s[0..n) (no terminator needed); returns when the bytes are handed to the line. */
void     bx_platform_write(const char *s, size_t n);

/* Monotonic work counter in BX_COST_UNIT ("ns", "instr", "cycles"): on boards, work
 * outside the UART interrupt (platform_cortexm.c takes the interrupt's time out). */
uint64_t bx_platform_cost(void);

/* Stop: exit status to the host (emulator, QEMU semihosting); boards may halt. */
void     bx_platform_exit(int code);

#endif /* BX_PLATFORM_H */
