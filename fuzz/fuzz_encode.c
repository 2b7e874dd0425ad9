/* libFuzzer harness: text encoding with the real GPT-NeoX tokenizer (FUZZ_DATA/tokenizer.json):
 * added-token splits, NFC, the GPT-2 split regex, BPE with its word cache. Valid UTF-8 must encode,
 * and decode back to its NFC form exactly (byte-level BPE loses nothing); invalid UTF-8 must be
 * refused. */
#include "datasets/tok.h"
#include "datasets/unicode.h"
#include "fuzz/fuzz.h"

static tok_tokenizer *tok;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (!tok && !(tok = tok_load(fz_data("tokenizer.json")))) { fprintf(stderr, "%s\n", mq_errmsg()); abort(); }
    const char *text = (const char *)data;
    int32_t *ids = NULL;
    size_t k = 0, len, nlen;
    int valid = utf8_check(text, n) == n;
    int rc = tok_encode(tok, text, n, &ids, &k);
    if (rc != (valid ? 0 : -1)) abort();
    if (!rc) {
        char *back = tok_decode(tok, ids, k, &len), *norm = tok_normalize(tok, text, n, &nlen);
        if (!back || len != nlen || memcmp(back, norm, len)) {
            fprintf(stderr, "round trip failed: %zu bytes in, %zu ids, %zu bytes back\n", n, k, len);
            abort();
        }
        free(back);
        free(norm);
        free(ids);
    }
    mq_clear_error();
    return 0;
}
