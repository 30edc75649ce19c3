/* platform_cortexm.c: bx_platform_* (bx_platform.h) for every Cortex-M board.
 *
 * Input. The UART driver's receive interrupt calls bx_rx_push() for every byte; the
 * bytes wait in a ring of BX_RX_RING bytes until bx_platform_getc() takes them.
 * BX_RX_RING is sized at generation time (beexgen.host.protocol.link_sizes) to hold
 * BX_WINDOW whole request lines: a host that keeps at most BX_WINDOW requests
 * unanswered never fills it (docs/INTERNALS.md, "Flow control").
 *
 * When the ring is full anyway (a host beyond the window), nothing may merge two
 * lines or swallow a reply. The interrupt then drops bytes until the main loop has
 * emptied the ring, but it still watches them: it counts the line ends among the
 * dropped bytes (CR, LF, CRLF counted once, the same rule as main.c) and notes whether
 * bytes were dropped after the last of them. Once the ring is empty, getc reports the
 * loss before any later byte: BX_GETC_LOST_LINE once per dropped line end (main.c
 * answers each of those lines `err OVERRUN`), then BX_GETC_OVERRUN if the line in
 * progress lost bytes. A LF right after a dropped CR is dropped too (the CRLF's second
 * half). So every line that reached the UART gets exactly one reply. A hardware
 * receiver overrun (bytes lost inside the UART, never seen) starts the same dropping,
 * as a damaged line; such a loss cannot be counted in lines, but it needs the
 * interrupt to be masked for a whole character time, which this firmware never does.
 *
 * Dropping until the ring is empty, rather than until one byte fits, keeps a single
 * loss record: there is never more than one loss waiting in the ring.
 *
 * getc sleeps in WFI while the ring is empty: interrupts are masked (PRIMASK) around the
 * check and the WFI, so a byte arriving in between still wakes the core (WFI wakes on a
 * pending interrupt even while PRIMASK masks it); nothing busy-polls.
 *
 * Cost counter (bx_board.h, see codegen/boards.py): work outside the UART interrupt (its
 * time is measured in bx_uart_irq_entry and taken out), from a 32-bit hardware count
 * whose deltas between reads are scaled one by one (see raw_cost):
 *     cost += (delta_ticks * BX_COST_MUL + 2^(BX_COST_SHIFT-1)) >> BX_COST_SHIFT
 * The counter itself is the board's counter_<kind>.c (bx_counter_init, bx_counter_read,
 * bx_counter_idle; bx_cortexm.h), the clock set-up its clock_<kind>.c (bx_clock_init).
 *
 * Exit. With BX_SEMIHOSTING=1, SYS_EXIT_EXTENDED (QEMU exits with the code); otherwise
 * the core waits forever with interrupts off.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "bx_board.h"
#include "bx_cortexm.h"
#include "bx_platform.h"

#if (BX_RX_RING & (BX_RX_RING - 1)) != 0 || BX_RX_RING < 2
#error "BX_RX_RING must be a power of two"
#endif
#define RX_LF 0x0Au
#define RX_CR 0x0Du

static volatile uint8_t  rx_ring[BX_RX_RING];
static volatile uint32_t rx_head;               /* written by the interrupt only */
static volatile uint32_t rx_tail;               /* written by getc only */
/* The loss record, written by the interrupt while dropping, read and cleared by getc
 * (with interrupts masked) once the ring is empty. */
static volatile uint32_t rx_dropping;           /* 1: drop every byte until the ring is empty */
static volatile uint32_t rx_lost_ends;          /* line ends among the dropped bytes */
static volatile uint32_t rx_lost_tail;          /* bytes dropped after the last of them */
static volatile uint32_t rx_prev_cr;            /* the last byte seen (kept or dropped) was CR */
static volatile uint32_t rx_skip_lf;            /* a dropped CR: a LF next is its second half */

static void rx_drop(uint8_t byte)
{
    int crlf_half = byte == RX_LF && rx_prev_cr;
    if (crlf_half) {
        /* the line ended at the CR already */
    } else if (byte == RX_LF || byte == RX_CR) {
        rx_lost_ends++;
        rx_lost_tail = 0;
    } else {
        rx_lost_tail = 1;
    }
    rx_skip_lf = byte == RX_CR;
}

