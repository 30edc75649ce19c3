/* bx-driver: counter systick; base: no; ticks: hz */
/* counter_systick.c: the cost counter on SysTick, which every Cortex-M core has. It
 * counts down 24 bits at the core clock (CLKSOURCE = 1); its wrap interrupt
 * (bx_systick_handler, vector 15) counts the wraps, so the count read here is
 * wraps * 2^24 + (2^24 - 1 - CVR), kept to 32 bits (platform_cortexm.c extends it).
 * A wrap not yet served (interrupts masked, PENDSTSET set) is counted when the value
 * read is from after it (high: the counter reloaded). Under QEMU -icount shift=10 the
 * ticks convert to instructions by BX_COST_MUL / 2^BX_COST_SHIFT (codegen/boards.py).
 * Paused while the core sleeps, for the reason given in counter_cmsdk_timer.c. */
#include "bx_board.h"
#include "bx_cortexm.h"

#define SYST_CSR  BX_REG(0xE000E010u)
#define SYST_RVR  BX_REG(0xE000E014u)
#define SYST_CVR  BX_REG(0xE000E018u)
#define SCB_ICSR  BX_REG(0xE000ED04u)
#define CSR_RUN   ((1u << 0) | (1u << 1) | (1u << 2))        /* ENABLE, TICKINT, CLKSOURCE */
#define ICSR_PENDSTSET (1u << 26)

static volatile uint32_t wraps;

void bx_systick_handler(void) { wraps++; }

void bx_counter_init(void)
{
    SYST_CSR = 0;
    SYST_RVR = 0x00FFFFFFu;
    SYST_CVR = 0;                                            /* any write clears it: reload */
    SYST_CSR = CSR_RUN;
}

uint32_t bx_counter_read(void)
{
    uint32_t w, v, pend;
    do {
        w = wraps;
        v = SYST_CVR;
        pend = SCB_ICSR & ICSR_PENDSTSET;
    } while (w != wraps);
    if (pend && v >= 0x00800000u) w++;
    return (w << 24) + (0x00FFFFFFu - v);
}

void bx_counter_idle(int idle) { SYST_CSR = idle ? 0u : CSR_RUN; }
