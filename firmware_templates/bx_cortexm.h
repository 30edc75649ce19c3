/* bx_cortexm.h: the few Cortex-M core registers the firmware uses, and the interface
 * between the platform layer (platform_cortexm.c) and a board's drivers: its UART
 * (uart_<kind>.c), cost counter (counter_<kind>.c) and clock (clock_<kind>.c).
 *
 * Register definitions. With -DBX_USE_CMSIS (codegen/firmware.py passes it together
 * with -I<cmsis include dir>) they come from the core's CMSIS-Core header
 * (BX_CMSIS_CORE_HEADER, from codegen/cores.toml: core_cm4.h, core_cm0.h ...); otherwise from
 * the minimal definitions below (ARMv7-M Architecture Reference Manual addresses), so
 * the firmware builds with Debian's arm-none-eabi toolchain alone. Both give the same
 * accessors: BX_CPACR, BX_VTOR, BX_DEMCR, BX_DWT_CTRL, BX_DWT_CYCCNT, bx_nvic_enable(),
 * bx_irq_disable() / bx_irq_enable(), bx_wfi(), bx_dsb(), bx_isb().
 */
#ifndef BX_CORTEXM_H
#define BX_CORTEXM_H

#include <stddef.h>
#include <stdint.h>

#include "bx_board.h"

#define BX_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#if defined(BX_USE_CMSIS)
/* The device-header part a CMSIS core header expects before it is included; the
 * values come from the board and core records (bx_board.h). */
typedef enum { BX_IRQN_RESERVED = -1 } IRQn_Type;
#define __CM0_REV               0x0000U
#define __CM0PLUS_REV           0x0000U
#define __CM3_REV               0x0201U
#define __CM4_REV               0x0001U
#define __CM7_REV               0x0000U
#define __CM33_REV              0x0000U
#define __CM55_REV              0x0000U
#define __MPU_PRESENT           0U
#define __NVIC_PRIO_BITS        BX_NVIC_PRIO_BITS
#define __Vendor_SysTickConfig  0U
#define __VTOR_PRESENT          BX_CORE_VTOR
#define __FPU_PRESENT           BX_CORE_FPU
#define __DSP_PRESENT           BX_CORE_DSP
#define __SAUREGION_PRESENT     0U
#define __MVE_PRESENT           0U
#include BX_CMSIS_CORE_HEADER
#define BX_CPACR      (SCB->CPACR)
#define BX_VTOR       (SCB->VTOR)
#define BX_DEMCR      (CoreDebug->DEMCR)
#define BX_DWT_CTRL   (DWT->CTRL)
#define BX_DWT_CYCCNT (DWT->CYCCNT)
static inline void bx_nvic_enable(int irq) { NVIC_EnableIRQ((IRQn_Type)irq); }
static inline void bx_nvic_disable(int irq) { NVIC_DisableIRQ((IRQn_Type)irq); }
static inline void bx_nvic_pend(int irq) { NVIC_SetPendingIRQ((IRQn_Type)irq); }
static inline void bx_nvic_unpend(int irq) { NVIC_ClearPendingIRQ((IRQn_Type)irq); }
static inline void bx_irq_disable(void) { __disable_irq(); }
static inline void bx_irq_enable(void) { __enable_irq(); }
static inline void bx_wfi(void) { __WFI(); }
static inline void bx_dsb(void) { __DSB(); }
static inline void bx_isb(void) { __ISB(); }
#else
#define BX_CPACR      BX_REG(0xE000ED88u)   /* coprocessor access control */
#define BX_VTOR       BX_REG(0xE000ED08u)   /* vector table offset */
#define BX_DEMCR      BX_REG(0xE000EDFCu)   /* debug exception and monitor control */
#define BX_DWT_CTRL   BX_REG(0xE0001000u)
#define BX_DWT_CYCCNT BX_REG(0xE0001004u)
#define BX_NVIC_ISER(n) BX_REG(0xE000E100u + 4u * (uint32_t)(n))
#define BX_NVIC_ICER(n) BX_REG(0xE000E180u + 4u * (uint32_t)(n))
#define BX_NVIC_ISPR(n) BX_REG(0xE000E200u + 4u * (uint32_t)(n))
#define BX_NVIC_ICPR(n) BX_REG(0xE000E280u + 4u * (uint32_t)(n))
static inline void bx_nvic_enable(int irq) { BX_NVIC_ISER(irq >> 5) = 1u << (irq & 31); }
static inline void bx_nvic_disable(int irq) { BX_NVIC_ICER(irq >> 5) = 1u << (irq & 31); }
static inline void bx_nvic_pend(int irq) { BX_NVIC_ISPR(irq >> 5) = 1u << (irq & 31); }
static inline void bx_nvic_unpend(int irq) { BX_NVIC_ICPR(irq >> 5) = 1u << (irq & 31); }
static inline void bx_irq_disable(void) { __asm volatile ("cpsid i" ::: "memory"); }
static inline void bx_irq_enable(void) { __asm volatile ("cpsie i" ::: "memory"); }
static inline void bx_wfi(void) { __asm volatile ("wfi" ::: "memory"); }
static inline void bx_dsb(void) { __asm volatile ("dsb 0xF" ::: "memory"); }
static inline void bx_isb(void) { __asm volatile ("isb 0xF" ::: "memory"); }
#endif

