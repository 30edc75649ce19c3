/* texts.h: the texts the bare-metal example classifies (texts.c; a test generates its own). */
#ifndef EXAMPLE_TEXTS_H
#define EXAMPLE_TEXTS_H

extern const char *const texts[];
extern const unsigned text_lens[];
extern const unsigned n_texts;

#endif
