/* Dataset readers: plain UTF-8 text, JSON-lines with a chosen field, gzip-compressed versions of
 * both (by the .gz suffix, through zlib), and raw token-id files (.bin: little-endian int32).
 * ds_tokens() is the one call the commands use to turn --data into token ids. */
#ifndef MQ_DS_H
#define MQ_DS_H
#include <stddef.h>
#include <stdint.h>
#include "datasets/tok.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *field;      /* JSON-lines field holding the text (default "text") */
    int replace_invalid;    /* 1: replace invalid UTF-8 with U+FFFD; 0: report file + byte offset */
} ds_options;

/* Whole text of a file: *.jsonl / *.ndjson are JSON-lines (one object per non-blank line, the text
 * in opt->field; records joined with "\n\n", a paragraph break), anything else is plain UTF-8
 * text; a .gz suffix on either means gzip. Invalid UTF-8 is an error giving the file and byte
 * offset, or is replaced with U+FFFD (one per maximal invalid subsequence) when replace_invalid.
 * Returns malloc'ed NUL-terminated text (caller frees) or NULL + error. */
char *ds_read_text(const char *path, const ds_options *opt, size_t *len);

/* Raw bytes of a file, inflated when the name ends in .gz (a truncated or corrupt stream is an
 * error with the compressed byte offset). Malloc'ed with a NUL after the data; caller frees. */
unsigned char *ds_read_bytes(const char *path, size_t *len);

/* A token-id file (little-endian int32, whatever its name): the size must be a multiple of 4 and
 * every id >= 0 and, when tok is given, below its vocabulary size. Caller frees *ids. */
int ds_read_ids(const char *path, const tok_tokenizer *tok, int32_t **ids, size_t *n);

/* The same two readers on a file's bytes already in memory: raw (malloc'ed, raw[raw_len] = 0) is
 * taken over and freed; path names it in messages and decides the format as a file name would
 * (.gz, .jsonl). For the fuzzers (fuzz/fuzz_data.c). */
char *ds_text_from_bytes(const char *path, unsigned char *raw, size_t raw_len, const ds_options *opt, size_t *len);
int ds_ids_from_bytes(const char *path, unsigned char *raw, size_t raw_len, const tok_tokenizer *tok, int32_t **ids, size_t *n);

/* Token ids for a data file: *.bin / *.ids are read as int32 ids; anything else is read as text
 * and encoded with tok (which must then be non-NULL). Id files are checked as in ds_read_ids.
 * Caller frees *ids. */
int ds_tokens(const char *path, const ds_options *opt, tok_tokenizer *tok, int32_t **ids, size_t *n);
/* 1 when ds_tokens reads path as token ids (*.bin, *.ids), 0 when as text. */
int ds_is_ids(const char *path);
/* ds_tokens with the tokenizer loaded from `tokenizer` (a path; needed for text only, may be NULL
 * for id files) and the JSON-lines field `field` (NULL: "text"). */
int ds_load_tokens(const char *path, const char *tokenizer, const char *field, int32_t **ids, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
