/* kernels_shim.c: exports the static inline float routines of bx_math.h so the
 * tests can call them through ctypes next to the kernels of bx_kernels.c (and the
 * element-wise array kernels, whichever path the build links). */
#include "bx_kernels.h"
#include "bx_math.h"

float shim_expf(float x) { return bx_expf(x); }
float shim_logf(float x) { return bx_logf(x); }
float shim_sigmoidf(float x) { return bx_sigmoidf(x); }
void shim_sigmoid_array(float *x, int n) { bx_sigmoid_array(x, n); }
void shim_exp_shift_array(float *x, float m, int n) { bx_exp_shift_array(x, m, n); }
