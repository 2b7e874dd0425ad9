/* Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (GPT-2 / GPT-NeoX / Pythia
 * family): added (special) tokens matched before BPE, optional NFC normalizer, ByteLevel
 * pre-tokenizer with the GPT-2 split regex, merge-rank BPE with a cache, ByteLevel decoder.
 * Produces exactly the ids of the `tokenizers` library (parity fixtures in tests/fixtures). */
#ifndef MQ_TOK_H
#define MQ_TOK_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct tok_tokenizer tok_tokenizer;  /* opaque; tok_free releases it */

tok_tokenizer *tok_load(const char *path);   /* NULL + mq_errmsg() naming the file and field */
/* The same from the text of a tokenizer.json in memory; path names it in messages (fuzzers). */
tok_tokenizer *tok_load_json(const char *json, size_t len, const char *path);
void tok_free(tok_tokenizer *t);
int tok_vocab_size(const tok_tokenizer *t);  /* highest id + 1 (base vocab and added tokens) */

/* Encodes text[len] (UTF-8, validated) without adding special tokens. Not thread-safe (it fills
 * the tokenizer's word cache): use one tokenizer per thread. *ids is malloc'ed and owned
 * by the caller; returns 0 or -1 (invalid UTF-8: message gives the byte offset). */
int tok_encode(tok_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids);
/* Decodes ids to UTF-8 text (malloc'ed, NUL-terminated, caller frees); NULL + error on a bad id. */
char *tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n_ids, size_t *len);

/* The tokenizer's normalizer (NFC or none) applied to valid UTF-8 text: what decode(encode(x))
 * gives back (invalid UTF-8 is returned unchanged). Malloc'ed, NUL-terminated. */
char *tok_normalize(const tok_tokenizer *t, const char *text, size_t len, size_t *out_len);
/* Id of a token string (added tokens first, then the model vocab, as HF's token_to_id), or -1. */
int32_t tok_token_to_id(const tok_tokenizer *t, const char *token);
/* The token string of id as tokenizer.json spells it (not NUL-terminated), or NULL. */
const char *tok_id_to_token(const tok_tokenizer *t, int32_t id, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
