/* Test data shared by several test programs: the HF token-id fixtures (tests/fixtures/tok, gzip'ed
 * little-endian uint16) as int32, read through the product's own reader (ds_read_bytes), and a
 * small cut of ../shared/datasets/calib.txt for CI-sized calibration runs. */
#ifndef MQ_TEST_DATA_H
#define MQ_TEST_DATA_H
#include <stdint.h>
#include "core/err.h"
#include "datasets/ds.h"
#include "tests/test.h"

/* ids[*n] (one spare slot after them; caller frees), or NULL + mq_errmsg() when unreadable. */
__attribute__((unused)) static int32_t *t_fixture_ids(const char *path, size_t *n) {
    size_t len;
    unsigned char *raw = ds_read_bytes(path, &len);
    if (!raw) return NULL;
    size_t count = len / 2;
    int32_t *ids = mq_malloc((count + 1) * sizeof *ids);
    for (size_t i = 0; i < count; i++) ids[i] = raw[2 * i] | raw[2 * i + 1] << 8;
    free(raw);
    *n = count;
    return ids;
}

/* The first 24 KB of calib.txt (cut at a newline) as a data file: enough for 4 x 256 tokens. */
__attribute__((unused)) static const char *t_small_calib(void) {
    static char path[512];
    if (path[0]) return path;
    const char *src = t_shared("datasets/calib.txt");
    if (!src) return NULL;
    size_t n;
    char *text = mq_read_file(src, &n);
    if (!text) return NULL;
    size_t cut = n < 24000 ? n : 24000;
    while (cut > 0 && text[cut - 1] != '\n') cut--;
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/calib_small.txt", t_tmpdir());
    int rc = mq_write_file_atomic(tmp, text, cut);
    free(text);
    if (rc) return NULL;
    memcpy(path, tmp, sizeof path);
    return path;
}

#endif
