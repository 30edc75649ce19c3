/* bx_protocol.c: request grammar, commands and replies (docs/INTERNALS.md).
 *
 * main.c frames the lines (terminator, request id, check) and hands each line's body here
 * byte by byte (bx_protocol_begin, bx_protocol_byte, bx_protocol_end). Grammar of a body:
 *
 *     body     = text                      classify text (any line not starting with '!')
 *              | "!" name [" " args]       a command; name runs up to the first space
 *     commands (bx_commands, one entry each; `args` says how the arguments arrive):
 *       !c <text>                    classify text (a text that itself begins with '!')
 *       !tok <text>                  -> ok tok n=<k> ids=<i1,...>   ([CLS] included)
 *       !more <key> <off> <part>     a piece of a long text -> ok more n=<bytes so far>
 *       !end <key> <off> <part>      its last piece: classify the whole text
 *       !ping                        -> ok pong
 *       !info                        -> ok info format=.. hash=.. board=.. ... line=.. window=.. first=.. ring=..
 *       !policy                      -> ok policy=<name> thr=<hex32>,...   (query)
 *       !policy <name> [<t>{,<t>}]   set the exit policy; same reply
 *
 * Texts (plain, !c, !tok, the pieces) are streamed into the engine as they arrive
 * (bx_stream_*): no text is stored, so a text of any length is classified in the same
 * RAM. The arguments of the other commands are buffered, at most BX_LINE_MAX bytes
 * (longer: err LINE_TOO_LONG).
 *
 * Long texts in pieces (docs/INTERNALS.md): `!more` / `!end` carry a key and the byte
 * offset of their part in the text. Offset 0 starts a text (discarding an unfinished
 * one); any other offset must continue the unfinished text of the same key exactly
 * where it stopped, otherwise `err BAD_PIECE` and the text is discarded. Every other
 * line, and every line refused (bad check, overrun), discards an unfinished text too.
 *
 * Every reply is one line: `ok ...` or `err <code> <NAME> [detail]`, codes from the
 * generated bx_status.h. Floats that must survive the trip exactly (logits,
 * thresholds) go out as hex32, the IEEE-754 bit pattern as 8 lowercase hex digits.
 *
 * Output: replies are assembled in a small buffer that is handed to
 * bx_platform_write when it is full and at the end of each line, so a reply of any
 * length (long label lists) needs no buffer sized for the worst case.
 */
#include "bx_protocol.h"

#include <string.h>

#include "bx_engine.h"
#include "bx_platform.h"
#include "bx_status.h"

#define BX_OUT_CHUNK      128   /* bytes buffered before a bx_platform_write */
#define BX_ECHO_MAX       16    /* bytes of an unknown command name echoed back */
#define BX_DEC_DIGITS_MAX 18    /* decimal digits of a threshold: 10^18 < 2^60 */
#define BX_HEX32_DIGITS   8
#define BX_FIXED4_SCALE   10000u          /* 4 decimals */
#define BX_FIXED4_MAX_E2  25              /* mant * 10^4 * 2^25 < 2^63 */

#define F32_MANT_BITS     23
#define F32_EXP_BIAS      127
#define F32_EXP_MAX       0xffu
#define F32_SIGN          0x80000000u
#define F32_HIDDEN        (1u << F32_MANT_BITS)
#define F32_MANT_MASK     (F32_HIDDEN - 1u)

/* ------------------------------------------------------------------ formatters */

static uint32_t f32_bits(float x) { uint32_t u; memcpy(&u, &x, sizeof u); return u; }
static float    f32_from(uint32_t u) { float x; memcpy(&x, &u, sizeof x); return x; }

size_t bx_fmt_u64(char *out, uint64_t v)
{
    char tmp[BX_FMT_U64_MAX];
    size_t n = 0;
    do { tmp[n++] = (char)('0' + v % 10u); v /= 10u; } while (v);
    for (size_t i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

size_t bx_fmt_i32(char *out, int32_t v)
{
    if (v >= 0) return bx_fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + bx_fmt_u64(out + 1, (uint64_t)(-(int64_t)v));
}

size_t bx_fmt_hex32(char *out, uint32_t v)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = BX_HEX32_DIGITS - 1; i >= 0; i--) { out[i] = digits[v & 0xfu]; v >>= 4; }
    return BX_HEX32_DIGITS;
}

