/* examples/bare_metal: two exported classifiers in one Cortex-M4 image (MPS2 AN386 under
 * QEMU), an application of its own rather than beexgen's protocol firmware.
 *
 * Classifies every text of texts.c with the question-type model (prefix qa) and the
 * spam model (prefix spam) and prints the answers (common/answer.h) on the debugger
 * console through semihosting (QEMU prints it on its stderr), then exits through
 * semihosting:
 *
 *     qemu-system-arm -M mps2-an386 -nographic -semihosting-config enable=on,target=native \
 *         -kernel build/bare_metal/classify.elf
 */
#include <stddef.h>
#include <stdint.h>

#include "classify_both.h"
#include "texts.h"

/* Semihosting (Arm DUI 0471): operation in r0, argument in r1, BKPT 0xAB. */
static int semihost(int op, const void *arg)
{
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

#define SYS_WRITE0       0x04
#define SYS_EXIT         0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026

static void put(const char *s) { semihost(SYS_WRITE0, s); }

int main(void)
{
    static char qa_line[ANSWER_MAX], spam_line[ANSWER_MAX];
    for (unsigned i = 0; i < n_texts; i++) {
        answer_both((const uint8_t *)texts[i], text_lens[i], qa_line, spam_line);
        put(qa_line);
        put(spam_line);
    }
    put("done\n");
    semihost(SYS_EXIT, (const void *)ADP_STOPPED_APPLICATION_EXIT);
    for (;;) {}
}
