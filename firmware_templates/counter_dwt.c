/* bx-driver: counter dwt; base: no; ticks: cycles; needs: thumb2 */
/* counter_dwt.c: the cost counter on the DWT cycle counter (CYCCNT) of Armv7-M and
 * Armv8-M Mainline cores. Silicon only: it reads 0 under QEMU. */
#include "bx_board.h"
#include "bx_cortexm.h"

void bx_counter_init(void)
{
    BX_DEMCR |= BX_DEMCR_TRCENA;
    BX_DWT_CYCCNT = 0;
    BX_DWT_CTRL |= BX_DWT_CTRL_CYCCNTENA;
}

uint32_t bx_counter_read(void) { return BX_DWT_CYCCNT; }

void bx_counter_idle(int idle) { (void)idle; }