/* Fixed point with 4 decimals, exactly. A finite float is x = mant * 2^e2 with an
 * integer mant < 2^24. Then x * 10^4 = (mant * 10^4) * 2^e2, where mant * 10^4 < 2^38
 * fits a uint64: for e2 >= 0 it is an integer (shifted left); for e2 < 0 the bits
 * shifted out are the fraction, compared with one half to round half to even. */
size_t bx_fmt_fixed4(char *out, float x)
{
    uint32_t u = f32_bits(x);
    uint32_t ef = (u >> F32_MANT_BITS) & F32_EXP_MAX;
    size_t n = 0;
    if (ef == F32_EXP_MAX && (u & F32_MANT_MASK)) { memcpy(out, "nan", 3); return 3; }
    if (u & F32_SIGN) out[n++] = '-';
    int e2 = (ef ? (int)ef : 1) - F32_EXP_BIAS - F32_MANT_BITS;
    uint64_t q = (uint64_t)((u & F32_MANT_MASK) | (ef ? F32_HIDDEN : 0u)) * BX_FIXED4_SCALE;
    if (ef == F32_EXP_MAX || e2 > BX_FIXED4_MAX_E2) { memcpy(out + n, "inf", 3); return n + 3; }
    if (e2 >= 0) {
        q <<= e2;
    } else if (-e2 >= 64) {
        q = 0;                              /* < 2^38 * 2^-64: far below one half */
    } else {
        uint64_t rem = q & ((UINT64_C(1) << -e2) - 1u);
        uint64_t half = UINT64_C(1) << (-e2 - 1);
        q >>= -e2;
        if (rem > half || (rem == half && (q & 1u))) q++;
    }
    n += bx_fmt_u64(out + n, q / BX_FIXED4_SCALE);
    out[n++] = '.';
    uint32_t frac = (uint32_t)(q % BX_FIXED4_SCALE);
    for (uint32_t div = BX_FIXED4_SCALE / 10u; div; div /= 10u) out[n++] = (char)('0' + frac / div % 10u);
    return n;
}

/* ------------------------------------------------------------------ threshold parsing */

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* num / den rounded to the nearest float32, ties to even; 0 < num, den < 2^60.
 * Scale den by powers of two until den <= num < 2 den (so num/den = 1.f * 2^e), then
 * long division gives the 24 significant bits and one guard bit; the remainder is
 * the sticky bit. The magnitudes stay below 2^61, so nothing overflows. */
static float ratio_to_f32(uint64_t num, uint64_t den)
{
    int e = 0;
    while (num >= 2u * den) { den <<= 1; e++; }
    while (num < den) { num <<= 1; e--; }
    uint32_t mant = 0;
    for (int i = 0; i < F32_MANT_BITS + 2; i++) {      /* leading 1, 23 bits, guard */
        mant <<= 1;
        if (num >= den) { num -= den; mant |= 1u; }
        num <<= 1;
    }
    uint32_t guard = mant & 1u;
    mant >>= 1;
    if (guard && (num != 0 || (mant & 1u))) mant++;
    if (mant == 2u * F32_HIDDEN) { mant >>= 1; e++; }
    return f32_from(((uint32_t)(e + F32_EXP_BIAS) << F32_MANT_BITS) | (mant & F32_MANT_MASK));
}

/* decimal = [+|-] digits [. digits], at least one digit, at most BX_DEC_DIGITS_MAX. */
static int parse_decimal(const uint8_t *s, size_t n, float *out)
{
    size_t i = 0;
    int neg = 0, digits = 0, seen_point = 0;
    uint64_t m = 0, den = 1;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    for (; i < n; i++) {
        if (s[i] == '.' && !seen_point) { seen_point = 1; continue; }
        if (s[i] < '0' || s[i] > '9' || ++digits > BX_DEC_DIGITS_MAX) return -1;
        m = m * 10u + (uint64_t)(s[i] - '0');
        if (seen_point) den *= 10u;
    }
    if (digits == 0) return -1;
    float v = m ? ratio_to_f32(m, den) : 0.0f;
    *out = neg ? -v : v;
    return 0;
}

