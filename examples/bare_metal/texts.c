#include "texts.h"

const char *const texts[] = {
    "What is the capital of France?",
    "How many people live in Tokyo?",
    "WINNER!! You have won a prize. Call now to claim it",
    "ok, see you at 5pm :-)",
};
const unsigned text_lens[] = {30, 30, 51, 22};
const unsigned n_texts = sizeof text_lens / sizeof text_lens[0];
