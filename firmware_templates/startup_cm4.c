/* startup_cm4.c: vector table and reset handler for every Cortex-M4 board.
 *
 * The vector table has 16 system entries and BX_CM4_NVIC_IRQS external ones (from the
 * generated bx_board.h). Every external entry points to bx_default_handler except the
 * board's UART receive interrupt (BX_UART_IRQ). The linker script (cm4.ld.j2) puts
 * .isr_vector first in flash and defines the symbols used here:
 *     __stack_top              initial stack pointer (top of the reserved .stack)
 *     __data_load              flash address of the .data image
 *     __data_start __data_end  where .data lives in RAM
 *     __bss_start __bss_end    .bss, zeroed here
 *
 * Reset: enable the FPU first (CPACR CP10/CP11 full access, then DSB/ISB), because
 * the rest of the firmware is compiled with -mfloat-abi=hard and any float instruction
 * before that faults (QEMU: silently wrong results). The copy loops below do no float
 * arithmetic. Then VTOR, .data, .bss, main().
 *
 * Faults: HardFault, MemManage, BusFault and UsageFault report once through
 * bx_fault_report() (platform_cm4.c: an `err 6 INTERNAL fault ...` line on the UART
 * and, when semihosting is built in, a message on the debugger console and
 * SYS_EXIT_EXTENDED with status 3 so QEMU exits); without semihosting the core then
 * waits forever with interrupts off (a watchdog or the reset button recovers it).
 */
#include <stdint.h>

#include "bx_board.h"
#include "bx_cm4.h"

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern int main(void);

typedef void (*bx_vector)(void);

static void bx_fault_handler(void);
void bx_default_handler(void);

__attribute__((noreturn)) void bx_reset_handler(void)
{
    BX_CPACR |= BX_CPACR_CP10_CP11_FULL;
    bx_dsb();
    bx_isb();

    extern const bx_vector bx_vectors[];
    BX_VTOR = (uint32_t)(uintptr_t)bx_vectors;

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
 * bit 2); PC is its 7th word. */
__attribute__((naked)) static void bx_fault_handler(void)
{
    __asm volatile(
        "tst   lr, #4        \n"
        "ite   eq            \n"
        "mrseq r0, msp       \n"
        "mrsne r0, psp       \n"
        "ldr   r1, [r0, #24] \n"
        "ldr   r0, =bx_fault_msg \n"
        "b     bx_fault_report \n");
}

const char bx_fault_msg[] = "fault";

void bx_default_handler(void)
{
    bx_fault_report("unexpected interrupt", 0);
}

#define BX_N_VECTORS (16 + BX_CM4_NVIC_IRQS)

/* GNU range designators fill the external entries; the UART entry then overrides one. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
__attribute__((section(".isr_vector"), used))
const bx_vector bx_vectors[BX_N_VECTORS] = {
    [0] = (bx_vector)(uintptr_t)&__stack_top,
    [1] = bx_reset_handler,
    [2] = bx_default_handler,                 /* NMI */
    [3] = bx_fault_handler,                   /* HardFault */
    [4] = bx_fault_handler,                   /* MemManage */
    [5] = bx_fault_handler,                   /* BusFault */
    [6] = bx_fault_handler,                   /* UsageFault */
    [11] = bx_default_handler,                /* SVCall */
    [12] = bx_default_handler,                /* DebugMon */
    [14] = bx_default_handler,                /* PendSV */
    [15] = bx_default_handler,                /* SysTick */
    [16 ... BX_N_VECTORS - 1] = bx_default_handler,
    [16 + BX_UART_IRQ] = bx_uart_irq_handler,
};
#pragma GCC diagnostic pop
