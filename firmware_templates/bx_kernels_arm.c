/* bx_kernels_arm.c: the binary linear layer on the Cortex-M4 (Armv7-M Thumb-2 + FPv4).
 *
 * Linked into Cortex-M4 builds only (codegen/project.py, KERNEL_FILES); its
 * bx_binlinear replaces the portable one of bx_kernels.c (BX_HAVE_BINLINEAR) and reads
 * the weights in the slices layout (BX_BINLINEAR_SLICES, beexgen/core/slices.py), which
 * codegen writes for these targets: groups of 32 output rows, one word per input column
 * (bit L of the word = one row's weight bit), after a head of ten bit planes of
 * F = n_in - R (R = the row's number of -1 weights) and a zero word.
 *
 * Half the inputs, 32 rows at a time. With P the inputs whose sign bit is 0 (+1) and N
 * those whose bit is 1 (-1), D = |P| - |N|, and a row's weights w_j in {0, 1}:
 *     p   = #{j : w_j != x_j} = sum_P w_j + sum_N (1 - w_j),   dot = n - 2p,
 * and with R = sum_P w_j + sum_N w_j, counting only one side S (the smaller, |S| <= n/2),
 * c = sum_S w_j, gives
 *     S = N:  dot = D - 2R + 4c,      S = P:  dot = D + 2R - 4c,
 * i.e. dot = D + 2s (R - 2c), s = -1 for N and +1 for P. R is the weights' own: the
 * planes start at F = n - R and the kernel adds 2 per counted weight bit, so each lane
 * ends at Z = F + 2c = n - (R - 2c), and
 *     dot = e + s2 * Z,   e = D + 2 s n,   s2 = -2 s           (per call, not per row).
 * 0 <= Z <= 3n/2 (c <= min(R, n/2)), so ten planes hold Z for n <= 682.
 *
 * The count (bx_m4_slice_counts). The column list holds the byte offsets of S's columns
 * in a group (the same for every group), padded to a multiple of 16 with the zero word's.
 * Sixteen columns at a time go through a Harley-Seal tree of full adders on whole
 * words: every lane of a word is a row, so one logic instruction works on 32 rows.
 * Fifteen adders (five instructions each, bx_fa) fold sixteen columns into the running
 * planes of weight 2, 4, 8, 16 (registers) and one word of weight 32, which ripples into
 * the planes 32..512 kept on the stack. Per column of 32 rows: 1.5 loads, 4.7 logic,
 * 0.8 for the ripple and the loop. Then an 8x8 bit transpose in every byte at once
 * (three rounds of four swaps: rows 4 apart under 0x0F0F0F0F, 2 apart under 0x33333333,
 * 1 apart under 0x55555555) turns the planes of weight 1..128 into eight words whose
 * byte b of word i is the low byte of Z in lane 8b + i: row q = 4i + b of the group,
 * which is why the layout puts row q in lane 8 (q % 4) + q / 4. Planes 256 and 512 stay
 * as they are (z[8], z[9]).
 *
 * The float epilogue (bx_m4_slice_affine) y[o] = (float)dot * alpha[o] + bias[o] is the
 * reference's expression: UBFX takes a row's byte, MLA makes e + s2 * Z, VMOV moves two
 * rows to the FPU, and eight at a time VCVT converts them and VMLA.F32 computes
 * bias + dot * alpha. VMLA is not fused: the Armv7-M architecture defines it as FPMul
 * then FPAdd, each rounded (VFMA is the fused one), so it is the same float as VMUL then
 * VADD; tests/test_m4_kernels.py checks this on the built code against the reference.
 * Flush-to-zero is off (FPSCR reset value), as for the reference.
 */
#include "bx_kernels.h"
#include "bx_kernels_arm.h"
#include "bx_math.h"
#include "bx_numerics.h"

__asm__(BX_ARM_ASM_MACROS);

