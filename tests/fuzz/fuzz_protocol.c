/* fuzz_protocol.c: libFuzzer target for the firmware's line protocol: the real main
 * loop of main.c (compiled with -Dmain=bx_main_for_fuzz) and bx_protocol.c, the engine
 * and the tokenizer of a tiny artifact, over the in-memory platform_fuzz.c.
 *
 * Each fuzz input is one whole session: its bytes are the received stream (0xF5 x is
 * a receive overrun, 0xF5 LF a lost line end, see platform_fuzz.c), then end of input. The main loop runs
 * until it calls bx_platform_exit (longjmp back here). Checked, against a model of the
 * line rules written here independently of main.c (docs/INTERNALS.md):
 *
 *   - one reply line per request line: lines end with LF, CR or CRLF (the LF of CRLF
 *     does not end a second line) or a lost line end (answered `err 7 OVERRUN`), plus
 *     an unterminated last line if anything (bytes or an overrun) is pending at the end
 *     of input;
 *   - request ids: a line whose bytes before any loss start `#` + 1..BX_ID_DIGITS
 *     digits + space, or + `:` + BX_CHECK_DIGITS lowercase hex digits + space, gets that
 *     prefix (its space included) in front of its reply, and the rest of the
 *     line is the request; no other reply starts with `#`; a check that is not the
 *     CRC-32 of `<digits> <rest>` (computed here bit by bit) -> `err 8 BAD_CHECK`;
 *   - synchronous and in order: whenever the loop asks for the next byte, every line
 *     completed so far has been answered exactly once (no reply before a line ends);
 *   - every reply: `ok ` or `err ` first, printable ASCII only, one LF at its end,
 *     no longer than a bound computed from the model's sizes (error replies <= 100);
 *   - per line: overrun -> `err 7 OVERRUN`; the arguments of `!ping`, `!info` or
 *     `!policy` longer than BX_LINE_MAX -> `err 2 LINE_TOO_LONG` (texts have no limit);
 *     neither of those otherwise; `!ping` -> `ok pong`;
 *     `!info` -> `ok info `; text (or `!c text`): invalid UTF-8 -> `err 1 BAD_UTF8`,
 *     only separators -> `err 3 EMPTY`, else `ok cls=` with tokens <= BX_SEQ_MAX;
 *     `!tok` -> `ok tok n=` (1..BX_SEQ_MAX) or BAD_UTF8; `!policy` -> `ok policy=`
 *     or `err 5 BAD_ARGUMENT`; `!more` -> `ok more n=`, `err 9 BAD_PIECE` or `err 5`;
 *     `!end` -> as a text, or those errors; any other `!name` -> `err 4 UNKNOWN_COMMAND !`;
 *   - bx_platform_exit(0), and no sanitizer finding.
 * The exit policy (which `!policy` changes) is reset to the artifact's default at the
 * start of every input, so each input is a reproducible session on its own. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bx_engine.h"
#include "bx_platform.h"
#include "bx_status.h"
#include "platform_fuzz.h"

int bx_main_for_fuzz(void);

#define LF 10
#define CR 13
#define ERR_REPLY_MAX 100

#define ID_PREFIX_MAX (BX_ID_DIGITS + BX_CHECK_DIGITS + 3)   /* '#', digits, ':', check, ' ' */

typedef struct {
    size_t start, len;     /* bytes kept in line_bytes (all of them) */
    size_t total;          /* bytes received on this line */
    size_t clean;          /* bytes received before its first overrun */
    int overrun;
} line_t;

static const uint8_t *cur_data;
static size_t cur_size;
static line_t *lines;
static size_t n_lines, cap_lines;
static uint8_t *line_bytes;
static size_t *done_after;     /* lines completed after k results delivered */
static size_t n_getc;
static size_t n_events;    /* results model_lines saw, the final LF included */
static size_t reply_max;
static float default_thr[BX_N_BLOCKS];
static int default_n_thr;
static int32_t default_policy;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_protocol: INVARIANT VIOLATED: %s\n", what);
    if (detail) fprintf(stderr, "  %s\n", detail);
    fprintf(stderr, "  input (%zu bytes):", cur_size);
    for (size_t i = 0; i < cur_size && i < 400; i++) fprintf(stderr, " %02x", cur_data[i]);
    fprintf(stderr, "%s\n  output (%zu bytes): %.*s\n", cur_size > 400 ? " ..." : "", bx_fuzz_out_len,
            (int)(bx_fuzz_out_len < 2000 ? bx_fuzz_out_len : 2000), bx_fuzz_out ? bx_fuzz_out : "");
    abort();
}

/* ------------------------------------------------------------------ the model */

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) abort();
    return q;
}

