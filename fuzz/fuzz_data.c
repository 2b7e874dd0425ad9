/* libFuzzer harness: the data readers (datasets/ds.c) on a file's bytes. The first input byte picks
 * the format (.txt, .jsonl, either gzip'ed, or .bin / .bin.gz token ids), the second whether invalid
 * UTF-8 is replaced; the rest is the file: UTF-8 checks and repair, JSON-lines records (\u0000),
 * gzip members, truncation and trailing garbage, id files. */
#include "datasets/ds.h"
#include "fuzz/fuzz.h"

static const char *names[] = {"fuzz.txt", "fuzz.jsonl", "fuzz.txt.gz", "fuzz.jsonl.gz", "fuzz.bin", "fuzz.bin.gz"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
    if (n < 2) return 0;
    const char *name = names[data[0] % 6];
    ds_options opt = {"text", data[1] & 1};
    unsigned char *raw = malloc(n - 2 + 1);
    memcpy(raw, data + 2, n - 2);
    raw[n - 2] = 0;
    if (data[0] % 6 >= 4) {
        int32_t *ids;
        size_t k;
        if (!ds_ids_from_bytes(name, raw, n - 2, NULL, &ids, &k)) {
            for (size_t i = 0; i < k; i++)
                if (ids[i] < 0) abort();
            free(ids);
        }
    } else {
        size_t len;
        char *text = ds_text_from_bytes(name, raw, n - 2, &opt, &len);
        if (text && text[len] != 0) abort();   /* NUL-terminated, as promised */
        free(text);
    }
    mq_clear_error();
    return 0;
}
