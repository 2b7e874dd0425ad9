/* libFuzzer harness: tokenizer.json (datasets/tok.c: model.vocab and merges, added tokens and their
 * flags, normalizer, pre-tokenizer, decoder). A tokenizer that loads must encode sample texts into
 * ids inside its vocabulary and decode them. */
#include "datasets/tok.h"
#include "fuzz/fuzz.h"

static const char *samples[] = {"Hello world", "  two  spaces\n\nand lines", "<|endoftext|> after <m> ab",
                                "caf\xC3\xA9 \xF0\x9F\x98\x80 e\xCC\x81", "it's 1234 x'll", "\xFF invalid"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    tok_tokenizer *t = tok_load_json((const char *)data, n, "fuzz tokenizer.json");
    if (!t) { mq_clear_error(); return 0; }
    int vocab = tok_vocab_size(t);
    for (size_t s = 0; s < sizeof samples / sizeof samples[0]; s++) {
        int32_t *ids = NULL;
        size_t k = 0, len;
        if (!tok_encode(t, samples[s], strlen(samples[s]), &ids, &k)) {
            for (size_t i = 0; i < k; i++)
                if (ids[i] < 0 || ids[i] >= vocab) abort();
            free(tok_decode(t, ids, k, &len));
            free(ids);
        }
        free(tok_normalize(t, samples[s], strlen(samples[s]), &len));
    }
    for (int32_t id = -1; id < vocab && id < 300; id++) {
        size_t len;
        const char *tk = tok_id_to_token(t, id, &len);
        if (tk && len < 256) {
            char buf[256];
            memcpy(buf, tk, len);
            buf[len] = 0;
            tok_token_to_id(t, buf);
        }
    }
    tok_free(t);
    mq_clear_error();
    return 0;
}
