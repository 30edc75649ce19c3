/* bx_kernels_arm.c: the binary linear layer on the Cortex-M4 (Armv7-M Thumb-2 + FPv4).
 *
 * Linked into Cortex-M4 builds only (codegen/project.py, KERNEL_FILES); its
 * bx_binlinear replaces the portable one of bx_kernels.c (BX_HAVE_BINLINEAR). The integer part of the
 * model's shapes (rows of 4 or 8 words: n_in = 128 or 256, n_out a multiple of 8) runs
 * in the hand-written loops below; every other shape, and the rows past the last
 * multiple of 8, run in bx_binlinear_portable. The words-4 and words-8 dot loops come
 * in two versions: here the Armv7-M one (no DSP instruction), and in
 * bx_kernels_arm_dsp.c the one using USADA8 (built with -DBX_USE_DSP).
 *
 * Counting the bits of a row (p = popcount(x XOR w), dot = n - 2p; bx_kernels.h).
 * Instructions, not cycles, are what we minimise, so:
 * - LDM loads a row's four words in one instruction; the four input words stay in
 *   r8-r11 for the whole call.
 * - A full adder folds three of the XORed words a, b, c into two: with t = a ^ b,
 *       s = t ^ c,  cy = a ^ (t & (a ^ c))   (the majority of a, b, c)
 *   and a + b + c = s + 2 cy bit by bit, so pop(a) + pop(b) + pop(c) = pop(s) + 2 pop(cy):
 *   five logic instructions save one word's popcount.
 * - SWAR counts: cnt4(v) leaves the number of set bits of each nibble in that nibble
 *   (0..4), in five instructions (masks as Thumb-2 immediates: no mask registers):
 *       v = v - ((v & 0xAAAAAAAA) >> 1);  v = (v & 0x33333333) + ((v & 0xCCCCCCCC) >> 2).
 * - Nibble counts of several words add up in one word while each nibble stays <= 15:
 *   z = cnt4(s) + 2 cnt4(cy) is <= 4 + 8 = 12 per nibble. Adding a fourth word's counts
 *   could reach 16 (all 16 bits of a nibble column set), so the fourth word d gets its
 *   own nibble word.
 * - Nibbles to bytes: (v & 0x0F0F0F0F) + ((v & 0xF0F0F0F0) >> 4) (three instructions;
 *   bytes <= 30); when every nibble is <= 7, (v + (v >> 4)) & 0x0F0F0F0F (two: the low
 *   nibble sum stays below 16 and nothing carries into the next byte).
 * - Bytes to the total: T * 0x01010101 holds b0 + b1 + b2 + b3 in its top byte. With
 *   every byte <= 32 (words-4 rows, p <= 128) the three lower sums stay below 128, so
 *   bit 23 is 0 and (T * 0x01010101) >> 23 is exactly 2p: dot = n - (T * 0x01010101 >> 23)
 *   in two instructions. Words-8 rows have p <= 256, which a byte cannot hold: bytes
 *   <= 64 are added to halfwords (<= 128), T + (T << 16) holds p in its top halfword and
 *   bit 15 is 0, so dot = n - (that >> 15).
 * - Words-8 rows: four full adders (Harley-Seal: ones of w0..w6 folded three at a time,
 *   then the three carries) leave planes s (1), w7 (1), t (2), f (4):
 *       p = pop(s) + pop(w7) + 2 pop(t) + 4 pop(f)
 *         = bytes(cnt4(s) + 2 cnt4(t)) + bytes(cnt4(w7) + 2 cnt4(f)) + 2 bytes(cnt4(f)).
 *
 * The float epilogue y[o] = (float)dot * alpha[o] + bias[o] is the reference's
 * expression. The dot loops store the integer dots into y; bx_m4_affine then converts
 * eight at a time (VLDM, VCVT) and computes bias + dot * alpha with VMLA.F32. VMLA is not
 * fused: the Armv7-M architecture defines it as FPMul then FPAdd, each rounded (VFMA is
 * the fused one), so it is the same float as VMUL then VADD; tests/test_m4_kernels.py
 * checks this on the built code against the reference. Flush-to-zero is off (FPSCR
 * reset value), as for the reference.
 */
#include "bx_kernels.h"
#include "bx_kernels_arm.h"
#include "bx_math.h"
#include "bx_numerics.h"

__asm__(BX_ARM_ASM_MACROS);

