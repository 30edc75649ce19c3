/* main.c: the portable firmware main loop (every target; only bx_platform.h below).
 *
 * Bytes from bx_platform_getc() are collected into one static line buffer of
 * BX_LINE_MAX bytes; each complete line is answered with exactly one reply line by
 * bx_protocol_handle, in order, before the next byte is read.
 *
 * Line endings: LF, CR and CRLF each end a line. The LF of a CRLF pair is swallowed,
 * it does not end a second (empty) line.
 *
 * Request id. A line that starts with `#`, 1 to BX_ID_DIGITS decimal digits and one
 * space carries a request id: the prefix is kept apart (it does not count against
 * BX_LINE_MAX) and echoed at the front of the reply, `#<digits> ok ...`, so a host
 * can pipeline and match replies (docs/INTERNALS.md, "Serial protocol"). Any other
 * start (`#x`, `#12x`, `#` + too many digits, `#12` then the line end) is ordinary
 * text: the bytes held while deciding are put back at the front of the line.
 *
 * Errors, reported when the line ends and never more than once per line:
 *   - more than BX_LINE_MAX bytes: `err LINE_TOO_LONG`; the rest of the line is read
 *     and dropped, however long, so a flood without newline costs no extra reply;
 *   - BX_GETC_OVERRUN (bytes of this line were lost): `err OVERRUN` (wins over the above);
 *   - BX_GETC_LOST_LINE (a line end was lost with them): the line in progress ends
 *     there, answered `err OVERRUN`; the next byte starts a new line.
 * The id of a damaged line is echoed when its prefix arrived whole before the loss.
 * BX_GETC_EOF (host emulator): a pending unterminated line is answered, then
 * bx_platform_exit(0).
 */
#include <stddef.h>
#include <stdint.h>

#include "bx_platform.h"
#include "bx_protocol.h"
#include "bx_status.h"

#define BX_LF    '\n'
#define BX_CR    '\r'
#define BX_HASH  '#'
#define BX_SPACE ' '

static uint8_t bx_line[BX_LINE_MAX];   /* the request line being received, id prefix excluded */

typedef struct {
    size_t  len;        /* bytes in bx_line */
    size_t  seen;       /* bytes received on this line (id prefix included) */
    int     status;     /* BX_STATUS_OK, or why this line is being discarded */
    int     after_cr;   /* the previous byte was CR: a LF now completes CRLF */
    int     id_state;   /* ID_NONE, ID_SCAN (held '#' + digits), ID_DONE */
    size_t  id_len;     /* digits in id */
    uint8_t id[BX_ID_DIGITS];
} bx_rx_state;

enum { ID_NONE, ID_SCAN, ID_DONE };

/* Store one text byte of the line (or note that the line is too long). */
static void store(bx_rx_state *rx, uint8_t c)
{
    if (rx->status != BX_STATUS_OK) return;           /* discarding an overlong or overrun line */
    if (rx->len == BX_LINE_MAX) { rx->status = BX_STATUS_LINE_TOO_LONG; return; }
    bx_line[rx->len++] = c;
}

/* The held `#digits` were not an id prefix after all: they are the text's first bytes. */
static void unhold(bx_rx_state *rx)
{
    if (rx->id_state != ID_SCAN) return;
    rx->id_state = ID_NONE;
    store(rx, BX_HASH);
    for (size_t i = 0; i < rx->id_len; i++) store(rx, rx->id[i]);
    rx->id_len = 0;
}

/* Answer the line just completed and start a new one. */
static void end_line(bx_rx_state *rx)
{
    unhold(rx);
    const uint8_t *id = rx->id_state == ID_DONE ? rx->id : NULL;
    size_t id_n = id ? rx->id_len : 0;
    if (rx->status != BX_STATUS_OK) bx_protocol_reject(id, id_n, rx->status);
    else bx_protocol_handle(id, id_n, bx_line, rx->len);
    rx->len = rx->seen = rx->id_len = 0;
    rx->status = BX_STATUS_OK;
    rx->id_state = ID_NONE;
}

/* A byte of the line's text or of its id prefix. */
static void text_byte(bx_rx_state *rx, uint8_t c)
{
    size_t first = rx->seen++ == 0;
    if (rx->id_state == ID_SCAN) {
        if (c >= '0' && c <= '9' && rx->id_len < BX_ID_DIGITS) { rx->id[rx->id_len++] = c; return; }
        if (c == BX_SPACE && rx->id_len > 0) { rx->id_state = ID_DONE; return; }
        unhold(rx);                                    /* not an id: fall through as text */
    } else if (first && c == BX_HASH && rx->status == BX_STATUS_OK) {
        rx->id_state = ID_SCAN;
        return;
    }
    store(rx, c);
}

/* Feed one result of bx_platform_getc() other than BX_GETC_EOF. */
static void receive(bx_rx_state *rx, int c)
{
    int was_cr = rx->after_cr;
    rx->after_cr = (c == BX_CR);
    if (c == BX_GETC_OVERRUN) {
        unhold(rx);
        rx->status = BX_STATUS_OVERRUN;
        rx->seen++;
    } else if (c == BX_GETC_LOST_LINE) {
        unhold(rx);
        rx->status = BX_STATUS_OVERRUN;
        end_line(rx);
    } else if (c == BX_LF && was_cr) {
        /* second half of CRLF: the line already ended at the CR */
    } else if (c == BX_LF || c == BX_CR) {
        end_line(rx);
    } else {
        text_byte(rx, (uint8_t)c);
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
    if (rx.seen || rx.status != BX_STATUS_OK) end_line(&rx);   /* unterminated last line */
    bx_platform_exit(0);
    return 0;
}
