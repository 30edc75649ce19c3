/* bx-driver: clock reset */
/* clock_reset.c: bx_clock_init() of boards that run from the reset clock (QEMU's
 * boards, whose clock trees are not modelled; the board record's clock_hz says which). */
#include "bx_cortexm.h"

void bx_clock_init(void) {}
