/* classify_both.h: two classifiers in one program, each exported with its own prefix:
 *
 *     beexgen export-c runs/trec6/artifact    --out examples/lib/qa   --prefix qa
 *     beexgen export-c runs/sms_spam/artifact --out examples/lib/spam --prefix spam
 *
 * answer_both() classifies one UTF-8 text with both and formats the two answer lines. */
#ifndef EXAMPLE_CLASSIFY_BOTH_H
#define EXAMPLE_CLASSIFY_BOTH_H

#include "answer.h"
#include "qa_classifier.h"
#include "spam_classifier.h"

#define ANSWER_MAX (96 + 9 * (QA_N_CLASSES > SPAM_N_CLASSES ? QA_N_CLASSES : SPAM_N_CLASSES))

static inline void answer_both(const uint8_t *text, size_t len, char *qa_line, char *spam_line)
{
    qa_result q;
    int rc = qa_classify(text, len, &q);
    format_answer(qa_line, ANSWER_MAX, "qa", rc, qa_status_name(-rc), q.cls, rc ? "" : qa_labels[q.cls],
                  q.exit_depth, q.logits, QA_N_CLASSES);
    spam_result s;
    rc = spam_classify(text, len, &s);
    format_answer(spam_line, ANSWER_MAX, "spam", rc, spam_status_name(-rc), s.cls, rc ? "" : spam_labels[s.cls],
                  s.exit_depth, s.logits, SPAM_N_CLASSES);
}

#endif /* EXAMPLE_CLASSIFY_BOTH_H */