int bx_parse_f32(const uint8_t *s, size_t n, float *out)
{
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        if (n == 2 || n - 2 > BX_HEX32_DIGITS) return -1;
        uint32_t u = 0;
        for (size_t i = 2; i < n; i++) {
            int h = hex_value(s[i]);
            if (h < 0) return -1;
            u = (u << 4) | (uint32_t)h;
        }
        *out = f32_from(u);
        return 0;
    }
    return parse_decimal(s, n, out);
}

/* ------------------------------------------------------------------ reply output */

static char   bx_out[BX_OUT_CHUNK];
static size_t bx_out_len;

static void out_flush(void)
{
    if (bx_out_len) bx_platform_write(bx_out, bx_out_len);
    bx_out_len = 0;
}

static void out_bytes(const char *s, size_t n)
{
    while (n--) {
        if (bx_out_len == sizeof bx_out) out_flush();
        bx_out[bx_out_len++] = *s++;
    }
}

static void out_str(const char *s) { out_bytes(s, strlen(s)); }
static void out_u64(uint64_t v) { char b[BX_FMT_U64_MAX]; out_bytes(b, bx_fmt_u64(b, v)); }
static void out_i32(int32_t v) { char b[BX_FMT_U64_MAX + 1]; out_bytes(b, bx_fmt_i32(b, v)); }
static void out_hex32(float x) { char b[BX_FMT_HEX32_LEN]; out_bytes(b, bx_fmt_hex32(b, f32_bits(x))); }
static void out_fixed4(float x) { char b[BX_FMT_FIXED4_MAX]; out_bytes(b, bx_fmt_fixed4(b, x)); }
static void out_end(void) { out_bytes("\n", 1); out_flush(); }

/* " key=" */
static void out_key(const char *key) { out_bytes(" ", 1); out_str(key); out_bytes("=", 1); }

/* <hex32>,<hex32>,... (nothing when n == 0) */
static void out_hex_list(const float *v, int n)
{
    for (int i = 0; i < n; i++) {
        if (i) out_bytes(",", 1);
        out_hex32(v[i]);
    }
}

/* err <code> <NAME>[ <detail>] */
static void reply_error(int status, const char *detail)
{
    out_str("err ");
    out_i32(status);
    out_bytes(" ", 1);
    out_str(bx_status_name(status));
    if (detail) { out_bytes(" ", 1); out_str(detail); }
    out_end();
}

/* `#<id> ` in front of the reply, when the request had an id */
static void out_id(const uint8_t *id, size_t id_n)
{
    if (!id_n) return;
    out_bytes("#", 1);
    out_bytes((const char *)id, id_n);
    out_bytes(" ", 1);
}

/* ------------------------------------------------------------------ commands */

static bx_result bx_res;
static int32_t   bx_ids[BX_SEQ_MAX];
static float     bx_thr_arg[BX_N_EXITS];

/* The first word of s[0..n) (up to a space or the end); *rest is what follows that
 * space. Returns the word's length. */
static size_t split_word(const uint8_t *s, size_t n, const uint8_t **rest, size_t *rest_n)
{
    size_t w = 0;
    while (w < n && s[w] != ' ') w++;
    *rest = s + (w < n ? w + 1 : n);
    *rest_n = w < n ? n - w - 1 : 0;
    return w;
}

/* ---- the text stream and its cost --------------------------------------------------- */

/* A text's bytes go to the engine BX_FEED_CHUNK at a time, each batch between two reads
 * of bx_platform_cost() (work outside interrupt handlers): the batches depend on the
 * text alone, not on how its bytes arrived, so cost= is the same for the same text
 * however it is sent (one line or pieces, any pipelining). */
#define BX_FEED_CHUNK 64
static uint8_t  bx_feed[BX_FEED_CHUNK];
static size_t   bx_feed_n;
static uint64_t bx_text_cost;          /* cost of the text so far */

static void text_begin(void)
{
    bx_feed_n = 0;
    bx_text_cost = 0;
    uint64_t before = bx_platform_cost();
    bx_stream_begin();
    bx_text_cost += bx_platform_cost() - before;
}

