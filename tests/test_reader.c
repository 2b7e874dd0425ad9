/* Dataset reader tests: JSON-lines and gzip inputs (written here) give the same ids as the plain
 * text; invalid UTF-8 (file + byte offset, or U+FFFD with replace_invalid), a missing JSON-lines
 * field, truncated or corrupt gzip and malformed id files are clear errors. */
#include "tests/test.h"
#include <cjson/cJSON.h>
#include <stdint.h>
#include <zlib.h>
#include "core/err.h"
#include "datasets/ds.h"
#include "datasets/tok.h"

static char g_path[1024];
static const char *tmp(const char *name) {
    snprintf(g_path, sizeof g_path, "%s/%s", t_tmpdir(), name);
    return g_path;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
}

static void write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb9");
    gzwrite(g, p, (unsigned)n);
    gzclose(g);
}

/* A sample with paragraphs, non-ASCII, a decomposed accent and a special token in the text. */
static const char *SAMPLE =
    "The quick brown fox -- it's \xE2\x80\x9Cquoted\xE2\x80\x9D -- jumps.\n\n"
    "Caf\xC3\xA9 and cafe\xCC\x81, \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E, 12345 \xF0\x9F\x98\x80.\n\n"
    "Tabs\tand   spaces <|endoftext|> end\n";

/* The sample as JSON-lines: one record per paragraph, so the records joined by "\n\n" give the
 * sample back. */
static void write_jsonl(const char *path, const char *field, int gz) {
    char *copy = strdup(SAMPLE), *save = NULL, *out = mq_malloc(4096);
    size_t n = 0;
    const char *sep = "\n\n";
    for (char *p = copy; p; ) {
        char *q = strstr(p, sep);
        if (q) *q = 0;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)n);
        cJSON_AddStringToObject(o, field, p);
        char *line = cJSON_PrintUnformatted(o);
        n += (size_t)sprintf(out + n, "%s\n", line);
        free(line);
        cJSON_Delete(o);
        p = q ? q + 2 : NULL;
    }
    (void)save;
    if (gz) write_gz(path, out, n); else write_bytes(path, out, n);
    free(out);
    free(copy);
}

static int same_ids(const char *path, const ds_options *opt, tok_tokenizer *tok, const int32_t *ref, size_t nref) {
    int32_t *ids;
    size_t n;
    if (ds_tokens(path, opt, tok, &ids, &n)) { printf("    %s: %s\n", path, mq_errmsg()); return 0; }
    int ok = n == nref && !memcmp(ids, ref, n * sizeof *ids);
    free(ids);
    return ok;
}

static void test_formats_agree(void) {
    const char *tp = t_shared("models/tokenizer.json");
    if (!tp) T_SKIP("../shared/models/tokenizer.json not found");
    tok_tokenizer *tok = tok_load(tp);
    T_CHECK(tok != NULL, "%s", mq_errmsg());
    if (!tok) return;
    int32_t *ref;
    size_t nref;
    T_CHECK(!tok_encode(tok, SAMPLE, strlen(SAMPLE), &ref, &nref), "%s", mq_errmsg());
    ds_options opt = {"text", 0}, body = {"body", 0};
    write_bytes(tmp("s.txt"), SAMPLE, strlen(SAMPLE));
    T_CHECK(same_ids(g_path, &opt, tok, ref, nref), ".txt");
    write_gz(tmp("s.txt.gz"), SAMPLE, strlen(SAMPLE));
    T_CHECK(same_ids(g_path, &opt, tok, ref, nref), ".txt.gz");
    write_jsonl(tmp("s.jsonl"), "text", 0);
    T_CHECK(same_ids(g_path, &opt, tok, ref, nref), ".jsonl");
    write_jsonl(tmp("s.jsonl.gz"), "body", 1);
    T_CHECK(same_ids(g_path, &body, tok, ref, nref), ".jsonl.gz with --field body");
    /* ids file round trip: little-endian int32 */
    unsigned char *b = mq_malloc(nref * 4);
    for (size_t i = 0; i < nref; i++)
        for (int k = 0; k < 4; k++) b[4 * i + k] = (unsigned char)((uint32_t)ref[i] >> (8 * k));
    write_bytes(tmp("s.bin"), b, nref * 4);
    T_CHECK(same_ids(g_path, &opt, tok, ref, nref), ".bin");
    /* the text of the multi-record file is the records joined by a blank line */
    size_t len;
    char *text = ds_read_text(tmp("s.jsonl"), &opt, &len);
    T_CHECK(text && len == strlen(SAMPLE) && !strcmp(text, SAMPLE), "jsonl text differs");
    free(text);
    /* an id outside the vocabulary */
    b[0] = 0xFF; b[1] = 0xFF; b[2] = 0x00; b[3] = 0x00;   /* 65535 */
    write_bytes(tmp("big.bin"), b, 4);
    int32_t *ids;
    size_t n;
    T_CHECK(ds_tokens(g_path, &opt, tok, &ids, &n) == -1 && strstr(mq_errmsg(), "65535") && strstr(mq_errmsg(), "big.bin"),
            "out-of-vocabulary id: %s", mq_errmsg());
    free(b);
    free(ref);
    tok_free(tok);
}

