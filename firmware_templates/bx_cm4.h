/* bx_cm4.h: the few Cortex-M4 core registers the firmware uses, and the interface
 * between the platform layer (platform_cm4.c) and a UART driver (uart_<kind>.c).
 *
 * Register definitions. With -DBX_USE_CMSIS (codegen/firmware.py passes it together
 * with -I<cmsis include dir>) they come from CMSIS-Core's core_cm4.h; otherwise from
 * the minimal definitions below (ARMv7-M Architecture Reference Manual addresses), so
 * the firmware builds with Debian's arm-none-eabi toolchain alone. Both give the same
 * accessors: BX_CPACR, BX_VTOR, BX_DEMCR, BX_DWT_CTRL, BX_DWT_CYCCNT, bx_nvic_enable(),
 * bx_irq_disable() / bx_irq_enable(), bx_wfi(), bx_dsb(), bx_isb().
 */
#ifndef BX_CM4_H
#define BX_CM4_H

#include <stddef.h>
#include <stdint.h>

#include "bx_board.h"

#define BX_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#if defined(BX_USE_CMSIS)
/* The device-header part core_cm4.h expects before it is included. */
typedef enum { BX_IRQN_RESERVED = -1 } IRQn_Type;
#define __CM4_REV               0x0001U
#define __MPU_PRESENT           1U
#define __NVIC_PRIO_BITS        4U
#define __Vendor_SysTickConfig  0U
#define __FPU_PRESENT           1U
#include "core_cm4.h"
#define BX_CPACR      (SCB->CPACR)
#define BX_VTOR       (SCB->VTOR)
#define BX_DEMCR      (CoreDebug->DEMCR)
#define BX_DWT_CTRL   (DWT->CTRL)
#define BX_DWT_CYCCNT (DWT->CYCCNT)
static inline void bx_nvic_enable(int irq) { NVIC_EnableIRQ((IRQn_Type)irq); }
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
static inline void bx_nvic_enable(int irq) { BX_NVIC_ISER(irq >> 5) = 1u << (irq & 31); }
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
/* The UART's interrupt handler (vector 16 + BX_UART_IRQ, see startup_cm4.c). */
void bx_uart_irq_handler(void);

/* ---- provided by platform_cm4.c to the drivers --------------------------------- */

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

/* Start-up hooks (startup_cm4.c). */
void bx_reset_handler(void);
void bx_fault_report(const char *what, uint32_t pc);   /* platform_cm4.c */

#endif /* BX_CM4_H */
