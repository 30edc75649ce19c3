/* main.c: the portable firmware main loop (every target; only bx_platform.h below).
 *
 * Bytes from bx_platform_getc() are framed into request lines here and handed, as they
 * arrive, to bx_protocol (bx_protocol_begin / _byte / _end), which streams a text into
 * the engine and answers each line with exactly one reply line, in order, before the
 * next byte is read. No line is ever stored whole: a text of any length is classified
 * (docs/INTERNALS.md, "Streaming input").
 *
 * Line endings: LF, CR and CRLF each end a line. The LF of a CRLF pair is swallowed,
 * it does not end a second (empty) line.
 *
 * Request id and check. A line may start with `#`, 1 to BX_ID_DIGITS decimal digits,
 * then either one space (an id) or `:`, BX_CHECK_DIGITS lowercase hex digits and one space (an id
 * and a check). The id is echoed at the front of the reply, `#<digits> ok ...` (with its
 * check, `#<digits>:<check> ok ...`, when it had one, so a host can tell that the check was
 * seen and verified), so a host can pipeline and match replies. The check is the CRC-32 (BX_CRC_POLY) of the id's
 * digits, one space and the rest of the line (beexgen.core.protocol.request_check); it is
 * computed as the bytes arrive and compared at the line end, before any reply: a line
 * whose check fails is answered `err BAD_CHECK` (with its id) and not executed. Any other
 * start (`#x`, `#12x`, `#` + too many digits, `#12:` + a malformed check, `#12` then the
 * line end) is ordinary text: the bytes held while deciding are the text's first bytes.
 * A line without the prefix (a human at a terminal) has no id and no check.
 *
 * Errors, reported when the line ends and never more than once per line:
 *   - BX_GETC_OVERRUN (bytes of this line were lost): `err OVERRUN`;
 *   - BX_GETC_LOST_LINE (a line end was lost with them): the line in progress ends
 *     there, answered `err OVERRUN`; the next byte starts a new line;
 *   - a failed check: `err BAD_CHECK`.
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
#define BX_COLON ':'
#define BX_SPACE ' '
#define BX_CRC_INIT 0xFFFFFFFFu

typedef struct {
    size_t   seen;      /* bytes received on this line (prefix included) */
    int      status;    /* BX_STATUS_OK, or why this line is refused */
    int      after_cr;  /* the previous byte was CR: a LF now completes CRLF */
    int      id_state;  /* ID_NONE, ID_SCAN (held '#' + digits), CHECK_SCAN (+ ':' + hex), ID_DONE */
    size_t   id_len;    /* digits in id */
    size_t   chk_len;   /* hex digits in chk */
    int      has_check; /* the prefix carried a check */
    uint32_t want;      /* the check sent */
    uint32_t crc;       /* CRC-32 register over id digits, space and the body so far */
    uint8_t  id[BX_ID_DIGITS + 1 + BX_CHECK_DIGITS];   /* digits, then `:` and the check when it has one */
    uint8_t  chk[BX_CHECK_DIGITS];
} bx_rx_state;

enum { ID_NONE, ID_SCAN, CHECK_SCAN, ID_DONE };

/* CRC-32, one byte, bit by bit (reflected, BX_CRC_POLY): the register before the final
 * inversion. protocol.crc32 is the same loop in Python. */
static uint32_t crc_byte(uint32_t crc, uint8_t b)
{
    crc ^= b;
    for (int i = 0; i < 8; i++) crc = (crc >> 1) ^ ((crc & 1u) ? BX_CRC_POLY : 0u);
    return crc;
}

/* A digit of the check: lowercase hex only (protocol.request_line writes `%08x`), so a
 * changed letter case is a damaged prefix, not the same check. */
static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* One byte of the line's body (after any prefix). */
static void body(bx_rx_state *rx, uint8_t c)
{
    if (rx->status != BX_STATUS_OK) return;            /* a damaged line: discarded */
    if (rx->has_check) rx->crc = crc_byte(rx->crc, c);
    bx_protocol_byte(c);
}

