/* platform_fuzz.h: the in-memory platform of fuzz_protocol.c (see platform_fuzz.c). */
#ifndef BX_PLATFORM_FUZZ_H
#define BX_PLATFORM_FUZZ_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

void bx_fuzz_begin(const uint8_t *data, size_t size);
int  bx_fuzz_next(const uint8_t *data, size_t size, size_t *pos);
void bx_fuzz_on_getc(void);            /* provided by the fuzz target */

extern char   *bx_fuzz_out;            /* everything written since bx_fuzz_begin */
extern size_t  bx_fuzz_out_len, bx_fuzz_out_cap;
extern jmp_buf bx_fuzz_exit_jmp;       /* bx_platform_exit longjmps here */
extern int     bx_fuzz_exit_code;

#endif