static void text_flush(void)
{
    uint64_t before = bx_platform_cost();
    bx_stream_bytes(bx_feed, bx_feed_n);
    bx_text_cost += bx_platform_cost() - before;
    bx_feed_n = 0;
}

static void text_byte(uint8_t b)
{
    bx_feed[bx_feed_n++] = b;
    if (bx_feed_n == BX_FEED_CHUNK) text_flush();
}

/* The streamed text is complete:
 *   -> ok cls=<i> label=<name> conf=<x.xxxx> exit=<d>/<B> tokens=<n> cost=<c> unit=<u>
 *         bmacs=<m> flops=<f> logits=<hex32>,...
 * cost: the engine's work on this text (tokenizer included), interrupts excluded. */
static void classify_end(void)
{
    text_flush();
    uint64_t before = bx_platform_cost();
    int st = bx_stream_end(&bx_res);
    uint64_t cost = bx_text_cost + (bx_platform_cost() - before);
    if (st < 0) { reply_error(-st, NULL); return; }
    if (bx_res.cls < 0 || bx_res.cls >= BX_N_CLASSES) { reply_error(BX_STATUS_INTERNAL, "class"); return; }
    out_str("ok");
    out_key("cls");    out_i32(bx_res.cls);
    out_key("label");  out_str(bx_labels[bx_res.cls]);
    out_key("conf");   out_fixed4(bx_res.confidence);
    out_key("exit");   out_i32(bx_res.exit_depth); out_bytes("/", 1); out_u64(BX_N_BLOCKS);
    out_key("tokens"); out_i32(bx_res.n_tokens);
    out_key("cost");   out_u64(cost);
    out_key("unit");   out_str(BX_COST_UNIT);
    out_key("bmacs");  out_u64(bx_res.bmacs);
    out_key("flops");  out_u64(bx_res.flops);
    out_key("logits"); out_hex_list(bx_res.logits, BX_N_CLASSES);
    out_end();
}

/* <text>, !c <text> */
static void cmd_c(const uint8_t *args, size_t n) { (void)args; (void)n; classify_end(); }

/* !tok <text> -> ok tok n=<k> ids=<i1,...>  (the model input ids, [CLS] first) */
static void cmd_tok(const uint8_t *args, size_t n)
{
    (void)args; (void)n;
    text_flush();
    int k = bx_stream_ids(bx_ids);
    if (k < 0) { reply_error(-k, NULL); return; }
    out_str("ok tok");
    out_key("n");   out_i32(k);
    out_key("ids");
    for (int i = 0; i < k; i++) {
        if (i) out_bytes(",", 1);
        out_i32(bx_ids[i]);
    }
    out_end();
}

/* ---- long texts in pieces ------------------------------------------------------------ */

#define BX_KEY_DIGITS 9                /* a piece's key: 1..9 decimal digits */
#define BX_OFF_DIGITS 12               /* its offset: 1..12 decimal digits */
static int      bx_piece_open;         /* a text in pieces is unfinished */
static uint32_t bx_piece_key;          /* its key */
static uint64_t bx_piece_n;            /* its bytes so far */

/* !more <key> <off> <part> -> ok more n=<bytes of the text so far> */
static void cmd_more(const uint8_t *args, size_t n)
{
    (void)args; (void)n;
    out_str("ok more");
    out_key("n"); out_u64(bx_piece_n);
    out_end();
}

/* !end <key> <off> <part>: the text is complete */
static void cmd_end(const uint8_t *args, size_t n)
{
    bx_piece_open = 0;
    cmd_c(args, n);
}

/* !ping -> ok pong */
static void cmd_ping(const uint8_t *args, size_t n)
{
    (void)args;
    if (n) { reply_error(BX_STATUS_BAD_ARGUMENT, "ping takes no argument"); return; }
    out_str("ok pong");
    out_end();
}

/* !selftest -> ok selftest mismatches=<n>: bx_selftest() (n = -1: no golden sentences
 * were embedded) */
static void cmd_selftest(const uint8_t *args, size_t n)
{
    (void)args;
    if (n) { reply_error(BX_STATUS_BAD_ARGUMENT, "selftest takes no argument"); return; }
    int bad = bx_selftest();
    out_str("ok selftest mismatches=");
    out_i32(bad);
    out_end();
}

