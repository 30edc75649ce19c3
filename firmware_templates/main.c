/* main.c: the portable firmware main loop (every target; only bx_platform.h below).
 *
 * Bytes from bx_platform_getc() are collected into one static line buffer of
 * BX_LINE_MAX bytes; each complete line is answered with exactly one reply line by
 * bx_protocol_handle, in order, before the next byte is read.
 *
 * Line endings: LF, CR and CRLF each end a line. The LF of a CRLF pair is swallowed,
 * it does not end a second (empty) line.
 * Errors, reported when the line ends and never more than once per line:
 *   - more than BX_LINE_MAX bytes: `err LINE_TOO_LONG`; the rest of the line is read
 *     and dropped, however long, so a flood without newline costs no extra reply;
 *   - BX_GETC_OVERRUN (the receiver lost bytes): `err OVERRUN` (wins over the above).
 * BX_GETC_EOF (host emulator): a pending unterminated line is answered, then
 * bx_platform_exit(0).
 */
#include <stddef.h>
#include <stdint.h>

#include "bx_platform.h"
#include "bx_protocol.h"
#include "bx_status.h"

#define BX_LF '\n'
#define BX_CR '\r'

static uint8_t bx_line[BX_LINE_MAX];   /* the request line being received */

typedef struct {
    size_t len;       /* bytes in bx_line */
    int    status;    /* BX_STATUS_OK, or why this line is being discarded */
    int    after_cr;  /* the previous byte was CR: a LF now completes CRLF */
} bx_rx_state;

/* Answer the line just completed and start a new one. */
static void end_line(bx_rx_state *rx)
{
    if (rx->status != BX_STATUS_OK) bx_protocol_reject(rx->status);
    else bx_protocol_handle(bx_line, rx->len);
    rx->len = 0;
    rx->status = BX_STATUS_OK;
}

/* Feed one result of bx_platform_getc() other than BX_GETC_EOF. */
static void receive(bx_rx_state *rx, int c)
{
    int was_cr = rx->after_cr;
    rx->after_cr = (c == BX_CR);
    if (c == BX_GETC_OVERRUN) {
        rx->status = BX_STATUS_OVERRUN;
    } else if (c == BX_LF && was_cr) {
        /* second half of CRLF: the line already ended at the CR */
    } else if (c == BX_LF || c == BX_CR) {
        end_line(rx);
    } else if (rx->status != BX_STATUS_OK) {
        /* discarding the rest of an overlong or overrun line */
    } else if (rx->len == BX_LINE_MAX) {
        rx->status = BX_STATUS_LINE_TOO_LONG;
    } else {
        bx_line[rx->len++] = (uint8_t)c;
    }
}

int main(void)
{
    static bx_rx_state rx;
    bx_platform_init();
    for (;;) {
        int c = bx_platform_getc();
        if (c == BX_GETC_EOF) break;
        receive(&rx, c);
    }
    if (rx.len || rx.status != BX_STATUS_OK) end_line(&rx);   /* unterminated last line */
    bx_platform_exit(0);
    return 0;
}
