/* bx-driver: clock stm32f4_hsi_pll; params: pll_m pll_n pll_p pll_q flash_latency apb1_div */
/* clock_stm32f4.c: bx_clock_init() for STM32F4 boards, SYSCLK from the 16 MHz HSI
 * through the main PLL (RM0383 section 6):
 *     f = 16 MHz / M * N / P; AHB = SYSCLK, APB1 = SYSCLK / BX_APB1_DIV, APB2 = SYSCLK.
 * M, N, P, Q, the flash wait states and the APB1 divider come from the board record
 * (codegen/boards/<board>.toml, clock_params) through bx_board.h. */
#include "bx_board.h"
#include "bx_cortexm.h"

#define RCC_CR       BX_REG(0x40023800u)
#define RCC_PLLCFGR  BX_REG(0x40023804u)
#define RCC_CFGR     BX_REG(0x40023808u)
#define RCC_APB1ENR  BX_REG(0x40023840u)
#define PWR_CR       BX_REG(0x40007000u)
#define FLASH_ACR    BX_REG(0x40023C00u)

void bx_clock_init(void)
{
    RCC_APB1ENR |= 1u << 28;                                 /* PWR clock */
    (void)RCC_APB1ENR;
    PWR_CR = (PWR_CR & ~(3u << 14)) | (3u << 14);            /* VOS scale 1 (100 MHz) */
    RCC_CR |= 1u << 0;                                       /* HSI on */
    while (!(RCC_CR & (1u << 1))) {}                         /* HSIRDY */
    /* wait states before the clock goes up; prefetch, instruction and data caches */
    FLASH_ACR = (uint32_t)BX_FLASH_LATENCY | (1u << 8) | (1u << 9) | (1u << 10);
    while ((FLASH_ACR & 0xFu) != (uint32_t)BX_FLASH_LATENCY) {}
    uint32_t ppre1 = BX_APB1_DIV == 1 ? 0u : BX_APB1_DIV == 2 ? 4u : BX_APB1_DIV == 4 ? 5u : 6u;
    RCC_CFGR = (RCC_CFGR & ~((0xFu << 4) | (7u << 10) | (7u << 13))) | (ppre1 << 10);
    RCC_CR &= ~(1u << 24);                                   /* PLL off to configure */
    while (RCC_CR & (1u << 25)) {}
    RCC_PLLCFGR = (uint32_t)BX_PLL_M | ((uint32_t)BX_PLL_N << 6) | ((uint32_t)(BX_PLL_P / 2 - 1) << 16)
                | (0u << 22) /* source HSI */ | ((uint32_t)BX_PLL_Q << 24);
    RCC_CR |= 1u << 24;                                      /* PLL on */
    while (!(RCC_CR & (1u << 25))) {}                        /* PLLRDY */
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;                        /* SYSCLK = PLL */
    while ((RCC_CFGR & (3u << 2)) != (2u << 2)) {}
}