static void test_bad_utf8(void) {
    const char bad[] = "hello w\xC3\x28rld \xE2\x82 x \xF0\x80 y";   /* C3 28; truncated E2 82; F0 80 */
    write_bytes(tmp("bad.txt"), bad, sizeof bad - 1);
    ds_options strict = {NULL, 0}, repl = {NULL, 1};
    size_t len;
    char *text = ds_read_text(g_path, &strict, &len);
    T_CHECK(text == NULL, "invalid UTF-8 accepted");
    T_CHECK(strstr(mq_errmsg(), "bad.txt") && strstr(mq_errmsg(), "byte offset 7"), "message: %s", mq_errmsg());
    text = ds_read_text(g_path, &repl, &len);
    /* one U+FFFD per maximal invalid subsequence: C3 | E2 82 | F0 | 80 */
    const char *want = "hello w\xEF\xBF\xBD(rld \xEF\xBF\xBD x \xEF\xBF\xBD\xEF\xBF\xBD y";
    T_CHECK(text && !strcmp(text, want) && len == strlen(want), "replaced: '%s'", text ? text : "(null)");
    free(text);
    /* the same inside a gzip'ed JSON-lines file: offset in the decompressed data */
    const char jl[] = "{\"text\": \"ok\"}\n{\"text\": \"b\xFF\"}\n";
    write_gz(tmp("bad.jsonl.gz"), jl, sizeof jl - 1);
    text = ds_read_text(g_path, &strict, &len);
    T_CHECK(text == NULL && strstr(mq_errmsg(), "bad.jsonl.gz") && strstr(mq_errmsg(), "byte offset 26"),
            "jsonl.gz message: %s", mq_errmsg());
    text = ds_read_text(g_path, &repl, &len);
    T_CHECK(text && !strcmp(text, "ok\n\nb\xEF\xBF\xBD"), "jsonl replaced: '%s'", text ? text : "(null)");
    free(text);
}

static void test_jsonl_errors(void) {
    ds_options opt = {"text", 0};
    size_t len;
    write_bytes(tmp("nofield.jsonl"), "{\"text\": \"a\"}\n\n{\"body\": \"b\"}\n", 29);
    T_CHECK(ds_read_text(g_path, &opt, &len) == NULL, "missing field accepted");
    T_CHECK(strstr(mq_errmsg(), "nofield.jsonl") && strstr(mq_errmsg(), "line 3") && strstr(mq_errmsg(), "\"text\""),
            "message: %s", mq_errmsg());
    write_bytes(tmp("notjson.jsonl"), "{\"text\": \"a\"}\n{\"text\": \n", 25);
    T_CHECK(ds_read_text(g_path, &opt, &len) == NULL && strstr(mq_errmsg(), "line 2") && strstr(mq_errmsg(), "not valid JSON"),
            "message: %s", mq_errmsg());
    write_bytes(tmp("num.jsonl"), "{\"text\": 3}\n", 12);
    T_CHECK(ds_read_text(g_path, &opt, &len) == NULL && strstr(mq_errmsg(), "not a string"), "message: %s", mq_errmsg());
}

