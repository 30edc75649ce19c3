// examples/cpp_host: two exported classifiers in one C++ host program (g++ or clang++).
//
//     beexgen export-c runs/trec6/artifact    --out examples/lib/sent       --prefix sent       --target host
//     beexgen export-c runs/sms_spam/artifact --out examples/lib/sent_block --prefix sent_block --target host
//     cmake -S examples/cpp_host -B build/cpp_host && cmake --build build/cpp_host
//     build/cpp_host/classify < texts.txt
//
// Two prefixes where one is the other plus `_block`: only the public API is global in an
// exported library, and no public name of one prefix is a name of the other.
// Reads UTF-8 lines on stdin; for each prints one answer line per model (common/answer.h)
// after the libraries' self-tests.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "answer.h"
#include "sent_block_classifier.h"
#include "sent_classifier.h"

int main()
{
    std::cout << "selftest " << sent_selftest() << " " << sent_block_selftest() << "\n";
    std::string line;
    char buf[96 + 9 * 64];
    while (std::getline(std::cin, line)) {
        const uint8_t *text = reinterpret_cast<const uint8_t *>(line.data());
        sent_result a;
        int rc = sent_classify(text, line.size(), &a);
        format_answer(buf, sizeof buf, "qa", rc, sent_status_name(-rc), a.cls, rc ? "" : sent_labels[a.cls],
                      a.exit_depth, a.logits, SENT_N_CLASSES);
        std::cout << buf;
        sent_block_result b;
        rc = sent_block_classify(text, line.size(), &b);
        format_answer(buf, sizeof buf, "spam", rc, sent_block_status_name(-rc), b.cls,
                      rc ? "" : sent_block_labels[b.cls], b.exit_depth, b.logits, SENT_BLOCK_N_CLASSES);
        std::cout << buf;
    }
    return 0;
}