#if !defined(BX_USE_DSP)
__asm__(
    /* One words-4 row: r0 = W row (advanced), r8-r11 = x, r2 = 0x01010101, lr = n,
     * dot stored at r1 (advanced). Planes: after the adder r5 = s, r4 = cy; r7 = d. */
    "   .macro bx_row4\n"
    "   ldm     r0!, {r4-r7}\n"
    "   eor     r4, r4, r8\n"
    "   eor     r5, r5, r9\n"
    "   eor     r6, r6, r10\n"
    "   eor     r7, r7, r11\n"
    "   bx_fa   r4, r5, r6\n"               /* r6 = s, r4 = cy */
    "   bx_cnt4 r6\n"
    "   bx_cnt4 r4\n"
    "   add     r6, r6, r4, lsl #1\n"       /* z = cnt4(s) + 2 cnt4(cy), <= 12 */
    "   bx_cnt4 r7\n"                       /* <= 4 */
    "   bx_nib2bytes r6\n"                  /* <= 24 */
    "   bx_nib2bytes_small r7\n"            /* <= 8 */
    "   add     r6, r6, r7\n"               /* T, bytes <= 32 */
    "   mul     r6, r6, r2\n"
    "   sub     r6, lr, r6, lsr #23\n"      /* n - 2p */
    "   str     r6, [r1], #4\n"
    "   .endm\n"
    BX_ARM_DOTS4("   mov     r2, #0x01010101\n")   /* the byte-sum multiplier of bx_row4 */

    /* One words-8 row: r0 = W row (advanced), r2 = x, dot stored at r1 (advanced).
     * Half one: w0..w3 ^ x0..x3 in r4-r7, adder (r4, r5, r6) -> r6 = s_a, r4 = c_a,
     * r7 = w3. Half two: w4..w7 in r8-r11, x4..x7 two at a time through r5, r12 ... */
    "   .macro bx_row8\n"
    "   ldm     r0!, {r4-r7}\n"
    "   ldm     r2, {r8-r11}\n"
    "   eor     r4, r4, r8\n"
    "   eor     r5, r5, r9\n"
    "   eor     r6, r6, r10\n"
    "   eor     r7, r7, r11\n"
    "   bx_fa   r4, r5, r6\n"               /* r6 = s_a, r4 = c_a; r5 free */
    "   ldm     r0!, {r8-r11}\n"
    "   ldrd    r5, r12, [r2, #16]\n"
    "   eor     r8, r8, r5\n"
    "   eor     r9, r9, r12\n"
    "   ldrd    r5, r12, [r2, #24]\n"
    "   eor     r10, r10, r5\n"
    "   eor     r11, r11, r12\n"            /* w4..w7 in r8-r11 */
    "   bx_fa   r6, r7, r8\n"               /* r8 = s_b, r6 = c_b */
    "   bx_fa   r8, r9, r10\n"              /* r10 = s_c, r8 = c_c */
    "   bx_fa   r4, r6, r8\n"               /* r8 = t (2), r4 = f (4) */
    "   bx_cnt4 r10\n"
    "   bx_cnt4 r8\n"
    "   add     r10, r10, r8, lsl #1\n"     /* A = cnt4(s_c) + 2 cnt4(t), <= 12 */
    "   bx_cnt4 r11\n"
    "   bx_cnt4 r4\n"
    "   add     r11, r11, r4, lsl #1\n"     /* B = cnt4(w7) + 2 cnt4(f), <= 12 */
    "   bx_nib2bytes r10\n"
    "   bx_nib2bytes r11\n"
    "   bx_nib2bytes_small r4\n"            /* bytes(cnt4(f)) <= 8 */
    "   add     r10, r10, r11\n"
    "   add     r10, r10, r4, lsl #1\n"     /* T, bytes <= 64 */
    "   and     r12, r10, #0xFF00FF00\n"
    "   and     r10, r10, #0x00FF00FF\n"
    "   add     r10, r10, r12, lsr #8\n"    /* halfwords <= 128 */
    "   add     r10, r10, r10, lsl #16\n"   /* top halfword = p <= 256, bit 15 = 0 */
    "   sub     r10, lr, r10, lsr #15\n"    /* n - 2p */
    "   str     r10, [r1], #4\n"
    "   .endm\n"
    BX_ARM_DOTS8
);
#endif

__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_affine)
    "   .type   bx_m4_affine, %function\n"
    "   .thumb_func\n"
    "bx_m4_affine:\n"                       /* r0 = y (dots in, floats out), r1 = alpha, r2 = bias, r3 = n */
    "   vpush   {s16-s23}\n"
    "   add     r3, r0, r3, lsl #2\n"
    "1: vldm    r0, {s0-s7}\n"
    "   vcvt.f32.s32 s0, s0\n"
    "   vcvt.f32.s32 s1, s1\n"
    "   vcvt.f32.s32 s2, s2\n"
    "   vcvt.f32.s32 s3, s3\n"
    "   vcvt.f32.s32 s4, s4\n"
    "   vcvt.f32.s32 s5, s5\n"
    "   vcvt.f32.s32 s6, s6\n"
    "   vcvt.f32.s32 s7, s7\n"
    "   vldm    r1!, {s8-s15}\n"
    "   vldm    r2!, {s16-s23}\n"
    "   vmla.f32 s16, s0, s8\n"
    "   vmla.f32 s17, s1, s9\n"
    "   vmla.f32 s18, s2, s10\n"
    "   vmla.f32 s19, s3, s11\n"
    "   vmla.f32 s20, s4, s12\n"
    "   vmla.f32 s21, s5, s13\n"
    "   vmla.f32 s22, s6, s14\n"
    "   vmla.f32 s23, s7, s15\n"
    "   vstm    r0!, {s16-s23}\n"
    "   cmp     r0, r3\n"
    "   bne     1b\n"
    "   vpop    {s16-s23}\n"
    "   bx      lr\n"
    "   .size   bx_m4_affine, . - bx_m4_affine\n"
);

/* Sign packing without a bit loop. x < 0 for a float with bits u exactly when
 * 0x80000001 <= u <= 0xFF800000 (negative, not -0.0, not a NaN), i.e. when
 * u - 0x80000001 < 0x7F800000 unsigned. CMP sets the carry to the negation of that,
 * and ADC acc, acc, acc shifts the carry in at bit 0: thirty-two of them, last element
 * first, leave ~word, which one MVN turns into the word (bit i = x[i] < 0, no
 * initialisation needed: the old contents are shifted out). Three instructions per
 * element; the floats come eight at a time by LDMDB. */
__asm__(
    "   .macro bx_sign r\n"
    "   sub     r12, \\r, lr\n"
    "   cmp     r12, #0x7F800000\n"
    "   adc     r3, r3, r3\n"
    "   .endm\n"
    "   .macro bx_signs8\n"
    "   ldmdb   r1!, {r4-r11}\n"
    "   bx_sign r11\n"
    "   bx_sign r10\n"
    "   bx_sign r9\n"
    "   bx_sign r8\n"
    "   bx_sign r7\n"
    "   bx_sign r6\n"
    "   bx_sign r5\n"
    "   bx_sign r4\n"
    "   .endm\n"
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_pack_words)
    "   .type   bx_m4_pack_words, %function\n"
    "   .thumb_func\n"
    "bx_m4_pack_words:\n"                  /* r0 = out, r1 = x, r2 = words > 0 */
    "   push    {r4-r11, lr}\n"
    "   movw    lr, #0x0001\n"
    "   movt    lr, #0x8000\n"
    "1: add     r1, r1, #128\n"            /* one past this word's floats */
    "   bx_signs8\n"
    "   bx_signs8\n"
    "   bx_signs8\n"
    "   bx_signs8\n"                       /* r1 back at the word's first float */
    "   mvn     r3, r3\n"
    "   str     r3, [r0], #4\n"
    "   add     r1, r1, #128\n"
    "   subs    r2, r2, #1\n"
    "   bne     1b\n"
    "   pop     {r4-r11, pc}\n"
    "   .size   bx_m4_pack_words, . - bx_m4_pack_words\n"
);