/* The held `#digits[:hex]` were not a prefix after all: they are the text's first bytes. */
static void unhold(bx_rx_state *rx)
{
    if (rx->id_state != ID_SCAN && rx->id_state != CHECK_SCAN) return;
    int check = rx->id_state == CHECK_SCAN;
    rx->id_state = ID_NONE;
    body(rx, BX_HASH);
    for (size_t i = 0; i < rx->id_len; i++) body(rx, rx->id[i]);
    if (check) {
        body(rx, BX_COLON);
        for (size_t i = 0; i < rx->chk_len; i++) body(rx, rx->chk[i]);
    }
    rx->id_len = rx->chk_len = 0;
}

/* Answer the line just completed and start a new one. */
static void end_line(bx_rx_state *rx)
{
    unhold(rx);
    const uint8_t *id = rx->id_state == ID_DONE ? rx->id : NULL;
    size_t id_n = id ? rx->id_len + (rx->has_check ? 1 + BX_CHECK_DIGITS : 0) : 0;
    int status = rx->status;
    if (status == BX_STATUS_OK && rx->has_check && (rx->crc ^ BX_CRC_INIT) != rx->want)
        status = BX_STATUS_BAD_CHECK;
    bx_protocol_end(id, id_n, status);
    rx->seen = rx->id_len = rx->chk_len = 0;
    rx->status = BX_STATUS_OK;
    rx->id_state = ID_NONE;
    rx->has_check = 0;
    bx_protocol_begin();
}

/* The prefix is complete: `#<digits> ` or `#<digits>:<hex> `. */
static void prefix_done(bx_rx_state *rx, int check)
{
    rx->id_state = ID_DONE;
    rx->has_check = check;
    if (!check) return;
    rx->want = 0;
    for (size_t i = 0; i < BX_CHECK_DIGITS; i++) rx->want = (rx->want << 4) | (uint32_t)hex_digit(rx->chk[i]);
    rx->crc = BX_CRC_INIT;
    for (size_t i = 0; i < rx->id_len; i++) rx->crc = crc_byte(rx->crc, rx->id[i]);
    rx->crc = crc_byte(rx->crc, BX_SPACE);
    rx->id[rx->id_len] = BX_COLON;                      /* echoed: `#<digits>:<check> ` */
    for (size_t i = 0; i < BX_CHECK_DIGITS; i++) rx->id[rx->id_len + 1 + i] = rx->chk[i];
}

/* A byte of the line's text or of its prefix. */
static void text_byte(bx_rx_state *rx, uint8_t c)
{
    size_t first = rx->seen++ == 0;
    if (rx->id_state == ID_SCAN) {
        if (c >= '0' && c <= '9' && rx->id_len < BX_ID_DIGITS) { rx->id[rx->id_len++] = c; return; }
        if (c == BX_SPACE && rx->id_len > 0) { prefix_done(rx, 0); return; }
        if (c == BX_COLON && rx->id_len > 0) { rx->id_state = CHECK_SCAN; return; }
        unhold(rx);                                    /* not a prefix: fall through as text */
    } else if (rx->id_state == CHECK_SCAN) {
        if (hex_digit(c) >= 0 && rx->chk_len < BX_CHECK_DIGITS) { rx->chk[rx->chk_len++] = c; return; }
        if (c == BX_SPACE && rx->chk_len == BX_CHECK_DIGITS) { prefix_done(rx, 1); return; }
        unhold(rx);
    } else if (first && c == BX_HASH && rx->status == BX_STATUS_OK) {
        rx->id_state = ID_SCAN;
        return;
    }
    body(rx, c);
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
    bx_protocol_begin();
    for (;;) {
        int c = bx_platform_getc();
        if (c == BX_GETC_EOF) break;
        receive(&rx, c);
    }
    if (rx.seen || rx.status != BX_STATUS_OK) end_line(&rx);   /* unterminated last line */
    bx_platform_exit(0);
    return 0;
}