/* policy=<name> thr=<hex32>,... of the engine's current policy */
static void out_policy(void)
{
    int n_thr = 0;
    int32_t p = bx_engine_get_policy(bx_thr_arg, &n_thr);
    const char *name = bx_policy_name(p);
    out_key("policy"); out_str(name ? name : "?");
    out_key("thr");    out_hex_list(bx_thr_arg, n_thr);
}

/* !info -> ok info format=<v> hash=<sha256> board=<name> classes=<C> blocks=<B> d=<d>
 *          heads=<h> seq=<L> vocab=<V> labels=<a,b,...> policy=<p> thr=<t,...> unit=<u>
 *          line=<BX_LINE_MAX> window=<BX_WINDOW> first=<BX_FIRST_EXIT> ring=<BX_RX_RING> */
static void cmd_info(const uint8_t *args, size_t n)
{
    (void)args;
    if (n) { reply_error(BX_STATUS_BAD_ARGUMENT, "info takes no argument"); return; }
    out_str("ok info");
    out_key("format");  out_u64(BX_FORMAT_VERSION);
    out_key("hash");    out_str(BX_ARTIFACT_HASH);
    out_key("board");   out_str(BX_BOARD_NAME);
    out_key("classes"); out_u64(BX_N_CLASSES);
    out_key("blocks");  out_u64(BX_N_BLOCKS);
    out_key("d");       out_u64(BX_D_MODEL);
    out_key("heads");   out_u64(BX_N_HEADS);
    out_key("seq");     out_u64(BX_SEQ_MAX);
    out_key("vocab");   out_u64(BX_VOCAB);
    out_key("labels");
    for (int c = 0; c < BX_N_CLASSES; c++) {
        if (c) out_bytes(",", 1);
        out_str(bx_labels[c]);
    }
    out_policy();
    out_key("unit");    out_str(BX_COST_UNIT);
    out_key("line");    out_u64(BX_LINE_MAX);
    out_key("window");  out_u64(BX_WINDOW);
    out_key("first");   out_u64(BX_FIRST_EXIT);      /* 0: exit 0 (the wide exit) exists */
    out_key("ring");    out_u64(BX_RX_RING);         /* the host's byte credit: ring - RX_SLACK */
    out_end();
}

/* A threshold is finite and not negative (-0 is 0), whether written as a decimal or as
 * a 0x bit pattern: NaN, +-inf and negative values are refused the same way. (Above 1
 * is allowed: a confidence threshold of 1.5 means "never exit early".) */
static int threshold_ok(float v)
{
    uint32_t u = f32_bits(v);
    int finite = ((u >> F32_MANT_BITS) & F32_EXP_MAX) != F32_EXP_MAX;
    return finite && v >= 0.0f;
}

/* !policy                     -> ok policy=<name> thr=<hex32>,...   (query)
 * !policy <name> [<t>{,<t>}]  -> set, then the same reply
 * <name> is a policy name of bx_model.h (none, entropy, confidence, budget); each <t>
 * is a decimal or 0x<hex32> (bx_parse_f32), finite and >= 0; the count must suit the policy (0, 1 or
 * BX_N_BLOCKS - 1, checked by bx_engine_set_policy). On error the policy is unchanged. */
static void cmd_policy(const uint8_t *args, size_t n)
{
    const uint8_t *list;
    size_t list_n;
    int n_thr = 0;
    if (n == 0) { out_str("ok"); out_policy(); out_end(); return; }
    size_t name_n = split_word(args, n, &list, &list_n);
    int32_t p = bx_policy_from_name((const char *)args, name_n);
    if (p < 0) { reply_error(BX_STATUS_BAD_ARGUMENT, "unknown policy"); return; }
    while (list_n) {
        size_t t = 0;
        while (t < list_n && list[t] != ',') t++;
        if (n_thr == BX_N_EXITS) { reply_error(BX_STATUS_BAD_ARGUMENT, "too many thresholds"); return; }
        float *v = &bx_thr_arg[n_thr];
        if (bx_parse_f32(list, t, v) < 0 || !threshold_ok(*v)) {
            reply_error(BX_STATUS_BAD_ARGUMENT, "bad threshold");
            return;
        }
        n_thr++;
        if (t == list_n) break;
        list += t + 1;
        list_n -= t + 1;
        if (list_n == 0) { reply_error(BX_STATUS_BAD_ARGUMENT, "bad threshold"); return; }  /* trailing ',' */
    }
    if (bx_engine_set_policy(p, bx_thr_arg, n_thr) < 0) {
        reply_error(BX_STATUS_BAD_ARGUMENT, "wrong number of thresholds for this policy");
        return;
    }
    out_str("ok");
    out_policy();
    out_end();
}