static void add_line(size_t start, size_t len, size_t total, size_t clean, int overrun)
{
    if (n_lines == cap_lines) {
        cap_lines = cap_lines ? 2 * cap_lines : 64;
        lines = xrealloc(lines, cap_lines * sizeof *lines);
    }
    lines[n_lines++] = (line_t){ start, len, total, overrun ? clean : total, overrun };
}

/* Split the received stream into the lines the device must answer. */
static void model_lines(const uint8_t *data, size_t size)
{
    size_t pos = 0, k = 0, kept = 0, start = 0, total = 0, clean = 0;
    int prev_cr = 0, overrun = 0, pending = 0;
    n_lines = 0;
    line_bytes = xrealloc(line_bytes, size + 1);
    clean = 0;
    done_after = xrealloc(done_after, (size + 3) * sizeof *done_after);
    done_after[0] = 0;
    for (;;) {
        int c = bx_fuzz_next(data, size, &pos);
        if (c == BX_GETC_EOF) break;
        if (c == LF && prev_cr) {
            /* CRLF: nothing */
        } else if (c == LF || c == CR || c == BX_GETC_LOST_LINE) {
            if (c == BX_GETC_LOST_LINE && !overrun) { overrun = 1; clean = total; }
            add_line(start, kept - start, total, clean, overrun);
            start = kept; total = 0; overrun = 0; pending = 0;
        } else if (c == BX_GETC_OVERRUN) {
            if (!overrun) clean = total;
            overrun = 1; pending = 1;
        } else {
            line_bytes[kept++] = (uint8_t)c;
            total++;
            pending = 1;
        }
        prev_cr = c == CR;
        done_after[++k] = n_lines;
    }
    if (prev_cr) done_after[++k] = n_lines;      /* the platform's swallowed final LF */
    if (pending) add_line(start, kept - start, total, clean, overrun);
    n_events = k;
}

static int is_sep(uint8_t b) { return b == ' ' || b < 0x20 || b == 0x7F; }

static int utf8_ok(const uint8_t *s, size_t n)
{
    /* independent of bx_tokenizer.c: decode, then judge the code point */
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) { i++; continue; }
        if ((b & 0xE0) == 0xC0) { len = 2; cp = b & 0x1Fu; min = 0x80; }
        else if ((b & 0xF0) == 0xE0) { len = 3; cp = b & 0x0Fu; min = 0x800; }
        else if ((b & 0xF8) == 0xF0) { len = 4; cp = b & 0x07u; min = 0x10000; }
        else return 0;
        if (n - i < len) return 0;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + j] & 0x3Fu);
        }
        if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return 0;
        i += len;
    }
    return 1;
}

static int starts(const char *r, size_t rn, const char *p)
{
    size_t n = strlen(p);
    return rn >= n && memcmp(r, p, n) == 0;
}

static int equals(const char *r, size_t rn, const char *p) { return rn == strlen(p) && memcmp(r, p, rn) == 0; }

static int bytes_eq(const uint8_t *s, size_t n, const char *p) { return n == strlen(p) && memcmp(s, p, n) == 0; }

/* The number after `key` in the reply, or -1. */
static long field(const char *r, size_t rn, const char *key)
{
    size_t kn = strlen(key);
    for (size_t i = 0; i + kn <= rn; i++) {
        if (memcmp(r + i, key, kn) == 0) {
            long v = 0;
            size_t j = i + kn;
            if (j >= rn || r[j] < '0' || r[j] > '9') return -1;
            for (; j < rn && r[j] >= '0' && r[j] <= '9' && v < 1000000; j++) v = v * 10 + (r[j] - '0');
            return v;
        }
    }
    return -1;
}

static void check_text(const char *r, size_t rn, const uint8_t *s, size_t n, const char *ctx)
{
    if (!utf8_ok(s, n)) {
        if (!equals(r, rn, "err 1 BAD_UTF8")) fail("invalid UTF-8 text not answered `err 1 BAD_UTF8`", ctx);
        return;
    }
    int empty = 1;
    for (size_t i = 0; i < n; i++) if (!is_sep(s[i])) empty = 0;
    if (empty) {
        if (!equals(r, rn, "err 3 EMPTY")) fail("text of separators only not answered `err 3 EMPTY`", ctx);
        return;
    }
    long t = field(r, rn, " tokens=");
    if (!starts(r, rn, "ok cls=") || t < 2 || t > BX_SEQ_MAX) fail("text not classified", ctx);
}

/* Length of the request id prefix `#<1..BX_ID_DIGITS digits> ` or `#<digits>:<8 hex> `
 * at the start of the line's bytes received before any loss, or 0; *digits and *check
 * (0: none) the lengths of its parts. */
