/* platform_fuzz.c: bx_platform.h over an in-memory buffer, for fuzz_protocol.c.
 *
 * Input: bx_fuzz_begin() gives the bytes of one fuzz input. bx_platform_getc() returns
 * them one by one, then BX_GETC_EOF. Escape: byte 0xF5 (never in UTF-8) followed by
 * LF is a BX_GETC_LOST_LINE (bytes lost up to a line end), followed by any other byte
 * but 0xF5 a BX_GETC_OVERRUN (that byte is consumed: "lost"), 0xF5 0xF5 is a literal
 * 0xF5, a final lone 0xF5 is an overrun (the escape of tests/test_host_emulator.py's
 * overrun platform, extended to every second byte).
 * If the last result delivered was a CR, one LF is delivered before EOF: main.c
 * swallows it as the second half of CRLF (no reply), and it clears main.c's
 * static "previous byte was CR" state so that the next fuzz input starts clean.
 *
 * Output: bx_platform_write appends to a growing buffer. Before each getc the hook
 * bx_fuzz_on_getc() is called (fuzz_protocol.c checks that every line delivered so
 * far has been answered). bx_platform_exit longjmps back to the fuzz target (main.c
 * is compiled as bx_main_for_fuzz, so exiting the process is never an option). */
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "bx_platform.h"
#include "platform_fuzz.h"

#define ESC 0xF5
#define LF  10
#define CR  13

static const uint8_t *in_data;
static size_t in_size, in_pos;
static int last_was_cr, sent_final_lf;
static uint64_t cost_counter;

char   *bx_fuzz_out;
size_t  bx_fuzz_out_len, bx_fuzz_out_cap;
jmp_buf bx_fuzz_exit_jmp;
int     bx_fuzz_exit_code;

void bx_fuzz_begin(const uint8_t *data, size_t size)
{
    in_data = data;
    in_size = size;
    in_pos = 0;
    last_was_cr = 0;
    sent_final_lf = 0;
    bx_fuzz_out_len = 0;
}

/* Next result of the input as bx_platform_getc() would return it, without the
 * final-LF rule; advances *pos. Shared with the expectation model of fuzz_protocol.c. */
int bx_fuzz_next(const uint8_t *data, size_t size, size_t *pos)
{
    if (*pos >= size) return BX_GETC_EOF;
    uint8_t b = data[(*pos)++];
    if (b != ESC) return b;
    if (*pos >= size) return BX_GETC_OVERRUN;
    b = data[(*pos)++];
    return b == ESC ? ESC : b == LF ? BX_GETC_LOST_LINE : BX_GETC_OVERRUN;
}

void bx_platform_init(void) {}

int bx_platform_getc(void)
{
    bx_fuzz_on_getc();
    int c = bx_fuzz_next(in_data, in_size, &in_pos);
    if (c == BX_GETC_EOF) {
        if (last_was_cr && !sent_final_lf) {
            sent_final_lf = 1;
            last_was_cr = 0;
            return LF;
        }
        return BX_GETC_EOF;
    }
    last_was_cr = c == CR;
    return c;
}

void bx_platform_write(const char *s, size_t n)
{
    if (bx_fuzz_out_len + n > bx_fuzz_out_cap) {
        size_t cap = bx_fuzz_out_cap ? bx_fuzz_out_cap : 4096;
        while (cap < bx_fuzz_out_len + n) cap *= 2;
        char *p = realloc(bx_fuzz_out, cap);
        if (!p) abort();
        bx_fuzz_out = p;
        bx_fuzz_out_cap = cap;
    }
    memcpy(bx_fuzz_out + bx_fuzz_out_len, s, n);
    bx_fuzz_out_len += n;
}

uint64_t bx_platform_cost(void) { return cost_counter += 7; }

void bx_platform_exit(int code)
{
    bx_fuzz_exit_code = code;
    longjmp(bx_fuzz_exit_jmp, 1);
}