/* How a command's arguments arrive: buffered (at most BX_LINE_MAX bytes, then fn(args,
 * n)), streamed as a text into the engine (fn(NULL, 0) at the line end), or as a piece
 * of a long text (`<key> <off> ` then the part, streamed). A new command is one entry. */
typedef enum { ARGS_BUFFERED, ARGS_TEXT, ARGS_PIECE } bx_args_kind;
typedef void (*bx_command_fn)(const uint8_t *args, size_t n);
static const struct { const char *name; bx_args_kind args; bx_command_fn fn; } bx_commands[] = {
    { "c", ARGS_TEXT, cmd_c }, { "tok", ARGS_TEXT, cmd_tok },
    { "more", ARGS_PIECE, cmd_more }, { "end", ARGS_PIECE, cmd_end },
    { "ping", ARGS_BUFFERED, cmd_ping }, { "info", ARGS_BUFFERED, cmd_info },
    { "policy", ARGS_BUFFERED, cmd_policy }, { "selftest", ARGS_BUFFERED, cmd_selftest },
};
#define BX_N_COMMANDS (sizeof bx_commands / sizeof bx_commands[0])

/* err 4 UNKNOWN_COMMAND !<name>: the name echoed as printable ASCII ('?' for any
 * other byte), cut to BX_ECHO_MAX bytes, so the reply stays one clean line. */
static void reply_unknown(const uint8_t *name, size_t n)
{
    char echo[1 + BX_ECHO_MAX + 3 + 1];
    size_t k = 0;
    echo[k++] = '!';
    for (size_t i = 0; i < n && i < BX_ECHO_MAX; i++) echo[k++] = (name[i] > ' ' && name[i] < 0x7f) ? (char)name[i] : '?';
    if (n > BX_ECHO_MAX) { memcpy(echo + k, "...", 3); k += 3; }
    echo[k] = '\0';
    reply_error(BX_STATUS_UNKNOWN_COMMAND, echo);
}

/* ---- the body state machine ----------------------------------------------------------- */

enum { B_START, B_NAME, B_ARGS, B_PIECE_KEY, B_PIECE_OFF, B_TEXT, B_DISCARD };
static struct {
    int      state;
    int      cmd;                     /* bx_commands index; -1: a plain text, -2: unknown */
    int      status;                  /* BX_STATUS_OK, or why the line is refused (reported at its end) */
    size_t   name_n;                  /* bytes of the command name (the first BX_ECHO_MAX kept) */
    uint8_t  name[BX_ECHO_MAX];
    size_t   n;                       /* bytes in buf (ARGS) or digits of key / offset */
    uint32_t key;
    uint64_t off;
    uint8_t  buf[BX_LINE_MAX];        /* buffered arguments */
} bx_body;

void bx_protocol_begin(void)
{
    bx_body.state = B_START;
    bx_body.cmd = -1;
    bx_body.status = BX_STATUS_OK;
    bx_body.name_n = bx_body.n = 0;
}

/* Which command, now that its name is complete; the line continues as its arguments. */
static void name_done(void)
{
    bx_body.cmd = -2;
    for (size_t i = 0; i < BX_N_COMMANDS; i++) {
        if (strlen(bx_commands[i].name) == bx_body.name_n && bx_body.name_n <= BX_ECHO_MAX &&
            memcmp(bx_commands[i].name, bx_body.name, bx_body.name_n) == 0) bx_body.cmd = (int)i;
    }
    if (bx_body.cmd != -2 && bx_commands[bx_body.cmd].args == ARGS_PIECE) {
        bx_body.state = B_PIECE_KEY;
        bx_body.key = 0;
        bx_body.off = 0;
        bx_body.n = 0;
        return;
    }
    bx_piece_open = 0;                 /* any other line ends an unfinished text in pieces */
    if (bx_body.cmd == -2) { bx_body.state = B_DISCARD; return; }
    if (bx_commands[bx_body.cmd].args == ARGS_TEXT) { bx_body.state = B_TEXT; text_begin(); return; }
    bx_body.state = B_ARGS;
}