static void test_gzip_errors(void) {
    /* compress something incompressible enough to span several deflate blocks */
    size_t n = 200000;
    unsigned char *data = mq_malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; data[i] = (unsigned char)('a' + (x >> 16) % 26); }
    write_gz(tmp("t.txt.gz"), data, n);
    size_t zn;
    char *z = mq_read_file(g_path, &zn);
    ds_options opt = {NULL, 0};
    size_t len;
    char *text = ds_read_text(g_path, &opt, &len);
    T_CHECK(text && len == n && !memcmp(text, data, n), "gzip round trip");
    free(text);
    write_bytes(tmp("trunc.txt.gz"), z, zn / 2);
    T_CHECK(ds_read_text(g_path, &opt, &len) == NULL && strstr(mq_errmsg(), "trunc.txt.gz") && strstr(mq_errmsg(), "truncated"),
            "truncated: %s", mq_errmsg());
    write_bytes(tmp("trunc8.txt.gz"), z, zn - 4);   /* only the length trailer missing */
    T_CHECK(ds_read_text(g_path, &opt, &len) == NULL && strstr(mq_errmsg(), "truncated"), "truncated trailer: %s", mq_errmsg());
    z[zn - 8] ^= 0x55;   /* CRC of the data */
    write_bytes(tmp("crc.txt.gz"), z, zn);
    T_CHECK(ds_read_text(g_path, &opt, &len) == NULL && strstr(mq_errmsg(), "corrupt"), "bad crc: %s", mq_errmsg());
    write_bytes(tmp("plain.txt.gz"), "not gzip", 8);
    T_CHECK(ds_read_text(g_path, &opt, &len) == NULL && strstr(mq_errmsg(), "not a gzip file"), "not gzip: %s", mq_errmsg());
    /* two members concatenated are one stream of their texts */
    gzFile g = gzopen(tmp("two.txt.gz"), "wb");
    gzwrite(g, "ab", 2);
    gzclose(g);
    char *one = mq_read_file(g_path, &zn);
    FILE *f = fopen(g_path, "ab");
    fwrite(one, 1, zn, f);
    fclose(f);
    text = ds_read_text(g_path, &opt, &len);
    T_CHECK(text && !strcmp(text, "abab"), "two members: '%s'", text ? text : mq_errmsg());
    free(text); free(one); free(z); free(data);
}

static void test_id_files(void) {
    int32_t *ids;
    size_t n;
    ds_options opt = {NULL, 0};
    write_bytes(tmp("odd.bin"), "\1\0\0\0\2\0", 6);
    T_CHECK(ds_tokens(g_path, &opt, NULL, &ids, &n) == -1 && strstr(mq_errmsg(), "odd.bin") && strstr(mq_errmsg(), "multiple of 4"),
            "message: %s", mq_errmsg());
    write_bytes(tmp("neg.ids"), "\1\0\0\0\xFF\xFF\xFF\xFF", 8);
    T_CHECK(ds_tokens(g_path, &opt, NULL, &ids, &n) == -1 && strstr(mq_errmsg(), "index 1") && strstr(mq_errmsg(), "negative"),
            "message: %s", mq_errmsg());
    write_bytes(tmp("ok.ids"), "\1\0\0\0\0\1\0\0", 8);
    T_CHECK(ds_tokens(g_path, &opt, NULL, &ids, &n) == 0 && n == 2 && ids[0] == 1 && ids[1] == 256, "little-endian ids");
    if (n == 2) free(ids);
    T_CHECK(ds_tokens(tmp("x.txt"), &opt, NULL, &ids, &n) == -1 && strstr(mq_errmsg(), "tokenizer"), "text without tokenizer");
}

int main(void) {
    T_RUN(test_formats_agree);
    T_RUN(test_bad_utf8);
    T_RUN(test_jsonl_errors);
    T_RUN(test_gzip_errors);
    T_RUN(test_id_files);
    return t_summary();
}