void bx_pack_signs(uint32_t *out, const float *x, int n)
{
    const int words = n / 32;
    if (words > 0) bx_m4_pack_words(out, x, words);
    if (n % 32) bx_pack_signs_ref(out + words, x + 32 * words, n - 32 * words);
}

/* V weighting, eight columns: the eight sums in s8-s15 for the whole loop over j, one
 * VLDM of the row's eight values and eight VMLA (bias + round(e_j * v), the reference's
 * vmul then vadd) per j; the sums start at +0.0 as the reference's do. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_weigh8)
    "   .type   bx_weigh8, %function\n"
    "   .thumb_func\n"
    "bx_weigh8:\n"                         /* r0 = o, r1 = e, r2 = v, r3 = v_stride, [sp] = n, s0 = inv */
    "   mov     r12, #0\n"
    "   vmov    s8, s9, r12, r12\n"
    "   vmov    s10, s11, r12, r12\n"
    "   vmov    s12, s13, r12, r12\n"
    "   vmov    s14, s15, r12, r12\n"
    "   ldr     r12, [sp]\n"
    "   vpush   {s16-s23}\n"
    "   lsl     r3, r3, #2\n"
    "   cmp     r12, #0\n"
    "   ble     2f\n"
    "1: vldmia  r1!, {s1}\n"
    "   vldm    r2, {s16-s23}\n"
    "   add     r2, r2, r3\n"
    "   vmla.f32 s8, s1, s16\n"
    "   vmla.f32 s9, s1, s17\n"
    "   vmla.f32 s10, s1, s18\n"
    "   vmla.f32 s11, s1, s19\n"
    "   vmla.f32 s12, s1, s20\n"
    "   vmla.f32 s13, s1, s21\n"
    "   vmla.f32 s14, s1, s22\n"
    "   vmla.f32 s15, s1, s23\n"
    "   subs    r12, r12, #1\n"
    "   bne     1b\n"
    "2: vmul.f32 s8, s8, s0\n"
    "   vmul.f32 s9, s9, s0\n"
    "   vmul.f32 s10, s10, s0\n"
    "   vmul.f32 s11, s11, s0\n"
    "   vmul.f32 s12, s12, s0\n"
    "   vmul.f32 s13, s13, s0\n"
    "   vmul.f32 s14, s14, s0\n"
    "   vmul.f32 s15, s15, s0\n"
    "   vstm    r0, {s8-s15}\n"
    "   vpop    {s16-s23}\n"
    "   bx      lr\n"
    "   .size   bx_weigh8, . - bx_weigh8\n"
);

