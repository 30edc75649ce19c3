/* bx_internal.h: included (through the library's private headers) by every source of the
 * library, before any code. Three jobs, none of which may depend on the user's flags:
 *
 * 1. Exactness. C == PyTorch bit for bit needs every float operation rounded as
 *    written (codegen/cflags.py EXACT). The generated build files pass
 *    -ffp-contract=off, but an Arduino, PlatformIO or IDE build compiles the sources
 *    with its own flags, and GCC's default in GNU C is -ffp-contract=fast (a * b + c
 *    becomes one fused VFMA on the Cortex-M4F, rounded once, and the logits drift). So
 *    the sources forbid contraction themselves, in each compiler's own words, and
 *    refuse -ffast-math (reassociation, reciprocals, no NaN/Inf: no exactness left).
 *    no-math-errno makes __builtin_sqrtf one VSQRT/SQRTSS with no libm fallback call.
 *    This header is private: the pragmas never reach the application's code.
 *
 * 2. Linkage. Only the public API (bx_classifier.h) is a global symbol of an exported
 *    library. The export compiles the library as one translation unit (the generated
 *    bx_classifier.c #includes every source with BX_UNITY defined), where
 *    BX_INTERNAL is `static`: every internal function and table is declared with
 *    BX_INTERNAL in a private header (so its first declaration has internal linkage, and
 *    its definition inherits it), and every internal table is defined with
 *    BX_INTERNAL_DATA. beexgen's own builds (firmware, host emulator, tests) compile the
 *    files one by one, where BX_INTERNAL is `extern` and BX_INTERNAL_DATA empty.
 *
 * 3. Assembly. A kernel written in top-level asm names its symbol with
 *    BX_ASM_GLOBAL(name): `.global name` file by file, nothing in the one-unit build
 *    (the label stays local to the object, and the unit's C calls bind to it). */
#ifndef BX_INTERNAL_H
#define BX_INTERNAL_H

#if defined(__FAST_MATH__)
#error "beexgen: this library must not be compiled with -ffast-math (or -Ofast): it reorders and fuses float operations, and the results would no longer equal the PyTorch model bit for bit. Compile these sources without it (see the export's README, 'Exactness')."
#endif

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off", "no-math-errno")
#else
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(BX_UNITY)
#if defined(__GNUC__)
#define BX_INTERNAL static __attribute__((unused))
#else
#define BX_INTERNAL static
#endif
#define BX_INTERNAL_DATA BX_INTERNAL
#define BX_ASM_GLOBAL(name) ""
#else
#define BX_INTERNAL extern
#define BX_INTERNAL_DATA
#define BX_ASM_GLOBAL(name) "   .global " #name "\n"
#endif

#endif /* BX_INTERNAL_H */
