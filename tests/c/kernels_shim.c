/* kernels_shim.c: exports the static inline float routines of bx_math.h so the
 * tests can call them through ctypes next to the kernels of bx_kernels.c. */
#include "bx_math.h"

float shim_expf(float x) { return bx_expf(x); }
float shim_logf(float x) { return bx_logf(x); }
float shim_sigmoidf(float x) { return bx_sigmoidf(x); }
