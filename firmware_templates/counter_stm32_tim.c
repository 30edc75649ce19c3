/* bx-driver: counter stm32_tim; base: yes; ticks: instructions; params: rcc_apb1 */
/* counter_stm32_tim.c: the cost counter on a 32-bit STM32 general-purpose timer (TIM2)
 * counting up. QEMU clocks its timers at 1 GHz; the prescaler 2^10 - 1 makes one tick
 * per instruction under -icount shift=10. */
#include "bx_board.h"
#include "bx_cortexm.h"

#define TIM_CR1  BX_REG(BX_COUNTER_BASE + 0x00u)
#define TIM_EGR  BX_REG(BX_COUNTER_BASE + 0x14u)
#define TIM_CNT  BX_REG(BX_COUNTER_BASE + 0x24u)
#define TIM_PSC  BX_REG(BX_COUNTER_BASE + 0x28u)

void bx_counter_init(void)
{
    BX_REG(0x40023840u) |= BX_COUNTER_RCC_APB1;              /* RCC_APB1ENR: timer clock */
    TIM_CR1 = 0;
    TIM_PSC = BX_TIM_PRESCALER;
    /* ARR keeps its reset value (0xFFFFFFFF on the 32-bit TIM2/TIM5 of silicon). Writing
     * it would arm a QEMU timer deadline, and with -icount sleep=off the idle guest
     * would then spin through virtual time while waiting for input. QEMU's CNT counts
     * regardless of ARR. */
    TIM_EGR = 1u;                                            /* UG: load PSC, CNT = 0 */
    TIM_CR1 = 1u;                                            /* CEN */
}

uint32_t bx_counter_read(void) { return TIM_CNT; }

void bx_counter_idle(int idle) { (void)idle; }