/* V weighting, sixteen columns: the sixteen sums in s16-s31 for the whole loop over j
 * (the reference's additions in j order from +0.0, each a VMLA: round(e_j * v) then the
 * add), the row's sixteen values by two VLDM of eight, two keys per pass (one VLDM of
 * their two weights, one loop step): 20.5 instructions per key and 16 columns against
 * bx_weigh8's 26. An odd first key runs alone. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_weigh16)
    "   .type   bx_m4_weigh16, %function\n"
    "   .thumb_func\n"
    "bx_m4_weigh16:\n"                     /* r0 = o, r1 = e, r2 = v, r3 = v_stride, [sp] = n >= 1, s0 = inv */
    "   vpush   {s16-s31}\n"
    "   mov     r12, #0\n"
    "   vmov    s16, s17, r12, r12\n"
    "   vmov    s18, s19, r12, r12\n"
    "   vmov    s20, s21, r12, r12\n"
    "   vmov    s22, s23, r12, r12\n"
    "   vmov    s24, s25, r12, r12\n"
    "   vmov    s26, s27, r12, r12\n"
    "   vmov    s28, s29, r12, r12\n"
    "   vmov    s30, s31, r12, r12\n"
    "   ldr     r12, [sp, #64]\n"
    "   lsl     r3, r3, #2\n"
    "   sub     r3, r3, #32\n"              /* from the row's second half to the next row */
    "   tst     r12, #1\n"
    "   beq     1f\n"
    "   vldmia  r1!, {s1}\n"
    "   vldmia  r2!, {s8-s15}\n"
    "   vmla.f32 s16, s1, s8\n"
    "   vmla.f32 s17, s1, s9\n"
    "   vmla.f32 s18, s1, s10\n"
    "   vmla.f32 s19, s1, s11\n"
    "   vmla.f32 s20, s1, s12\n"
    "   vmla.f32 s21, s1, s13\n"
    "   vmla.f32 s22, s1, s14\n"
    "   vmla.f32 s23, s1, s15\n"
    "   vldmia  r2, {s8-s15}\n"
    "   add     r2, r2, r3\n"
    "   vmla.f32 s24, s1, s8\n"
    "   vmla.f32 s25, s1, s9\n"
    "   vmla.f32 s26, s1, s10\n"
    "   vmla.f32 s27, s1, s11\n"
    "   vmla.f32 s28, s1, s12\n"
    "   vmla.f32 s29, s1, s13\n"
    "   vmla.f32 s30, s1, s14\n"
    "   vmla.f32 s31, s1, s15\n"
    "1: lsrs    r12, r12, #1\n"
    "   beq     3f\n"
    "2: vldmia  r1!, {s1, s2}\n"
    "   vldmia  r2!, {s8-s15}\n"
    "   vmla.f32 s16, s1, s8\n"
    "   vmla.f32 s17, s1, s9\n"
    "   vmla.f32 s18, s1, s10\n"
    "   vmla.f32 s19, s1, s11\n"
    "   vmla.f32 s20, s1, s12\n"
    "   vmla.f32 s21, s1, s13\n"
    "   vmla.f32 s22, s1, s14\n"
    "   vmla.f32 s23, s1, s15\n"
    "   vldmia  r2, {s8-s15}\n"
    "   add     r2, r2, r3\n"
    "   vmla.f32 s24, s1, s8\n"
    "   vmla.f32 s25, s1, s9\n"
    "   vmla.f32 s26, s1, s10\n"
    "   vmla.f32 s27, s1, s11\n"
    "   vmla.f32 s28, s1, s12\n"
    "   vmla.f32 s29, s1, s13\n"
    "   vmla.f32 s30, s1, s14\n"
    "   vmla.f32 s31, s1, s15\n"
    "   vldmia  r2!, {s8-s15}\n"
    "   vmla.f32 s16, s2, s8\n"
    "   vmla.f32 s17, s2, s9\n"
    "   vmla.f32 s18, s2, s10\n"
    "   vmla.f32 s19, s2, s11\n"
    "   vmla.f32 s20, s2, s12\n"
    "   vmla.f32 s21, s2, s13\n"
    "   vmla.f32 s22, s2, s14\n"
    "   vmla.f32 s23, s2, s15\n"
    "   vldmia  r2, {s8-s15}\n"
    "   add     r2, r2, r3\n"
    "   vmla.f32 s24, s2, s8\n"
    "   vmla.f32 s25, s2, s9\n"
    "   vmla.f32 s26, s2, s10\n"
    "   vmla.f32 s27, s2, s11\n"
    "   vmla.f32 s28, s2, s12\n"
    "   vmla.f32 s29, s2, s13\n"
    "   vmla.f32 s30, s2, s14\n"
    "   vmla.f32 s31, s2, s15\n"
    "   subs    r12, r12, #1\n"
    "   bne     2b\n"
    "3:\n"
    "   vmul.f32 s16, s16, s0\n"
    "   vmul.f32 s17, s17, s0\n"
    "   vmul.f32 s18, s18, s0\n"
    "   vmul.f32 s19, s19, s0\n"
    "   vmul.f32 s20, s20, s0\n"
    "   vmul.f32 s21, s21, s0\n"
    "   vmul.f32 s22, s22, s0\n"
    "   vmul.f32 s23, s23, s0\n"
    "   vmul.f32 s24, s24, s0\n"
    "   vmul.f32 s25, s25, s0\n"
    "   vmul.f32 s26, s26, s0\n"
    "   vmul.f32 s27, s27, s0\n"
    "   vmul.f32 s28, s28, s0\n"
    "   vmul.f32 s29, s29, s0\n"
    "   vmul.f32 s30, s30, s0\n"
    "   vmul.f32 s31, s31, s0\n"
    "   vstm    r0, {s16-s31}\n"
    "   vpop    {s16-s31}\n"
    "   bx      lr\n"
    "   .size   bx_m4_weigh16, . - bx_m4_weigh16\n"
);
void bx_m4_weigh16(float *o, const float *e, const float *v, int v_stride, int n, float inv);

/* o (dh,) = inv * sum_j e[j] * v_j: sixteen columns at a time when dh allows, else the
 * portable path (bx_weigh8 above and a column tail). */
void bx_attend_weigh(float *o, const float *e, const float *v, int v_stride, int n, int dh, float inv)
{
    if (n > 0 && dh > 0 && dh % 16 == 0) {
        for (int c0 = 0; c0 < dh; c0 += 16) bx_m4_weigh16(o + c0, e, v + c0, v_stride, n, inv);
        return;
    }
    bx_attend_weigh_portable(o, e, v, v_stride, n, dh, inv);
}

/* Attention counts of a one-word head (dh = 32), two keys per pass: per key one LDR,
 * EOR, the nibble count and byte sum of the words-4 rows (bytes <= 8, so
 * (T * 0x01010101) >> 24 = p), the running minimum by an IT'd MOV (from 33, above every
 * count); the pair's stride step and STRD shared; an odd first key alone. flip is the
 * caller's: q0 = ~q[0] gives 32 - p. */
#define BX_COUNT1(r) \
    "   eor     " r ", " r ", r1\n" \
    "   bx_cnt4 " r "\n" \
    "   bx_nib2bytes_small " r "\n" \
    "   mul     " r ", " r ", r5\n" \
    "   lsr     " r ", " r ", #24\n"
#define BX_MIN1(r) \
    "   cmp     " r ", r6\n" \
    "   it      lo\n" \
    "   movlo   r6, " r "\n"
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_counts32)
    "   .type   bx_m4_counts32, %function\n"
    "   .thumb_func\n"
    "bx_m4_counts32:\n"         /* r0 = c, r1 = q0, r2 = k, r3 = k_stride (words), [sp] = n >= 1; returns min */
    "   push    {r4-r7, lr}\n"
    "   ldr     lr, [sp, #20]\n"
    "   lsl     r3, r3, #2\n"
    "   mov     r5, #0x01010101\n"
    "   mov     r6, #33\n"
    "   tst     lr, #1\n"
    "   beq     1f\n"
    "   ldr     r4, [r2]\n"
    "   add     r2, r2, r3\n"
    BX_COUNT1("r4")
    "   str     r4, [r0], #4\n"
    BX_MIN1("r4")
    "1: lsrs    lr, lr, #1\n"
    "   beq     3f\n"
    "2: ldr     r4, [r2]\n"
    "   ldr     r7, [r2, r3]\n"
    "   add     r2, r2, r3, lsl #1\n"
    BX_COUNT1("r4")
    BX_COUNT1("r7")
    "   strd    r4, r7, [r0], #8\n"
    BX_MIN1("r4")
    BX_MIN1("r7")
    "   subs    lr, lr, #1\n"
    "   bne     2b\n"
    "3: mov     r0, r6\n"
    "   pop     {r4-r7, pc}\n"
    "   .size   bx_m4_counts32, . - bx_m4_counts32\n"
);

