/* bx_protocol.h: the serial line protocol of the firmware (docs/INTERNALS.md).
 *
 * One request line in, exactly one reply line out, in order. main.c frames the
 * lines; this module parses a line's body as it arrives, runs the command and writes the reply through
 * bx_platform_write. Replies end with a single LF. No printf, no malloc: numbers go
 * through the small formatters below (also unit-tested from Python on the host). */
#ifndef BX_PROTOCOL_H
#define BX_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

/* A request line's body (terminator, request id and check removed by main.c), as it
 * arrives: bx_protocol_begin, bx_protocol_byte per byte, then bx_protocol_end, which
 * writes the one reply. id[0..id_n) are the digits of the line's request id, echoed as
 * the reply's prefix `#<digits> ` (id NULL, id_n 0: none); status is BX_STATUS_OK, or
 * why main.c refuses the line (OVERRUN, BAD_CHECK): then that error is the reply. */
void bx_protocol_begin(void);
void bx_protocol_byte(uint8_t c);
void bx_protocol_end(const uint8_t *id, size_t id_n, int status);

/* ---- formatters: write into out (no terminator), return the number of chars ---- */
#define BX_FMT_U64_MAX    20   /* digits of 2^64 - 1 */
#define BX_FMT_HEX32_LEN  8
#define BX_FMT_FIXED4_MAX 24   /* sign + 16 integer digits + '.' + 4 decimals, or "-inf" */

size_t bx_fmt_u64(char *out, uint64_t v);     /* decimal */
size_t bx_fmt_i32(char *out, int32_t v);      /* decimal, '-' when negative */
size_t bx_fmt_hex32(char *out, uint32_t v);   /* exactly 8 lowercase hex digits */
/* x with 4 decimals, the exact binary value rounded half to even: what C's "%.4f" and
 * Python's f"{x:.4f}" print. "nan", "inf", "-inf" for non-finite x, and also "inf" /
 * "-inf" for |x| >= 2^49 (never a probability). */
size_t bx_fmt_fixed4(char *out, float x);

/* A threshold: s[0..n) is either `0x` + 1..8 hex digits, the IEEE-754 bit pattern
 * (exact), or a decimal `[+|-]digits[.digits]` (also `.5`, `5.`) with at most 18
 * digits, its exact value rounded once to the nearest float32, ties to even.
 * Returns 0, or -1 when s is not one of these. */
int bx_parse_f32(const uint8_t *s, size_t n, float *out);

#endif /* BX_PROTOCOL_H */
