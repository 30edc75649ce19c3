// An Arduino sketch with two exported classifiers (prefixes sent and sent_exit).
//
// Install each export as a library (beexgen export-c ... --format arduino, then copy the
// directory into ~/Arduino/libraries or Sketch > Include Library > Add .ZIP Library),
// pick a Cortex-M4F board and upload. The IDE compiles this file as C++ and each
// library's src/<prefix>_classifier.c as C, with the core's flags and no per-library
// flag: the libraries' sources keep their results exact on their own.
//
// texts.h (here: the test's texts; your own app reads its input) gives texts[i],
// text_lens[i] and n_texts. answer.h formats one answer line per model.
#include "answer.h"
#include "sent_classifier.h"
#include "sent_exit_classifier.h"
#include "texts.h"

static unsigned next_text = 0;

void setup()
{
    Serial.begin(115200);
    // The self-tests first: 0 mismatches means this build on this board computes what
    // the PyTorch model computed.
    Serial.print("selftest ");
    Serial.print(sent_selftest());
    Serial.print(" ");
    Serial.println(sent_exit_selftest());
}

void loop()
{
    static char line[96 + 9 * 64];
    if (next_text == n_texts) {
        Serial.println("done");
        stop();
        return;
    }
    const uint8_t *text = (const uint8_t *)texts[next_text];
    size_t len = text_lens[next_text++];
    sent_result a;
    int rc = sent_classify(text, len, &a);
    format_answer(line, sizeof line, "qa", rc, sent_status_name(-rc), a.cls, rc ? "" : sent_labels[a.cls],
                  a.exit_depth, a.logits, SENT_N_CLASSES);
    Serial.print(line);
    sent_exit_result b;
    rc = sent_exit_classify(text, len, &b);
    format_answer(line, sizeof line, "spam", rc, sent_exit_status_name(-rc), b.cls,
                  rc ? "" : sent_exit_labels[b.cls], b.exit_depth, b.logits, SENT_EXIT_N_CLASSES);
    Serial.print(line);
}
