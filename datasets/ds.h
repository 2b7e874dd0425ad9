/* Dataset readers: plain UTF-8 text, JSON-lines with a chosen field, gzip-compressed versions of
 * both (by the .gz suffix, through zlib), and raw token-id files (.bin: little-endian int32).
 * ds_tokens() is the one call the commands use to turn --data into token ids. */
#ifndef MQ_DS_H
#define MQ_DS_H
#include <stddef.h>
#include <stdint.h>
#include "datasets/tok.h"

typedef struct {
    const char *field;      /* JSON-lines field holding the text (default "text") */
    int replace_invalid;    /* 1: replace invalid UTF-8 with U+FFFD; 0: report file + byte offset */
} ds_options;

/* Whole text of a .txt/.jsonl(.gz) file; JSON-lines records are joined with "\n\n".
 * Returns malloc'ed NUL-terminated text (caller frees) or NULL + error. */
char *ds_read_text(const char *path, const ds_options *opt, size_t *len);

/* Token ids for a data file: *.bin / *.ids are read as int32 ids; anything else is read as text
 * and encoded with tok (which must then be non-NULL). Caller frees *ids. */
int ds_tokens(const char *path, const ds_options *opt, tok_tokenizer *tok, int32_t **ids, size_t *n);

#endif
