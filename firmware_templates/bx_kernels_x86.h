/* bx_kernels_x86.h: which engine-facing kernels bx_kernels_x86.c defines (bx_kernels.h,
 * "Kernel selection"), by the instruction sets the build enables (codegen/cflags.py
 * HOST_ISA_LEVELS: -mpopcnt, -mavx2, -mavx512*). bx_kernels.c defines the others from
 * their portable paths; built with none of them, this file selects nothing. */
#ifndef BX_KERNELS_X86_H
#define BX_KERNELS_X86_H

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512VPOPCNTDQ__)
#define BX_X86_AVX512 1
#endif
#if defined(__AVX2__)
#define BX_X86_AVX2 1
#endif

#if defined(__POPCNT__)
#define BX_HAVE_POPCOUNT        1
#define BX_HAVE_ATTEND_SCORES   1
#endif
#if defined(BX_X86_AVX2)
#define BX_HAVE_PACK_SIGNS      1
#define BX_HAVE_SIGMOID_ARRAY   1
#define BX_HAVE_EXP_SHIFT_ARRAY 1
#define BX_HAVE_LAYERNORM_ROWS  1
#define BX_HAVE_ATTEND_WEIGH    1
#endif
#if defined(__POPCNT__) || defined(BX_X86_AVX2)
#define BX_HAVE_BINLINEAR       1
#endif

#endif /* BX_KERNELS_X86_H */