int32_t bx_attend_scores(int32_t *c, const uint32_t *q, const uint32_t *k, int k_stride, int n, int dh, int flip)
{
    if (dh == 32 && n > 0)
        return bx_m4_counts32(c, flip ? ~q[0] : q[0], k, k_stride, n);
    return bx_attend_scores_portable(c, q, k, k_stride, n, dh, flip);
}

/* Softmax weights by table, two keys per pass: LDRD of the two counts, the addresses
 * E + 4 (c - lo) (E - 4 lo set up once), two VLDR, one VSTM, and the running sum z in j
 * order from +0.0; an odd first key alone. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_softmax_tab)
    "   .type   bx_m4_softmax_tab, %function\n"
    "   .thumb_func\n"
    "bx_m4_softmax_tab:\n"      /* r0 = e, r1 = c, r2 = n >= 1, r3 = lo, [sp] = E; returns s0 = 1 / z */
    "   ldr     r12, [sp]\n"
    "   push    {r4}\n"
    "   sub     r12, r12, r3, lsl #2\n"
    "   mov     r3, #0\n"
    "   vmov    s1, r3\n"                   /* z = +0.0 */
    "   tst     r2, #1\n"
    "   beq     1f\n"
    "   ldr     r3, [r1], #4\n"
    "   add     r3, r12, r3, lsl #2\n"
    "   vldr    s0, [r3]\n"
    "   vstmia  r0!, {s0}\n"
    "   vadd.f32 s1, s1, s0\n"
    "1: lsrs    r2, r2, #1\n"
    "   beq     3f\n"
    "2: ldrd    r3, r4, [r1], #8\n"
    "   add     r3, r12, r3, lsl #2\n"
    "   add     r4, r12, r4, lsl #2\n"
    "   vldr    s2, [r3]\n"
    "   vldr    s3, [r4]\n"
    "   vstmia  r0!, {s2, s3}\n"
    "   vadd.f32 s1, s1, s2\n"
    "   vadd.f32 s1, s1, s3\n"
    "   subs    r2, r2, #1\n"
    "   bne     2b\n"
    "3: vmov.f32 s2, #1.0\n"
    "   vdiv.f32 s0, s2, s1\n"
    "   pop     {r4}\n"
    "   bx      lr\n"
    "   .size   bx_m4_softmax_tab, . - bx_m4_softmax_tab\n"
);

float bx_attend_softmax(float *e, const int32_t *c, int n, int32_t lo, const float *E)
{
    if (n > 0) return bx_m4_softmax_tab(e, c, n, lo, E);
    return bx_attend_softmax_portable(e, c, n, lo, E);
}

/* Sigmoid (bx_math.h bx_sigmoidf, the table sigmoid), two elements per pass and no
 * branch: x + SHIFT by VADD; VCVT to signed fixed point with 20 fraction bits is
 * trunc((x + SHIFT) * 2^20) = trunc(u) (the multiply by 2^20 is exact), saturating, with
 * NaN to 0; USAT #25 clamps to [0, QMAX]: together the C's q for every input. f by
 * VCVT from unsigned 16-bit fixed point with 16 fraction bits (the low half of q times
 * 2^-16, exact), i = q >> 16 by UBFX, and T[i] + round(f * D[i]) by VMLA (not fused:
 * the C's multiply then add) from the pair at BX_SIG_TD + 8 i. 11.5 instructions per
 * element. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_sigmoid_loop)
    "   .type   bx_m4_sigmoid_loop, %function\n"
    "   .thumb_func\n"
    "bx_m4_sigmoid_loop:\n"     /* r0 = x, r1 = n >= 1, r2 = &SHIFT, r3 = BX_SIG_TD */
    "   push    {r4, r5}\n"
    "   vldr    s15, [r2]\n"
    "   tst     r1, #1\n"
    "   beq     1f\n"
    "   vldr    s8, [r0]\n"                 /* an odd first element alone */
    "   vadd.f32 s4, s8, s15\n"
    "   vcvt.s32.f32 s4, s4, #20\n"
    "   vmov    r4, s4\n"
    "   usat    r4, #25, r4\n"
    "   vmov    s4, r4\n"
    "   vcvt.f32.u16 s4, s4, #16\n"
    "   ubfx    r4, r4, #16, #9\n"
    "   add     r4, r3, r4, lsl #3\n"
    "   vldm    r4, {s10, s11}\n"
    "   vmla.f32 s10, s4, s11\n"
    "   vstmia  r0!, {s10}\n"
    "1: lsrs    r1, r1, #1\n"               /* pairs */
    "   beq     3f\n"
    "2: vldmia  r0, {s8, s9}\n"
    "   vadd.f32 s4, s8, s15\n"
    "   vadd.f32 s5, s9, s15\n"
    "   vcvt.s32.f32 s4, s4, #20\n"
    "   vcvt.s32.f32 s5, s5, #20\n"
    "   vmov    r4, r5, s4, s5\n"
    "   usat    r4, #25, r4\n"
    "   usat    r5, #25, r5\n"
    "   vmov    s4, s5, r4, r5\n"
    "   vcvt.f32.u16 s4, s4, #16\n"         /* f0 */
    "   vcvt.f32.u16 s5, s5, #16\n"         /* f1 */
    "   ubfx    r4, r4, #16, #9\n"          /* i0 */
    "   ubfx    r5, r5, #16, #9\n"
    "   add     r4, r3, r4, lsl #3\n"
    "   add     r5, r3, r5, lsl #3\n"
    "   vldm    r4, {s10, s11}\n"
    "   vldm    r5, {s12, s13}\n"
    "   vmla.f32 s10, s4, s11\n"
    "   vmla.f32 s12, s5, s13\n"
    "   vstmia  r0!, {s10}\n"
    "   vstmia  r0!, {s12}\n"
    "   subs    r1, r1, #1\n"
    "   bne     2b\n"
    "3: pop     {r4, r5}\n"
    "   bx      lr\n"
    "   .size   bx_m4_sigmoid_loop, . - bx_m4_sigmoid_loop\n"
);
void bx_m4_sigmoid_loop(float *x, int n, const float *shift, const float *td);