/* `<key> <off> ` of a piece is complete: does it continue the unfinished text? */
static void piece_start(void)
{
    if (bx_body.off == 0) {
        text_begin();
        bx_piece_open = 1;
        bx_piece_key = bx_body.key;
        bx_piece_n = 0;
    } else if (!bx_piece_open || bx_piece_key != bx_body.key || bx_piece_n != bx_body.off) {
        bx_piece_open = 0;
        bx_body.status = BX_STATUS_BAD_PIECE;
        bx_body.state = B_DISCARD;
        return;
    }
    bx_body.state = B_TEXT;
}

/* One digit of a piece's key or offset; `end` is the space after it. */
static void piece_digit(uint8_t c)
{
    int key = bx_body.state == B_PIECE_KEY;
    size_t max = key ? BX_KEY_DIGITS : BX_OFF_DIGITS;
    if (c == ' ' && bx_body.n > 0) {
        bx_body.n = 0;
        if (key) bx_body.state = B_PIECE_OFF;
        else piece_start();
        return;
    }
    if (c < '0' || c > '9' || bx_body.n == max) {
        bx_piece_open = 0;
        bx_body.status = BX_STATUS_BAD_ARGUMENT;
        bx_body.state = B_DISCARD;
        return;
    }
    bx_body.n++;
    if (key) bx_body.key = bx_body.key * 10u + (uint32_t)(c - '0');
    else bx_body.off = bx_body.off * 10u + (uint64_t)(c - '0');
}

void bx_protocol_byte(uint8_t c)
{
    switch (bx_body.state) {
    case B_START:
        if (c == '!') { bx_body.state = B_NAME; return; }
        bx_piece_open = 0;
        bx_body.state = B_TEXT;
        text_begin();
        text_byte(c);
        return;
    case B_NAME:
        if (c == ' ') { name_done(); return; }
        if (bx_body.name_n < BX_ECHO_MAX) bx_body.name[bx_body.name_n] = c;
        bx_body.name_n++;
        return;
    case B_ARGS:
        if (bx_body.n == BX_LINE_MAX) { bx_body.status = BX_STATUS_LINE_TOO_LONG; bx_body.state = B_DISCARD; return; }
        bx_body.buf[bx_body.n++] = c;
        return;
    case B_PIECE_KEY:
    case B_PIECE_OFF:
        piece_digit(c);
        return;
    case B_TEXT:
        if (bx_body.cmd >= 0 && bx_commands[bx_body.cmd].args == ARGS_PIECE) bx_piece_n++;
        text_byte(c);
        return;
    default:                           /* B_DISCARD */
        return;
    }
}

void bx_protocol_end(const uint8_t *id, size_t id_n, int status)
{
    out_id(id, id_n);
    if (bx_body.state == B_START) {    /* an empty line: a text with nothing to classify */
        bx_piece_open = 0;
        if (status == BX_STATUS_OK) status = BX_STATUS_EMPTY;
    }
    if (bx_body.state == B_NAME) name_done();
    if (status == BX_STATUS_OK) status = bx_body.status;
    if (status != BX_STATUS_OK) {
        bx_piece_open = 0;             /* a refused line ends an unfinished text in pieces */
        reply_error(status, NULL);
        return;
    }
    if (bx_body.cmd == -2) { reply_unknown(bx_body.name, bx_body.name_n); return; }
    if (bx_body.state == B_PIECE_KEY || bx_body.state == B_PIECE_OFF) {
        bx_piece_open = 0;             /* `!more 12` then the line end */
        reply_error(BX_STATUS_BAD_ARGUMENT, "piece needs <key> <offset> <part>");
        return;
    }
    if (bx_body.cmd == -1) { classify_end(); return; }
    if (bx_commands[bx_body.cmd].args == ARGS_BUFFERED) bx_commands[bx_body.cmd].fn(bx_body.buf, bx_body.n);
    else bx_commands[bx_body.cmd].fn(NULL, 0);
}
