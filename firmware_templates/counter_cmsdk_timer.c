/* bx-driver: counter cmsdk_timer; base: yes; ticks: hz */
/* counter_cmsdk_timer.c: the cost counter on a CMSDK APB timer (mps2, mps3): timer0
 * counting down from 0xFFFFFFFF at BX_COUNTER_BASE. Under QEMU -icount shift=10 the
 * ticks convert to instructions by BX_COST_MUL / 2^BX_COST_SHIFT (codegen/boards.py). */
#include "bx_board.h"
#include "bx_cortexm.h"

#define TIMER_CTRL   BX_REG(BX_COUNTER_BASE + 0x00u)
#define TIMER_VALUE  BX_REG(BX_COUNTER_BASE + 0x04u)
#define TIMER_RELOAD BX_REG(BX_COUNTER_BASE + 0x08u)

void bx_counter_init(void)
{
    TIMER_CTRL = 0;
    TIMER_RELOAD = 0xFFFFFFFFu;
    TIMER_VALUE = 0xFFFFFFFFu;
    TIMER_CTRL = 1u;                                         /* enable, no interrupt */
}

uint32_t bx_counter_read(void) { return ~TIMER_VALUE; }     /* down-counter -> up */

/* Paused while the core sleeps: a running timer is a pending QEMU timer deadline, and
 * with -icount sleep=off an idle guest jumps virtual time from deadline to deadline,
 * burning a host core while it waits for input. Sleep is no work anyway. */
void bx_counter_idle(int idle) { TIMER_CTRL = idle ? 0u : 1u; }
