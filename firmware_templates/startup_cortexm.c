/* startup_cortexm.c: vector table and reset handler for every Cortex-M board.
 *
 * The vector table has 16 system entries and BX_CM_NVIC_IRQS external ones (from the
 * generated bx_board.h). Every external entry points to bx_default_handler except the
 * board's UART receive interrupt (BX_UART_IRQ). The linker script (cortexm.ld.j2) puts
 * .isr_vector first in flash and defines the symbols used here:
 *     __stack_top              initial stack pointer (top of the reserved .stack)
 *     __data_load              flash address of the .data image
 *     __data_start __data_end  where .data lives in RAM
 *     __bss_start __bss_end    .bss, zeroed here
 *
 * Reset: on cores with an FPU (BX_CORE_FPU, from codegen/cores.toml) enable it first
 * (CPACR CP10/CP11 full access, then DSB/ISB), because the rest of the firmware is
 * compiled with -mfloat-abi=hard and any float instruction before that faults (QEMU:
 * silently wrong results). The copy loops below do no float arithmetic. Then VTOR
 * (where the core has one: not on the Cortex-M0, whose table is always at 0), .data,
 * .bss, main().
 *
 * Faults: HardFault, MemManage, BusFault and UsageFault report once through
 * bx_fault_report() (platform_cortexm.c: an `err 6 INTERNAL fault ...` line on the UART
 * and, when semihosting is built in, a message on the debugger console and
 * SYS_EXIT_EXTENDED with status 3 so QEMU exits); without semihosting the core then
 * waits forever with interrupts off (a watchdog or the reset button recovers it).
 */
#include <stdint.h>

#include "bx_board.h"
#include "bx_cortexm.h"

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern int main(void);

typedef void (*bx_vector)(void);

static void bx_fault_handler(void);
void bx_default_handler(void);

__attribute__((noreturn)) void bx_reset_handler(void)
{
#if BX_CORE_FPU
    BX_CPACR |= BX_CPACR_CP10_CP11_FULL;
    bx_dsb();
    bx_isb();
#endif
#if BX_CORE_VTOR
    extern const bx_vector bx_vectors[];
    BX_VTOR = (uint32_t)(uintptr_t)bx_vectors;
#endif

    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;)
        *dst++ = 0;

    main();
    bx_fault_report("main returned", 0);
    for (;;)
        bx_wfi();
}

/* The stacked PC of the faulting code: the exception frame is on MSP or PSP (EXC_RETURN
 * bit 2); PC is its 7th word. Armv6-M (Thumb-1: no IT block, no conditional MRS, a short
 * B) takes the long way. */
__attribute__((naked)) static void bx_fault_handler(void)
{
#if BX_CORE_THUMB2
    __asm volatile(
        "tst   lr, #4        \n"
        "ite   eq            \n"
        "mrseq r0, msp       \n"
        "mrsne r0, psp       \n"
        "ldr   r1, [r0, #24] \n"
        "ldr   r0, =bx_fault_msg \n"
        "b     bx_fault_report \n");
#else
    __asm volatile(
        "movs  r0, #4        \n"
        "mov   r1, lr        \n"
        "tst   r0, r1        \n"
        "bne   1f            \n"
        "mrs   r0, msp       \n"
        "b     2f            \n"
        "1: mrs r0, psp      \n"
        "2: ldr r1, [r0, #24] \n"
        "ldr   r0, =bx_fault_msg \n"
        "ldr   r2, =bx_fault_report \n"
        "bx    r2            \n"
        ".ltorg              \n");
#endif
}

const char bx_fault_msg[] = "fault";

void bx_default_handler(void)
{
    bx_fault_report("unexpected interrupt", 0);
}

#define BX_N_VECTORS (16 + BX_CM_NVIC_IRQS)

/* GNU range designators fill the external entries; the UART entry then overrides one. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
__attribute__((section(".isr_vector"), used))
const bx_vector bx_vectors[BX_N_VECTORS] = {
    [0] = (bx_vector)(uintptr_t)&__stack_top,
    [1] = bx_reset_handler,
    [2] = bx_default_handler,                 /* NMI */
    [3] = bx_fault_handler,                   /* HardFault */
#if BX_CORE_THUMB2
    [4] = bx_fault_handler,                   /* MemManage */
    [5] = bx_fault_handler,                   /* BusFault */
    [6] = bx_fault_handler,                   /* UsageFault */
    [7] = bx_fault_handler,                   /* SecureFault (Armv8-M Mainline) */
#endif
    [11] = bx_default_handler,                /* SVCall */
#if BX_CORE_THUMB2
    [12] = bx_default_handler,                /* DebugMon */
#endif
    [14] = bx_default_handler,                /* PendSV */
#if defined(BX_COUNTER_SYSTICK)
    [15] = bx_systick_handler,                /* SysTick: the cost counter's wraps */
#else
    [15] = bx_default_handler,                /* SysTick */
#endif
    [16 ... BX_N_VECTORS - 1] = bx_default_handler,
    [16 + BX_UART_IRQ] = bx_uart_irq_entry,
};
#pragma GCC diagnostic pop