/* the loop's immediates (#20, #25, #16, 9 index bits) are these constants */
_Static_assert((long)BX_SIG_FIX == 1048576L && BX_SIG_QMAX == (1 << 25) - 1 && BX_SIG_FRAC_BITS == 16,
               "bx_m4_sigmoid_loop assumes a 512-interval table, 16 fraction bits");
static const float bx_sigmoid_shift = BX_SIG_SHIFT;

void bx_sigmoid_array(float *x, int n)
{
    if (n > 0) bx_m4_sigmoid_loop(x, n, &bx_sigmoid_shift, BX_SIG_TD);
}

/* Embedding row, eight elements per step, d a multiple of 32: the token's and the
 * position's sign words shift their bits into the carry (LSB first) and an IT'd VNEG
 * flips the scale (-s exactly), then the VADD in the C's order. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_embed32)
    "   .type   bx_m4_embed32, %function\n"
    "   .thumb_func\n"
    "bx_m4_embed32:\n"          /* r0 = x, r1 = tb, r2 = pb, r3 = ts, [sp] = ps, [sp, #4] = words > 0 */
    "   push    {r4-r6, lr}\n"
    "   ldr     r12, [sp, #16]\n"
    "   ldr     lr, [sp, #20]\n"
    "1: ldr     r4, [r1], #4\n"
    "   ldr     r5, [r2], #4\n"
    "   mov     r6, #4\n"
    "2: vldmia  r3!, {s0-s7}\n"
    "   vldmia  r12!, {s8-s15}\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s0, s0\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s8, s8\n"
    "   vadd.f32 s0, s0, s8\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s1, s1\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s9, s9\n"
    "   vadd.f32 s1, s1, s9\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s2, s2\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s10, s10\n"
    "   vadd.f32 s2, s2, s10\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s3, s3\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s11, s11\n"
    "   vadd.f32 s3, s3, s11\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s4, s4\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s12, s12\n"
    "   vadd.f32 s4, s4, s12\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s5, s5\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s13, s13\n"
    "   vadd.f32 s5, s5, s13\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s6, s6\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s14, s14\n"
    "   vadd.f32 s6, s6, s14\n"
    "   lsrs    r4, r4, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s7, s7\n"
    "   lsrs    r5, r5, #1\n"
    "   it      cs\n"
    "   vnegcs.f32 s15, s15\n"
    "   vadd.f32 s7, s7, s15\n"
    "   vstmia  r0!, {s0-s7}\n"
    "   subs    r6, r6, #1\n"
    "   bne     2b\n"
    "   subs    lr, lr, #1\n"
    "   bne     1b\n"
    "   pop     {r4-r6, pc}\n"
    "   .size   bx_m4_embed32, . - bx_m4_embed32\n"
);
void bx_m4_embed32(float *x, const uint32_t *tb, const uint32_t *pb, const float *ts, const float *ps, int words);

void bx_embed_row(float *x, const uint32_t *tb, const uint32_t *pb, const float *ts, const float *ps, int d)
{
    if (d > 0 && d % 32 == 0)
        bx_m4_embed32(x, tb, pb, ts, ps, d / 32);
    else
        bx_embed_row_portable(x, tb, pb, ts, ps, d);
}

/* Column sums, sixteen columns: the sixteen sums in s16-s31 over the rows in order
 * (the reference's s += x[i][k], from +0.0), two VLDM of eight per row. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_colsum16)
    "   .type   bx_m4_colsum16, %function\n"
    "   .thumb_func\n"
    "bx_m4_colsum16:\n"         /* r0 = s (16,) out, r1 = x, r2 = n >= 1, r3 = row stride (floats) */
    "   vpush   {s16-s31}\n"
    "   mov     r12, #0\n"
    "   vmov    s16, s17, r12, r12\n"
    "   vmov    s18, s19, r12, r12\n"
    "   vmov    s20, s21, r12, r12\n"
    "   vmov    s22, s23, r12, r12\n"
    "   vmov    s24, s25, r12, r12\n"
    "   vmov    s26, s27, r12, r12\n"
    "   vmov    s28, s29, r12, r12\n"
    "   vmov    s30, s31, r12, r12\n"
    "   lsl     r3, r3, #2\n"
    "   sub     r3, r3, #32\n"
    "1: vldmia  r1!, {s0-s7}\n"
    "   vadd.f32 s16, s16, s0\n"
    "   vadd.f32 s17, s17, s1\n"
    "   vadd.f32 s18, s18, s2\n"
    "   vadd.f32 s19, s19, s3\n"
    "   vadd.f32 s20, s20, s4\n"
    "   vadd.f32 s21, s21, s5\n"
    "   vadd.f32 s22, s22, s6\n"
    "   vadd.f32 s23, s23, s7\n"
    "   vldmia  r1, {s8-s15}\n"
    "   add     r1, r1, r3\n"
    "   vadd.f32 s24, s24, s8\n"
    "   vadd.f32 s25, s25, s9\n"
    "   vadd.f32 s26, s26, s10\n"
    "   vadd.f32 s27, s27, s11\n"
    "   vadd.f32 s28, s28, s12\n"
    "   vadd.f32 s29, s29, s13\n"
    "   vadd.f32 s30, s30, s14\n"
    "   vadd.f32 s31, s31, s15\n"
    "   subs    r2, r2, #1\n"
    "   bne     1b\n"
    "   vstm    r0, {s16-s31}\n"
    "   vpop    {s16-s31}\n"
    "   bx      lr\n"
    "   .size   bx_m4_colsum16, . - bx_m4_colsum16\n"
);
void bx_m4_colsum16(float *s, const float *x, int n, int stride);