void bx_rx_push(uint8_t byte, int lost)
{
    uint32_t head = rx_head;
    if (lost && !rx_dropping) {                 /* the UART lost bytes before this one */
        rx_dropping = 1;
        rx_lost_tail = 1;
    }
    if (!rx_dropping && head - rx_tail >= BX_RX_RING) rx_dropping = 1;
    if (rx_dropping) {
        rx_drop(byte);
    } else if (byte == RX_LF && rx_skip_lf) {
        rx_skip_lf = 0;                         /* second half of a dropped CRLF */
    } else {
        rx_skip_lf = 0;
        rx_ring[head & (BX_RX_RING - 1)] = byte;
        rx_head = head + 1;
    }
    rx_prev_cr = byte == RX_CR;
}

int bx_platform_getc(void)
{
    for (;;) {
        bx_irq_disable();
        uint32_t tail = rx_tail;
        if (tail != rx_head) {
            int c = rx_ring[tail & (BX_RX_RING - 1)];
            rx_tail = tail + 1;
            bx_irq_enable();
            return c;
        }
        if (rx_dropping) {                      /* ring empty: report the loss, in order */
            int c;
            if (rx_lost_ends) {
                rx_lost_ends--;
                c = BX_GETC_LOST_LINE;
            } else {
                c = rx_lost_tail ? BX_GETC_OVERRUN : 0;
                rx_lost_tail = 0;
                rx_dropping = 0;                /* the next byte is stored again */
            }
            bx_irq_enable();
            if (c) return c;
            continue;
        }
        bx_counter_idle(1);
        bx_wfi();                               /* wakes on the pending UART interrupt */
        bx_counter_idle(0);
        bx_irq_enable();                        /* ... which runs here */
    }
}

void bx_platform_write(const char *s, size_t n)
{
    bx_uart_write((const uint8_t *)s, n);
}

static uint32_t cost_last;             /* the last raw count read */
static uint64_t cost_units;            /* the scaled deltas between reads, summed */
static uint64_t irq_cost;              /* cost spent in the UART interrupt (read with it masked) */
static uint64_t irq_fixed;             /* its instructions outside the two reads, per interrupt */
static uint32_t irq_entries;           /* interrupts taken */

/* The counter in cost units: the sum of the deltas between consecutive reads, each scaled
 * and rounded on its own. Under QEMU -icount one instruction is 25.6 ticks of timer0, so
 * a delta of N instructions reads N * 25.6 +- 1 ticks and rounds back to exactly N; the sum
 * is then exact however many reads (rounding the total count instead would make reads at
 * different phases of the 25.6 pattern differ by one). Reads must come less than 2^32
 * ticks apart (the counter pauses while the core sleeps). Callers keep the UART
 * interrupt out. */
static uint64_t raw_cost(void)
{
    uint32_t t = bx_counter_read();
    uint32_t d = t - cost_last;                 /* mod 2^32: one wrap at most */
    cost_last = t;
#if BX_COST_SHIFT > 0
    cost_units += ((uint64_t)d * BX_COST_MUL + ((uint64_t)1 << (BX_COST_SHIFT - 1))) >> BX_COST_SHIFT;
#else
    cost_units += (uint64_t)d * BX_COST_MUL;
#endif
    return cost_units;
}

/* The UART interrupt, as the vector table calls it: the driver's handler between two
 * reads of the counter, whose difference plus the constant irq_fixed (the entry's own
 * instructions outside the reads, measured once by calibrate_irq) is taken out of
 * bx_platform_cost(). So cost= counts the work of the main loop alone, whenever bytes
 * arrive (docs/INTERNALS.md, "Cost"). */
void bx_uart_irq_entry(void)
{
    uint64_t t0 = raw_cost();
    bx_uart_irq_handler();
    irq_cost += raw_cost() - t0 + irq_fixed;
    irq_entries++;
}

uint64_t bx_platform_cost(void)
{
    bx_irq_disable();
    uint64_t c = raw_cost() - irq_cost;
    bx_irq_enable();
    return c;
}

/* What the main loop saw between two counter reads with one UART interrupt pended in
 * between: the counter's advance, and the interrupts taken inside that window with their
 * measured parts (snapshots taken with interrupts masked, so an interrupt taken after the
 * second read is not in them). */
