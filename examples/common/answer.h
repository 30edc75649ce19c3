/* answer.h: one model's answer to one text as a line of text, for the examples.
 *
 *     qa cls=2 label=LOC exit=3 logits=3f1e0000,bf800000,...
 *     qa err=EMPTY
 *
 * The logits are printed as the hex bits of the floats, so a test can compare them with
 * PyTorch's bit for bit. */
#ifndef EXAMPLE_ANSWER_H
#define EXAMPLE_ANSWER_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Format into buf (room for n bytes, at least 64 + 9 * n_logits): model name, then rc < 0
 * (a status, named by status_name) or the class, its label, the exit and the logits. */
static inline void format_answer(char *buf, size_t n, const char *model, int rc, const char *status_name,
                                 int32_t cls, const char *label, int32_t exit_depth,
                                 const float *logits, int n_logits)
{
    if (rc < 0) {
        snprintf(buf, n, "%s err=%s\n", model, status_name);
        return;
    }
    size_t k = (size_t)snprintf(buf, n, "%s cls=%d label=%s exit=%d logits=", model, (int)cls, label,
                                (int)exit_depth);
    for (int i = 0; i < n_logits && k < n; i++) {
        uint32_t bits;
        memcpy(&bits, &logits[i], sizeof bits);
        k += (size_t)snprintf(buf + k, n - k, i ? ",%08lx" : "%08lx", (unsigned long)bits);
    }
    if (k + 1 < n) { buf[k] = '\n'; buf[k + 1] = '\0'; }
}

#endif /* EXAMPLE_ANSWER_H */