void bx_colmean(float *m, const float *x, int n, int d)
{
    if (n <= 0 || d <= 0 || d % 16) {
        bx_colmean_portable(m, x, n, d);
        return;
    }
    for (int k = 0; k < d; k += 16) bx_m4_colsum16(m + k, x + k, n, d);
    for (int k = 0; k < d; k++) m[k] = m[k] / (float)n;
}

/* Residual add, eight elements per pass: VLDM, VLDM, eight VADD (a first), VSTM. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_vadd8)
    "   .type   bx_m4_vadd8, %function\n"
    "   .thumb_func\n"
    "bx_m4_vadd8:\n"            /* r0 = y, r1 = a, r2 = b, r3 = n (multiple of 8, > 0) */
    "1: vldmia  r1!, {s0-s7}\n"
    "   vldmia  r2!, {s8-s15}\n"
    "   vadd.f32 s0, s0, s8\n"
    "   vadd.f32 s1, s1, s9\n"
    "   vadd.f32 s2, s2, s10\n"
    "   vadd.f32 s3, s3, s11\n"
    "   vadd.f32 s4, s4, s12\n"
    "   vadd.f32 s5, s5, s13\n"
    "   vadd.f32 s6, s6, s14\n"
    "   vadd.f32 s7, s7, s15\n"
    "   vstmia  r0!, {s0-s7}\n"
    "   subs    r3, r3, #8\n"
    "   bne     1b\n"
    "   bx      lr\n"
    "   .size   bx_m4_vadd8, . - bx_m4_vadd8\n"
);
void bx_m4_vadd8(float *y, const float *a, const float *b, int n);

void bx_vadd(float *y, const float *a, const float *b, int n)
{
    if (n > 0 && n % 8 == 0)
        bx_m4_vadd8(y, a, b, n);
    else
        bx_vadd_portable(y, a, b, n);
}

/* SLFN mix, eight elements per pass: f1 * x by VMUL, + round(f2 * att) and
 * + round(s * c) by VMLA (the C's multiplies and adds, in its order); the gates and the
 * candidate sit d floats apart in g. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_slfn_mix8)
    "   .type   bx_m4_slfn_mix8, %function\n"
    "   .thumb_func\n"
    "bx_m4_slfn_mix8:\n"        /* r0 = att, r1 = g, r2 = x, r3 = d (multiple of 8, > 0) */
    "   push    {r4, r5}\n"
    "   vpush   {s16-s31}\n"
    "   lsl     r4, r3, #2\n"               /* d floats in bytes */
    "1: vldmia  r1, {s8-s15}\n"             /* f1 */
    "   vldmia  r2!, {s16-s23}\n"           /* x */
    "   vmul.f32 s8, s8, s16\n"
    "   vmul.f32 s9, s9, s17\n"
    "   vmul.f32 s10, s10, s18\n"
    "   vmul.f32 s11, s11, s19\n"
    "   vmul.f32 s12, s12, s20\n"
    "   vmul.f32 s13, s13, s21\n"
    "   vmul.f32 s14, s14, s22\n"
    "   vmul.f32 s15, s15, s23\n"
    "   add     r5, r1, r4\n"
    "   vldmia  r5, {s16-s23}\n"            /* f2 */
    "   vldmia  r0, {s24-s31}\n"            /* att */
    "   vmla.f32 s8, s16, s24\n"
    "   vmla.f32 s9, s17, s25\n"
    "   vmla.f32 s10, s18, s26\n"
    "   vmla.f32 s11, s19, s27\n"
    "   vmla.f32 s12, s20, s28\n"
    "   vmla.f32 s13, s21, s29\n"
    "   vmla.f32 s14, s22, s30\n"
    "   vmla.f32 s15, s23, s31\n"
    "   add     r5, r5, r4\n"
    "   vldmia  r5, {s16-s23}\n"            /* s */
    "   add     r5, r5, r4\n"
    "   vldmia  r5, {s24-s31}\n"            /* c */
    "   vmla.f32 s8, s16, s24\n"
    "   vmla.f32 s9, s17, s25\n"
    "   vmla.f32 s10, s18, s26\n"
    "   vmla.f32 s11, s19, s27\n"
    "   vmla.f32 s12, s20, s28\n"
    "   vmla.f32 s13, s21, s29\n"
    "   vmla.f32 s14, s22, s30\n"
    "   vmla.f32 s15, s23, s31\n"
    "   vstmia  r0!, {s8-s15}\n"
    "   add     r1, r1, #32\n"
    "   subs    r3, r3, #8\n"
    "   bne     1b\n"
    "   vpop    {s16-s31}\n"
    "   pop     {r4, r5}\n"
    "   bx      lr\n"
    "   .size   bx_m4_slfn_mix8, . - bx_m4_slfn_mix8\n"
);
void bx_m4_slfn_mix8(float *att, const float *g, const float *x, int d);

void bx_slfn_mix(float *att, const float *g, const float *x, int d)
{
    if (d > 0 && d % 8 == 0)
        bx_m4_slfn_mix8(att, g, x, d);
    else
        bx_slfn_mix_portable(att, g, x, d);
}

/* Layer norm, d a multiple of 8: the reference's three passes with their operations in
 * order, eight floats per VLDM. Sum: s = s + x[i] in i order. Squared deviations:
 * s2 = s2 + (x[i] - mean)^2 by VMLA (round(t * t), then the sum), storing x - mean into
 * y on the way (x is not read again, so y may be x). Apply, from those:
 * y = beta + round(round((x - mean) * r) * gamma) by VMUL and VMLA. mean and r are
 * computed in C as in bx_layernorm_portable. */