struct irq_window {
    uint64_t cost;
    uint64_t part;
    uint32_t taken;
};

__attribute__((noinline)) static void pend_between_reads(struct irq_window *w)
{
    bx_irq_disable();
    uint64_t a = raw_cost(), part0 = irq_cost;
    uint32_t taken0 = irq_entries;
    bx_irq_enable();
    bx_nvic_pend(BX_UART_IRQ);
    bx_dsb();
    bx_isb();                                   /* taken here when enabled */
    bx_irq_disable();
    uint64_t b = raw_cost();
    w->cost = b - a;
    w->part = irq_cost - part0;
    w->taken = irq_entries - taken0;
    bx_irq_enable();
}

/* irq_fixed: the instructions of one interrupt outside its two reads. The window with the
 * interrupt enabled less the same window with it disabled in the NVIC is the interrupts'
 * whole cost; less their measured parts, it is `taken` times irq_fixed. `taken` is counted
 * rather than assumed to be 1: QEMU's mps2 boards take a software-pended UART interrupt
 * twice, and a third time after the window, which an unguarded sum of parts counted in
 * (the calibration then came out negative, clamped to 0, and every interrupt taken during
 * a classification added 34 instructions to its cost= on mps2-an386). A handler with no
 * byte to read runs the same entry and exit as one with bytes; only the measured middle
 * differs. Exact under QEMU -icount (instruction counts); on silicon a good estimate. */
static void calibrate_irq(void)
{
    struct irq_window without, with;
    bx_nvic_disable(BX_UART_IRQ);
    pend_between_reads(&without);
    bx_nvic_unpend(BX_UART_IRQ);
    irq_fixed = 0;
    bx_nvic_enable(BX_UART_IRQ);
    pend_between_reads(&with);
    uint64_t whole = with.cost - without.cost;
    irq_fixed = with.taken && whole > with.part ? (whole - with.part) / with.taken : 0;
    bx_irq_disable();
    irq_cost = 0;
    bx_irq_enable();
}

/* ---- init, exit, faults ------------------------------------------------------------ */

void bx_platform_init(void)
{
    bx_clock_init();
    bx_counter_init();
    bx_uart_init();
    bx_irq_enable();
    calibrate_irq();
}

__attribute__((noreturn)) void bx_platform_exit(int code)
{
    bx_uart_flush();
#if BX_SEMIHOSTING
    uint32_t args[2] = {BX_ADP_APPLICATION_EXIT, (uint32_t)code};
    bx_semihost(BX_SYS_EXIT_EXTENDED, args);
#else
    (void)code;
#endif
    bx_irq_disable();
    for (;;) bx_wfi();
}

static void put_hex(char *p, uint32_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 4) p[i] = "0123456789abcdef"[v & 0xFu];
}

/* Fault and stray-interrupt report: one protocol error line on the UART (the host sees
 * `err 6 INTERNAL ...` instead of a silent hang), then exit status 3. */
__attribute__((noreturn)) void bx_fault_report(const char *what, uint32_t pc)
{
    static const char head[] = "err 6 INTERNAL ";
    char tail[] = " pc=00000000\n";
    size_t n = 0;
    while (what[n]) n++;
    put_hex(tail + 4, pc);
    bx_uart_write((const uint8_t *)head, sizeof head - 1);
    bx_uart_write((const uint8_t *)what, n);
    bx_uart_write((const uint8_t *)tail, sizeof tail - 1);
#if BX_SEMIHOSTING
    bx_semihost(BX_SYS_WRITE0, "beexgen firmware: fault or stray interrupt, see the serial line\n");
#endif
    bx_platform_exit(3);
}

/* newlib's malloc (pulled in by some printf paths) grows the heap between the end of
 * .bss and the end of RAM (cortexm.ld.j2: __heap_start, __heap_end); the firmware itself
 * never allocates. */
extern char __heap_start, __heap_end;
void *_sbrk(ptrdiff_t incr);
void *_sbrk(ptrdiff_t incr)
{
    static char *brk = &__heap_start;
    if (incr < 0 ? (brk + incr < &__heap_start) : (&__heap_end - brk < incr)) {
        errno = ENOMEM;
        return (void *)-1;
    }
    char *old = brk;
    brk += incr;
    return old;
}