__asm__(
    /* pair a, b: the next two columns of the list (offsets) -> their words (a < b) */
    "   .macro bx_pair a, b\n"
    "   ldm     r2!, {\\a, \\b}\n"
    "   ldr     \\a, [r1, \\a]\n"
    "   ldr     \\b, [r1, \\b]\n"
    "   .endm\n"
    /* swap a, b, d, mask: one step of the 8x8 bit transposes, in every byte at once:
     * t = ((a >> d) ^ b) & mask; b ^= t; a ^= t << d */
    "   .macro bx_swap a, b, d, mask\n"
    "   eor     r12, \\b, \\a, lsr #\\d\n"
    "   and     r12, r12, #\\mask\n"
    "   eor     \\b, \\b, r12\n"
    "   eor     \\a, \\a, r12, lsl #\\d\n"
    "   .endm\n"
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_slice_counts)
    "   .type   bx_m4_slice_counts, %function\n"
    "   .thumb_func\n"
    "bx_m4_slice_counts:\n"         /* r0 = z (10,), r1 = group, r2 = list, r3 = blocks of 16 */
    "   push    {r4-r11, lr}\n"
    "   sub     sp, sp, #24\n"      /* [sp] planes 32, 64, 128, 256, 512; [sp, #20] z */
    "   str     r0, [sp, #20]\n"
    "   add     r3, r2, r3, lsl #6\n"   /* end of the list */
    "   add     r12, r1, #4\n"
    "   ldm     r12, {r4-r7}\n"     /* planes 2, 4, 8, 16 = F's */
    "   add     r12, r1, #20\n"
    "   ldm     r12, {r8-r11, lr}\n"
    "   stm     sp, {r8-r11, lr}\n" /* planes 32..512 = F's */
    "   cmp     r2, r3\n"
    "   beq     2f\n"
    /* sixteen columns: (a, b, c) -> bx_fa a, b, c leaves the sum in c, the carry in a */
    "1: bx_pair r8, r9\n"
    "   bx_fa   r8, r9, r4\n"       /* r8 = twos A */
    "   bx_pair r9, r10\n"
    "   bx_fa   r9, r10, r4\n"      /* r9 = twos B */
    "   bx_fa   r8, r9, r5\n"       /* r8 = fours A */
    "   bx_pair r9, r10\n"
    "   bx_fa   r9, r10, r4\n"
    "   bx_pair r10, r11\n"
    "   bx_fa   r10, r11, r4\n"
    "   bx_fa   r9, r10, r5\n"      /* r9 = fours B */
    "   bx_fa   r8, r9, r6\n"       /* r8 = eights A */
    "   bx_pair r9, r10\n"
    "   bx_fa   r9, r10, r4\n"
    "   bx_pair r10, r11\n"
    "   bx_fa   r10, r11, r4\n"
    "   bx_fa   r9, r10, r5\n"      /* r9 = fours A */
    "   bx_pair r10, r11\n"
    "   bx_fa   r10, r11, r4\n"
    "   bx_pair r11, lr\n"
    "   bx_fa   r11, lr, r4\n"
    "   bx_fa   r10, r11, r5\n"     /* r10 = fours B */
    "   bx_fa   r9, r10, r6\n"      /* r9 = eights B */
    "   bx_fa   r8, r9, r7\n"       /* r8 = the carry of weight 32 */
    "   ldm     sp, {r0, r9-r11, lr}\n"
    "   and     r12, r0, r8\n"
    "   eor     r0, r0, r8\n"
    "   and     r8, r9, r12\n"
    "   eor     r9, r9, r12\n"
    "   and     r12, r10, r8\n"
    "   eor     r10, r10, r8\n"
    "   and     r8, r11, r12\n"
    "   eor     r11, r11, r12\n"
    "   eor     lr, lr, r8\n"       /* Z < 1024: nothing carries out of 512 */
    "   stm     sp, {r0, r9-r11, lr}\n"
    "   cmp     r2, r3\n"
    "   bne     1b\n"
    /* planes 1 (F's, untouched: counted columns add 2) .. 128 in r3-r10, transposed */
    "2: ldr     r3, [r1]\n"
    "   ldm     sp, {r8-r11, lr}\n"
    "   bx_swap r3, r7, 4, 0x0F0F0F0F\n"
    "   bx_swap r4, r8, 4, 0x0F0F0F0F\n"
    "   bx_swap r5, r9, 4, 0x0F0F0F0F\n"
    "   bx_swap r6, r10, 4, 0x0F0F0F0F\n"
    "   bx_swap r3, r5, 2, 0x33333333\n"
    "   bx_swap r4, r6, 2, 0x33333333\n"
    "   bx_swap r7, r9, 2, 0x33333333\n"
    "   bx_swap r8, r10, 2, 0x33333333\n"
    "   bx_swap r3, r4, 1, 0x55555555\n"
    "   bx_swap r5, r6, 1, 0x55555555\n"
    "   bx_swap r7, r8, 1, 0x55555555\n"
    "   bx_swap r9, r10, 1, 0x55555555\n"
    "   ldr     r0, [sp, #20]\n"
    "   stm     r0, {r3-r11, lr}\n" /* z[0..7] the bytes, z[8], z[9] planes 256, 512 */
    "   add     sp, sp, #24\n"
    "   pop     {r4-r11, pc}\n"
    "   .size   bx_m4_slice_counts, . - bx_m4_slice_counts\n"
    /* The set bits of one word into the column list, lowest first: RBIT once, then per
     * bit CLZ finds the next one, one LSLS by its distance + 1 drops it (a shift by 32
     * gives 0) and sets Z when none is left. r2 runs one column behind (base - 4). */
    "   .text\n"
    BX_ASM_GLOBAL(bx_m4_slice_bits)
    "   .type   bx_m4_slice_bits, %function\n"
    "   .thumb_func\n"
    "bx_m4_slice_bits:\n"           /* r0 = list, r1 = v, r2 = offset of bit 0 - 4; returns the list's end */
    "   rbit    r1, r1\n"
    "   cbz     r1, 2f\n"
    "1: clz     r3, r1\n"
    "   add     r3, r3, #1\n"
    "   add     r2, r2, r3, lsl #2\n"
    "   str     r2, [r0], #4\n"
    "   lsls    r1, r1, r3\n"
    "   bne     1b\n"
    "2: bx      lr\n"
    "   .size   bx_m4_slice_bits, . - bx_m4_slice_bits\n"
);