static size_t id_prefix(const line_t *ln, size_t *digits, int *check)
{
    const uint8_t *s = line_bytes + ln->start;
    size_t avail = ln->clean < ln->len ? ln->clean : ln->len;
    *check = 0;
    if (avail < 3 || s[0] != '#') return 0;
    size_t d = 1;
    while (d < avail && d <= BX_ID_DIGITS && s[d] >= '0' && s[d] <= '9') d++;
    if (d == 1 || d > BX_ID_DIGITS + 1 || d >= avail) return 0;
    *digits = d - 1;
    if (s[d] == ' ') return d + 1;
    if (s[d] != ':' || d + 1 + BX_CHECK_DIGITS >= avail) return 0;
    for (size_t i = d + 1; i < d + 1 + BX_CHECK_DIGITS; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    if (s[d + 1 + BX_CHECK_DIGITS] != ' ') return 0;
    *check = 1;
    return d + 2 + BX_CHECK_DIGITS;
}

/* CRC-32 (zlib's), bit by bit, over a then b. */
static uint32_t crc32_two(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t k = 0; k < an + bn; k++) {
        c ^= k < an ? a[k] : b[k - an];
        for (int i = 0; i < 8; i++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void check_reply(const line_t *ln0, const char *r, size_t rn)
{
    line_t lnv = *ln0;
    const line_t *ln = &lnv;
    size_t digits = 0;
    int check = 0;
    size_t idn = id_prefix(ln0, &digits, &check);
    char ctx[160];
    snprintf(ctx, sizeof ctx, "line #%zu (%zu bytes, overrun %d, id prefix %zu) reply `%.*s`",
             (size_t)(ln0 - lines), ln0->total, ln0->overrun, idn, (int)(rn < 100 ? rn : 100), r);
    if (idn) {                                    /* the reply echoes the id, then as without */
        if (rn < idn || memcmp(r, line_bytes + ln0->start, idn) != 0) fail("reply does not echo the request id", ctx);
        r += idn;
        rn -= idn;
        lnv.start += idn;
        lnv.len -= idn;
        lnv.total -= idn;
        if (check && !ln0->overrun) {
            const uint8_t *p = line_bytes + ln0->start;
            uint8_t head[BX_ID_DIGITS + 1];
            memcpy(head, p + 1, digits);
            head[digits] = ' ';
            uint32_t want = 0;
            for (size_t i = 0; i < BX_CHECK_DIGITS; i++) {
                uint8_t h = p[digits + 2 + i];
                want = (want << 4) | (uint32_t)(h <= '9' ? h - '0' : h - 'a' + 10);
            }
            if (crc32_two(head, digits + 1, p + idn, lnv.len) != want) {
                if (!equals(r, rn, "err 8 BAD_CHECK")) fail("a failed check not answered `err 8 BAD_CHECK`", ctx);
                return;
            }
        }
    } else if (rn && r[0] == '#') {
        fail("reply with an id to a line without one", ctx);
    }
    const uint8_t *s = line_bytes + ln->start;
    size_t n = ln->len;
    if (!starts(r, rn, "ok ") && !starts(r, rn, "err ")) fail("reply is neither `ok ` nor `err `", ctx);
    if (rn > reply_max || (r[0] == 'e' && rn > ERR_REPLY_MAX)) fail("reply too long", ctx);
    for (size_t i = 0; i < rn; i++)
        if (r[i] < 0x20 || r[i] > 0x7E) fail("reply has a byte that is not printable ASCII", ctx);

    int too_long = starts(r, rn, "err 2 LINE_TOO_LONG"), overrun = starts(r, rn, "err 7 OVERRUN");
    if (ln->overrun) {
        if (!equals(r, rn, "err 7 OVERRUN")) fail("overrun line not answered `err 7 OVERRUN`", ctx);
        return;
    }
    if (n == 0 || s[0] != '!') {
        if (too_long || overrun) fail("LINE_TOO_LONG / OVERRUN for a text", ctx);
        check_text(r, rn, s, n, ctx);
        return;
    }
    size_t w = 1;
    while (w < n && s[w] != ' ') w++;
    const uint8_t *name = s + 1, *args = s + (w < n ? w + 1 : n);
    size_t name_n = w - 1, args_n = w < n ? n - w - 1 : 0;
    int buffered = bytes_eq(name, name_n, "ping") || bytes_eq(name, name_n, "info") || bytes_eq(name, name_n, "policy");
    if (buffered && args_n > BX_LINE_MAX) {
        if (!equals(r, rn, "err 2 LINE_TOO_LONG")) fail("long command not answered `err 2 LINE_TOO_LONG`", ctx);
        return;
    }
    if (too_long || overrun) fail("LINE_TOO_LONG / OVERRUN for a line that is neither", ctx);
    if (bytes_eq(name, name_n, "more") || bytes_eq(name, name_n, "end")) {
        if (!starts(r, rn, "err 9 BAD_PIECE") && !starts(r, rn, "err 5 BAD_ARGUMENT") &&
            !(bytes_eq(name, name_n, "more") ? starts(r, rn, "ok more n=") :
              (starts(r, rn, "ok cls=") || starts(r, rn, "err 1 BAD_UTF8") || starts(r, rn, "err 3 EMPTY"))))
            fail("a piece answered wrongly", ctx);
        return;
    }
    if (bytes_eq(name, name_n, "c")) {
        check_text(r, rn, args, args_n, ctx);
    } else if (bytes_eq(name, name_n, "ping")) {
        if (args_n == 0 ? !equals(r, rn, "ok pong") : !starts(r, rn, "err 5 BAD_ARGUMENT"))
            fail("!ping answered wrongly", ctx);
    } else if (bytes_eq(name, name_n, "info")) {
        if (args_n == 0 ? !starts(r, rn, "ok info format=") : !starts(r, rn, "err 5 BAD_ARGUMENT"))
            fail("!info answered wrongly", ctx);
    } else if (bytes_eq(name, name_n, "tok")) {
        if (!utf8_ok(args, args_n)) {
            if (!equals(r, rn, "err 1 BAD_UTF8")) fail("!tok of invalid UTF-8 not BAD_UTF8", ctx);
        } else {
            long k = field(r, rn, " n=");
            if (!starts(r, rn, "ok tok n=") || k < 1 || k > BX_SEQ_MAX) fail("!tok answered wrongly", ctx);
        }
    } else if (bytes_eq(name, name_n, "policy")) {
        if (!starts(r, rn, "ok policy=") && !starts(r, rn, "err 5 BAD_ARGUMENT"))
            fail("!policy answered wrongly", ctx);
    } else if (!starts(r, rn, "err 4 UNKNOWN_COMMAND !")) {
        fail("unknown command not answered `err 4 UNKNOWN_COMMAND`", ctx);
    }
}

/* ------------------------------------------------------------------ hooks */

static size_t lf_count(void)
{
    size_t k = 0;
    for (size_t i = 0; i < bx_fuzz_out_len; i++) k += bx_fuzz_out[i] == '\n';
    return k;
}

static size_t replied;      /* LFs in the output, counted incrementally */
static size_t scanned;

void bx_fuzz_on_getc(void)
{
    for (; scanned < bx_fuzz_out_len; scanned++) replied += bx_fuzz_out[scanned] == '\n';
    if (n_getc > n_events) fail("getc called again after BX_GETC_EOF", NULL);
    size_t want = done_after[n_getc++];
    if (replied != want) {
        char d[96];
        snprintf(d, sizeof d, "%zu lines completed, %zu replies written, at getc #%zu", want, replied, n_getc);
        fail("reply count out of step with the lines received", d);
    }
}

static void init_once(void)
{
    static int done;
    if (done) return;
    done = 1;
    default_policy = bx_engine_get_policy(default_thr, &default_n_thr);
    reply_max = 512 + 12 * (BX_SEQ_MAX + BX_N_BLOCKS + BX_N_CLASSES);
    for (int c = 0; c < BX_N_CLASSES; c++) reply_max += strlen(bx_labels[c]) + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (bx_engine_set_policy(default_policy, default_thr, default_n_thr) != 0) fail("policy reset", NULL);
    cur_data = data;
    cur_size = size;
    model_lines(data, size);
    n_getc = 0;
    replied = scanned = 0;
    bx_fuzz_begin(data, size);
    bx_fuzz_exit_code = -1;
    if (setjmp(bx_fuzz_exit_jmp) == 0) {
        bx_main_for_fuzz();
        fail("main returned without bx_platform_exit", NULL);
    }
    if (bx_fuzz_exit_code != 0) fail("bx_platform_exit with a non-zero code", NULL);

    size_t got = lf_count();
    if (got != n_lines) {
        char d[64];
        snprintf(d, sizeof d, "%zu replies for %zu request lines", got, n_lines);
        fail("reply count != request line count", d);
    }
    if (bx_fuzz_out_len && bx_fuzz_out[bx_fuzz_out_len - 1] != '\n') fail("output ends inside a line", NULL);
    size_t p = 0;
    for (size_t i = 0; i < n_lines; i++) {
        const char *r = bx_fuzz_out + p;
        const char *e = memchr(r, '\n', bx_fuzz_out_len - p);
        check_reply(&lines[i], r, (size_t)(e - r));
        p = (size_t)(e - bx_fuzz_out) + 1;
    }
    return 0;
}
