/* examples/host: two exported classifiers in one host program (system cc).
 *
 * Reads UTF-8 lines on stdin and prints, for each, the answer of the question-type
 * model (prefix qa) and of the spam model (prefix spam), one line each (common/answer.h).
 * Build: see examples/README.md (CMake or Make). */
#include <stdio.h>
#include <string.h>

#include "classify_both.h"

int main(void)
{
    static char line[1 << 16];
    char qa_line[ANSWER_MAX], spam_line[ANSWER_MAX];
    while (fgets(line, sizeof line, stdin)) {
        size_t n = strcspn(line, "\r\n");
        answer_both((const uint8_t *)line, n, qa_line, spam_line);
        fputs(qa_line, stdout);
        fputs(spam_line, stdout);
    }
    return 0;
}