#if !defined(BX_USE_DSP)
__asm__(
    /* zword w, sa, sb, sc, sd: the four rows of a transposed word w (byte b = row b),
     * dot = e + s2 * Z (r4 = e, r5 = s2), to sa..sd; with ext, r9 = the rows' bits of
     * weight 256 and 512 (bx_zext). r11, r12, lr scratch. */
    "   .macro bx_zrow d, w, b, ext\n"
    "   ubfx    \\d, \\w, #(8 * \\b), #8\n"
    "   .if \\ext\n"
    "   ubfx    r11, r9, #(8 * \\b), #2\n"
    "   add     \\d, \\d, r11, lsl #8\n"
    "   .endif\n"
    "   mla     \\d, \\d, r5, r4\n"
    "   .endm\n"
    "   .macro bx_zword w, sa, sb, sc, sd, ext\n"
    "   bx_zrow r12, \\w, 0, \\ext\n"
    "   bx_zrow lr, \\w, 1, \\ext\n"
    "   vmov    \\sa, \\sb, r12, lr\n"
    "   bx_zrow r12, \\w, 2, \\ext\n"
    "   bx_zrow lr, \\w, 3, \\ext\n"
    "   vmov    \\sc, \\sd, r12, lr\n"
    "   .endm\n"
    BX_ARM_SLICE_AFFINE
);
#endif


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
 * EOR, the SWAR nibble count (bx_cnt4), nibbles to bytes and the byte sum by one MUL
 * (bytes <= 8, so (T * 0x01010101) >> 24 = p), the running minimum by an IT'd MOV (from 33, above every
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

