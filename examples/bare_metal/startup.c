/* startup.c: the example's own Cortex-M4 start-up (vector table, reset handler).
 *
 * Reset: enable the FPU (CPACR CP10/CP11) before any float instruction (the libraries
 * are compiled for the hard-float ABI), copy .data from flash, zero .bss, run main(). */
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern int main(void);

#define CPACR (*(volatile uint32_t *)0xE000ED88u)

__attribute__((noreturn)) void reset_handler(void)
{
    CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
    main();
    for (;;) {}
}

static void fault_handler(void)
{
    for (;;) {}
}

__attribute__((section(".isr_vector"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, reset_handler,
    fault_handler, fault_handler, fault_handler, fault_handler, fault_handler,   /* NMI .. UsageFault */
};