#define BX_CPACR_CP10_CP11_FULL (0xFu << 20)   /* full access to the FPU (CP10, CP11) */
#define BX_DEMCR_TRCENA         (1u << 24)
#define BX_DWT_CTRL_CYCCNTENA   (1u << 0)

/* ---- UART driver interface (one uart_<kind>.c per UART kind) ----------------- */

/* Configure the UART of bx_board.h (BX_UART_BASE, BX_UART_BAUD), enable its receive
 * interrupt in the peripheral and the NVIC. Received bytes go to bx_rx_push(). */
void bx_uart_init(void);
/* Send n bytes, polling the transmitter. */
void bx_uart_write(const uint8_t *s, size_t n);
/* Wait until the last byte has left the transmitter (before a reset or exit). */
void bx_uart_flush(void);
/* The UART's interrupt handler, called by platform_cortexm.c's bx_uart_irq_entry
 * (vector 16 + BX_UART_IRQ, see startup_cortexm.c), which takes its time out of the cost. */
void bx_uart_irq_handler(void);
void bx_uart_irq_entry(void);

/* ---- cost counter interface (one counter_<kind>.c per counter kind) ------------ */

void     bx_counter_init(void);
/* The raw 32-bit tick count, counting up (platform_cortexm.c extends and scales it). */
uint32_t bx_counter_read(void);
/* idle = 1 before the core sleeps in WFI, 0 after it wakes. */
void     bx_counter_idle(int idle);
#if defined(BX_COUNTER_SYSTICK)
void     bx_systick_handler(void);      /* counter_systick.c: vector 15 */
#endif

/* ---- clock interface (one clock_<kind>.c per clock kind) ------------------------ */

void     bx_clock_init(void);           /* first thing in bx_platform_init() */

/* ---- provided by platform_cortexm.c to the drivers ----------------------------- */

/* Called from the UART interrupt for each received byte; `lost` != 0 when the
 * hardware reports bytes lost before this one (receiver overrun). */
void bx_rx_push(uint8_t byte, int lost);

/* Semihosting (ARM DUI 0471): op in r0, argument in r1, result in r0, via BKPT 0xAB.
 * Only with BX_SEMIHOSTING=1: without a debugger or QEMU's -semihosting-config the
 * BKPT is a HardFault. */
#if BX_SEMIHOSTING
static inline int bx_semihost(int op, const void *arg)
{
    register int r0 __asm("r0") = op;
    register const void *r1 __asm("r1") = arg;
    __asm volatile ("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}
#define BX_SYS_WRITE0          0x04
#define BX_SYS_EXIT_EXTENDED   0x20
#define BX_ADP_APPLICATION_EXIT 0x20026
#endif

/* Start-up hooks (startup_cortexm.c). */
void bx_reset_handler(void);
void bx_fault_report(const char *what, uint32_t pc);   /* platform_cortexm.c */

#endif /* BX_CORTEXM_H */