/* The column list of one call (bx_m4_slice_counts): the byte offsets, within a group, of
 * the columns of S, the smaller of the two sign sets of xb (N = the set bits, when
 * |N| <= n_in / 2, else P), followed by sixteen offsets of the zero word (so the last
 * block of 16 is whole); returns the blocks of 16 and sets e, s2 (dot = e + s2 * Z, see
 * the top of this file). list has room for n_in / 2 + 16 entries. */
static int slice_list(int32_t *list, const uint32_t *xb, int n_in, int32_t *e, int32_t *s2)
{
    const int words = BX_WORDS(n_in);
    int32_t n1 = 0;
    for (int i = 0; i < words; i++) n1 += bx_popcount_ref(xb[i]);
    const int count_n = 2 * n1 <= n_in;
    const uint32_t flip = count_n ? 0u : ~0u;
    const int32_t d = n_in - 2 * n1;
    *e = count_n ? d - 2 * n_in : d + 2 * n_in;
    *s2 = count_n ? 2 : -2;
    int32_t *end = list;
    for (int i = 0; i < words; i++) {
        uint32_t v = xb[i] ^ flip;
        if (i == words - 1 && n_in % 32) v &= (1u << (n_in % 32)) - 1u;   /* padding bits: not inputs */
        end = bx_m4_slice_bits(end, v, 4 * (BX_SLICE_HEAD + 32 * i) - 4);
    }
    /* sixteen pads whatever the count (a cost that does not depend on the input: the
     * per-call cost only grows with |S|, codegen/latency.py's bound takes |S| = n_in / 2) */
    for (int k = 0; k < 16; k++) end[k] = 4 * BX_SLICE_ZERO;
    return ((int)(end - list) + 15) / 16;
}

/* W in the slices layout (beexgen/core/slices.py) -> y (n_out,): per group of 32 rows the
 * count and its transpose, then the float epilogue (eight rows at a time in assembly, the
 * last n_out % 8 rows here). n_in > BX_M4_SLICE_MAX_IN (Z needs more than ten planes, and
 * the list is on the stack) goes to the portable reference. */
void bx_binlinear(float *y, const uint32_t *xb, const uint32_t *w,
                  const float *alpha, const float *bias, int n_in, int n_out)
{
    if (n_in <= 0 || n_in > BX_M4_SLICE_MAX_IN) {
        bx_binlinear_slices_ref(y, xb, w, alpha, bias, n_in, n_out);
        return;
    }
    int32_t list[BX_M4_SLICE_MAX_IN / 2 + 16];
    int32_t e, s2;
    const int blocks = slice_list(list, xb, n_in, &e, &s2);
    const size_t stride = (size_t)BX_SLICE_HEAD + (size_t)n_in;
    for (int o = 0; o < n_out; o += BX_SLICE_ROWS, w += stride) {
        uint32_t z[BX_SLICE_PLANES];
        const int rows = n_out - o < BX_SLICE_ROWS ? n_out - o : BX_SLICE_ROWS;
        const int rows8 = rows & ~7;
        bx_m4_slice_counts(z, w, list, blocks);
        if (rows8 > 0)
            bx_m4_slice_affine(y + o, z, alpha + o, bias + o, rows8, e, s2);
        for (int q = rows8; q < rows; q++) {
            const int lane = BX_SLICE_LANE(q);
            const int32_t zq = (int32_t)((z[q / 4] >> (8 * (q % 4))) & 0xFFu)
                             + (int32_t)(((z[8] >> lane) & 1u) << 8) + (int32_t)(((z[9] >> lane) & 1u) << 9);
            y[o + q] = (float)(e + s2 * zq) * alpha[o + q] + bias[o + q];
        }
    }
}