__asm__(
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_sum8)
    "   .type   bx_m4_sum8, %function\n"
    "   .thumb_func\n"
    "bx_m4_sum8:\n"             /* r0 = x, r1 = n (multiple of 8, > 0); returns s0 = sum in order */
    "   mov     r2, #0\n"
    "   vmov    s0, r2\n"
    "1: vldmia  r0!, {s8-s15}\n"
    "   vadd.f32 s0, s0, s8\n"
    "   vadd.f32 s0, s0, s9\n"
    "   vadd.f32 s0, s0, s10\n"
    "   vadd.f32 s0, s0, s11\n"
    "   vadd.f32 s0, s0, s12\n"
    "   vadd.f32 s0, s0, s13\n"
    "   vadd.f32 s0, s0, s14\n"
    "   vadd.f32 s0, s0, s15\n"
    "   subs    r1, r1, #8\n"
    "   bne     1b\n"
    "   bx      lr\n"
    "   .size   bx_m4_sum8, . - bx_m4_sum8\n"
    BX_ASM_GLOBAL(bx_m4_sqdev8)
    "   .type   bx_m4_sqdev8, %function\n"
    "   .thumb_func\n"
    "bx_m4_sqdev8:\n"           /* r0 = x, r1 = n, r2 = xc (n,) out, s0 = mean; returns s0 = sum (x - mean)^2 in order */
    "   mov     r3, #0\n"
    "   vmov    s1, r3\n"
    "1: vldmia  r0!, {s8-s15}\n"
    "   vsub.f32 s8, s8, s0\n"
    "   vsub.f32 s9, s9, s0\n"
    "   vsub.f32 s10, s10, s0\n"
    "   vsub.f32 s11, s11, s0\n"
    "   vsub.f32 s12, s12, s0\n"
    "   vsub.f32 s13, s13, s0\n"
    "   vsub.f32 s14, s14, s0\n"
    "   vsub.f32 s15, s15, s0\n"
    "   vstmia  r2!, {s8-s15}\n"              /* x - mean, for the apply */
    "   vmla.f32 s1, s8, s8\n"
    "   vmla.f32 s1, s9, s9\n"
    "   vmla.f32 s1, s10, s10\n"
    "   vmla.f32 s1, s11, s11\n"
    "   vmla.f32 s1, s12, s12\n"
    "   vmla.f32 s1, s13, s13\n"
    "   vmla.f32 s1, s14, s14\n"
    "   vmla.f32 s1, s15, s15\n"
    "   subs    r1, r1, #8\n"
    "   bne     1b\n"
    "   vmov.f32 s0, s1\n"
    "   bx      lr\n"
    "   .size   bx_m4_sqdev8, . - bx_m4_sqdev8\n"
    BX_ASM_GLOBAL(bx_m4_ln_apply8)
    "   .type   bx_m4_ln_apply8, %function\n"
    "   .thumb_func\n"
    "bx_m4_ln_apply8:\n"        /* r0 = y, r1 = xc (x - mean), r2 = gamma, r3 = beta, [sp] = n, s1 = r */
    "   ldr     r12, [sp]\n"
    "   vpush   {s16-s31}\n"
    "1: vldmia  r1!, {s8-s15}\n"
    "   vldmia  r2!, {s16-s23}\n"
    "   vldmia  r3!, {s24-s31}\n"
    "   vmul.f32 s8, s8, s1\n"
    "   vmul.f32 s9, s9, s1\n"
    "   vmul.f32 s10, s10, s1\n"
    "   vmul.f32 s11, s11, s1\n"
    "   vmul.f32 s12, s12, s1\n"
    "   vmul.f32 s13, s13, s1\n"
    "   vmul.f32 s14, s14, s1\n"
    "   vmul.f32 s15, s15, s1\n"
    "   vmla.f32 s24, s8, s16\n"
    "   vmla.f32 s25, s9, s17\n"
    "   vmla.f32 s26, s10, s18\n"
    "   vmla.f32 s27, s11, s19\n"
    "   vmla.f32 s28, s12, s20\n"
    "   vmla.f32 s29, s13, s21\n"
    "   vmla.f32 s30, s14, s22\n"
    "   vmla.f32 s31, s15, s23\n"
    "   vstmia  r0!, {s24-s31}\n"
    "   subs    r12, r12, #8\n"
    "   bne     1b\n"
    "   vpop    {s16-s31}\n"
    "   bx      lr\n"
    "   .size   bx_m4_ln_apply8, . - bx_m4_ln_apply8\n"
);
float bx_m4_sum8(const float *x, int n);
float bx_m4_sqdev8(const float *x, int n, float *xc, float mean);
void bx_m4_ln_apply8(float *y, const float *xc, const float *gamma, const float *beta, int n, float zero, float r);

void bx_layernorm(float *y, const float *x, const float *gamma, const float *beta, int d)
{
    if (d <= 0 || d % 8) {
        bx_layernorm_portable(y, x, gamma, beta, d);
        return;
    }
    float mean = bx_m4_sum8(x, d) / (float)d;
    float s2 = bx_m4_sqdev8(x, d, y, mean);      /* y <- x - mean (x is not read again) */
    float r = 1.0f / bx_sqrtf(s2 / (float)d + BX_LN_EPS);
    bx_m4_ln_apply8(y, y, gamma, beta, d, 0.0f, r);
}

/* W (n_out, BX_WORDS(n_in)) -> y (n_out,): the loops above for whole groups of 8 rows of
 * the shapes they handle, bx_binlinear_portable for the rest. */
void bx_binlinear(float *y, const uint32_t *xb, const uint32_t *w,
                  const float *alpha, const float *bias, int n_in, int n_out)
{
    const int n8 = n_out & ~7;
    int o = 0;
    if (n8 > 0 && (n_in == 128 || n_in == 256)) {
        if (n_in == 128)
            bx_m4_dots4((int32_t *)(void *)y, xb, w, n8);
        else
            bx_m4_dots8((int32_t *)(void *)y, xb, w, n8);
        bx_m4_affine(y, alpha, bias, n8);
        o = n8;
    }
    if (o < n_out)
        bx_binlinear_portable(y + o, xb, w + (size_t)o * BX_WORDS(n_in), alpha + o, bias + o, n_in, n_out - o);
}

