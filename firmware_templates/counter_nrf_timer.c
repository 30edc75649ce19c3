/* bx-driver: counter nrf_timer; base: yes; ticks: hz */
/* counter_nrf_timer.c: the cost counter on TIMER0 of an nRF51 / nRF52 (nRF51 RM v3.0
 * section 18, nRF52840 PS section 6.30): timer mode, 32 bits, prescaler 0 (16 MHz).
 * The count is read by triggering CAPTURE[0] and reading CC[0]. Under QEMU -icount
 * shift=10 the ticks convert to instructions by BX_COST_MUL / 2^BX_COST_SHIFT
 * (codegen/boards.py: 16 MHz gives 125 / 2^11).
 *
 * Paused while the core sleeps, as the CMSDK timer is (counter_cmsdk_timer.c): QEMU's
 * nRF timer always arms a deadline (the next compare or the wrap), and an idle guest
 * under -icount sleep=off would jump to it. QEMU's STOP task does not bring the count
 * up to date, so a capture comes first. */
#include "bx_board.h"
#include "bx_cortexm.h"

#define TIMER_START     BX_REG(BX_COUNTER_BASE + 0x000u)
#define TIMER_STOP      BX_REG(BX_COUNTER_BASE + 0x004u)
#define TIMER_CLEAR     BX_REG(BX_COUNTER_BASE + 0x00Cu)
#define TIMER_CAPTURE0  BX_REG(BX_COUNTER_BASE + 0x040u)
#define TIMER_MODE      BX_REG(BX_COUNTER_BASE + 0x504u)
#define TIMER_BITMODE   BX_REG(BX_COUNTER_BASE + 0x508u)
#define TIMER_PRESCALER BX_REG(BX_COUNTER_BASE + 0x510u)
#define TIMER_CC0       BX_REG(BX_COUNTER_BASE + 0x540u)

void bx_counter_init(void)
{
    TIMER_STOP = 1u;
    TIMER_MODE = 0u;                                         /* timer */
    TIMER_BITMODE = 3u;                                      /* 32 bits */
    TIMER_PRESCALER = 0u;                                    /* 16 MHz */
    TIMER_CLEAR = 1u;
    TIMER_START = 1u;
}

uint32_t bx_counter_read(void)
{
    TIMER_CAPTURE0 = 1u;
    return TIMER_CC0;
}

void bx_counter_idle(int idle)
{
    if (idle) {
        TIMER_CAPTURE0 = 1u;                                 /* bring the count up to date */
        TIMER_STOP = 1u;
    } else {
        TIMER_START = 1u;
    }
}
