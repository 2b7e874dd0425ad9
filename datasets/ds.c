/* Dataset readers (see ds.h): whole files in memory, gunzipped with zlib's inflate when the name
 * ends in .gz (so truncation and corruption are reported with the compressed byte offset), UTF-8
 * checked with the byte offset of the first bad byte or repaired with U+FFFD on request,
 * JSON-lines records joined with a blank line, token-id files as little-endian int32. */
#include "datasets/ds.h"
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/err.h"
#include "datasets/unicode.h"

static int ends_with(const char *s, size_t n, const char *suffix) {
    size_t k = strlen(suffix);
    return n >= k && !strncmp(s + n - k, suffix, k);
}

/* Inflated data beyond this is refused (a gzip bomb would otherwise fill the memory). */
#define DS_MAX_INFLATE ((size_t)4 << 30)

/* Inflates one or more concatenated gzip members. */
static unsigned char *gunzip(const char *path, const unsigned char *in, size_t n, size_t *out_len) {
    if (n < 2 || in[0] != 0x1F || in[1] != 0x8B) {
        mq_fail("%s: not a gzip file (no gzip magic bytes at offset 0)", path);
        return NULL;
    }
    z_stream z = {0};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) mq_die("%s: zlib inflateInit2 failed", path);
    size_t cap = n * 4 + 65536, len = 0, pos = 0;
    unsigned char *out = mq_malloc(cap + 1);
    z.avail_in = 0;
    for (;;) {
        if (z.avail_in == 0 && pos < n) {   /* avail_in is 32-bit: feed large inputs in pieces */
            size_t chunk = n - pos < (size_t)1 << 30 ? n - pos : (size_t)1 << 30;
            z.next_in = (unsigned char *)in + pos;
            z.avail_in = (uInt)chunk;
            pos += chunk;
        }
        if (len == cap) {
            if (cap >= DS_MAX_INFLATE) {
                inflateEnd(&z);
                free(out);
                mq_fail("%s: inflates to more than %zu bytes: refusing it (not a data file?)", path, DS_MAX_INFLATE);
                return NULL;
            }
            cap = cap * 2 < DS_MAX_INFLATE ? cap * 2 : DS_MAX_INFLATE;
            unsigned char *no = realloc(out, cap + 1);
            if (!no) mq_die("%s: out of memory inflating (%zu bytes)", path, cap);
            out = no;
        }
        size_t room = cap - len < (size_t)1 << 30 ? cap - len : (size_t)1 << 30;
        z.next_out = out + len;
        z.avail_out = (uInt)room;
        int ret = inflate(&z, Z_NO_FLUSH);
        len += room - z.avail_out;
        size_t consumed = pos - z.avail_in;   /* compressed bytes used so far */
        if (ret == Z_STREAM_END) {
            /* another member may follow (gzip allows concatenation); zero padding is tolerated */
            size_t rest = n - consumed, k = 0;
            while (k < rest && in[consumed + k] == 0) k++;
            if (k == rest) break;
            if (rest - k < 2 || in[consumed] != 0x1F || in[consumed + 1] != 0x8B) {
                inflateEnd(&z);
                free(out);
                mq_fail("%s: trailing garbage after the gzip stream at byte offset %zu", path, consumed);
                return NULL;
            }
            inflateReset(&z);
            continue;
        }
        if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT || ret == Z_STREAM_ERROR) {
            mq_fail("%s: corrupt gzip data near compressed byte offset %zu (%s)", path, consumed,
                    z.msg ? z.msg : "invalid stream");
            inflateEnd(&z);
            free(out);
            return NULL;
        }
        if (ret == Z_MEM_ERROR) mq_die("%s: out of memory in zlib inflate", path);
        if (z.avail_in == 0 && pos == n && z.avail_out != 0) {
            /* all input used, output room left, and still no end of stream */
            mq_fail("%s: truncated gzip stream: the compressed data ends at byte %zu before the end of "
                    "the stream (%zu bytes inflated so far)", path, n, len);
            inflateEnd(&z);
            free(out);
            return NULL;
        }
    }
    inflateEnd(&z);
    out[len] = 0;
    *out_len = len;
    return out;
}

/* raw[n] as is, or inflated when name ends in .gz (raw is taken over either way). */
static unsigned char *inflate_named(const char *name, unsigned char *raw, size_t n, size_t *len) {
    if (!ends_with(name, strlen(name), ".gz")) { *len = n; return raw; }
    unsigned char *out = gunzip(name, raw, n, len);
    free(raw);
    return out;
}

unsigned char *ds_read_bytes(const char *path, size_t *len) {
    size_t n;
    char *raw = mq_read_file(path, &n);
    return raw ? inflate_named(path, (unsigned char *)raw, n, len) : NULL;
}

/* Checks (or repairs) UTF-8 of buf[n]; `base` is the offset of buf in the file for messages. On
 * success returns buf itself or a repaired copy (buf is then freed). */
static char *check_utf8(const char *path, char *buf, size_t n, size_t base, const ds_options *opt, size_t *out_len,
                        const char *gz_note) {
    size_t bad = utf8_check(buf, n);
    *out_len = n;
    if (bad == n) return buf;
    if (!opt || !opt->replace_invalid) {
        mq_fail("%s: invalid UTF-8 at byte offset %zu%s (byte 0x%02X); use --replace-invalid to replace "
                "invalid bytes with U+FFFD", path, base + bad, gz_note, (unsigned char)buf[bad]);
        free(buf);
        return NULL;
    }
    char *fixed = utf8_replace_invalid(buf, n, out_len, NULL);
    free(buf);
    return fixed;
}

/* JSON-lines text goes through cJSON, whose strings end at the first NUL: a record whose text holds
 * \u0000 would be cut there silently. 1 when line[n] has a \u0000 escape (escape pairs skipped, so
 * an escaped backslash followed by "u0000" is text, not a NUL). */
static int has_nul_escape(const char *line, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (line[i] != '\\') continue;
        if (line[i + 1] == 'u' && i + 5 < n && !memcmp(line + i + 2, "0000", 4)) return 1;
        i++;
    }
    return 0;
}

/* Whether the string field `field` of the record line[n] holds a NUL: the record parsed again with
 * every \u0000 turned into a space gives a longer string. */
static int field_has_nul(const char *line, size_t n, const char *field, const char *parsed) {
    if (!has_nul_escape(line, n)) return 0;
    char *copy = mq_malloc(n + 1);
    memcpy(copy, line, n);
    copy[n] = 0;
    for (size_t i = 0; i + 5 < n; i++) {
        if (copy[i] != '\\') continue;
        if (copy[i + 1] == 'u' && !memcmp(copy + i + 2, "0000", 4)) memcpy(copy + i + 2, "0020", 4);
        i++;
    }
    cJSON *rec = cJSON_ParseWithLength(copy, n);
    const cJSON *v = rec ? cJSON_GetObjectItemCaseSensitive(rec, field) : NULL;
    int cut = cJSON_IsString(v) && strlen(v->valuestring) != strlen(parsed);
    cJSON_Delete(rec);
    free(copy);
    return cut;
}

typedef struct { char *p; size_t n, cap; } strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? b->cap * 2 : 1 << 16;
        char *np = realloc(b->p, b->cap);
        if (!np) mq_die("out of memory reading text (%zu bytes)", b->cap);
        b->p = np;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* JSON-lines: one object per non-blank line, the text in opt->field; records joined by "\n\n" (a
 * paragraph break, like the blank lines between paragraphs of the .txt datasets). */
static char *read_jsonl(const char *path, char *buf, size_t n, const ds_options *opt, size_t *len, const char *gz_note) {
    const char *field = opt && opt->field ? opt->field : "text";
    strbuf out = {0};
    size_t line_no = 0, records = 0;
    for (size_t pos = 0; pos < n;) {
        char *nl = memchr(buf + pos, '\n', n - pos);
        size_t end = nl ? (size_t)(nl - buf) : n, next = nl ? end + 1 : n;
        line_no++;
        size_t s = pos, e = end;
        while (s < e && (buf[s] == ' ' || buf[s] == '\t' || buf[s] == '\r')) s++;
        while (e > s && (buf[e - 1] == ' ' || buf[e - 1] == '\t' || buf[e - 1] == '\r')) e--;
        if (s == e) { pos = next; continue; }
        size_t ll;
        char *line = mq_malloc(e - s + 1);
        memcpy(line, buf + s, e - s);
        line = check_utf8(path, line, e - s, s, opt, &ll, gz_note);
        if (!line) { free(out.p); return NULL; }
        cJSON *rec = cJSON_ParseWithLength(line, ll);
        const cJSON *v = rec ? cJSON_GetObjectItemCaseSensitive(rec, field) : NULL;
        char why[300] = "";
        if (!rec) snprintf(why, sizeof why, "not valid JSON");
        else if (!cJSON_IsObject(rec)) snprintf(why, sizeof why, "not a JSON object");
        else if (!v) snprintf(why, sizeof why, "no field \"%.200s\" (choose the field with --field)", field);
        else if (!cJSON_IsString(v)) snprintf(why, sizeof why, "field \"%.200s\" is not a string", field);
        else if (field_has_nul(line, ll, field, v->valuestring))
            snprintf(why, sizeof why, "field \"%.200s\" holds \\u0000 (a NUL character), which text may not contain", field);
        if (why[0]) {
            mq_fail("%s: line %zu (byte offset %zu%s): %s", path, line_no, pos, gz_note, why);
            cJSON_Delete(rec);
            free(line);
            free(out.p);
            return NULL;
        }
        if (records++) sb_add(&out, "\n\n", 2);
        sb_add(&out, v->valuestring, strlen(v->valuestring));
        cJSON_Delete(rec);
        free(line);
        pos = next;
    }
    free(buf);
    if (!out.p) sb_add(&out, "", 0);
    *len = out.n;
    return out.p;
}

char *ds_read_text(const char *path, const ds_options *opt, size_t *len) {
    size_t n;
    char *raw = mq_read_file(path, &n);
    return raw ? ds_text_from_bytes(path, (unsigned char *)raw, n, opt, len) : NULL;
}

char *ds_text_from_bytes(const char *path, unsigned char *raw, size_t raw_len, const ds_options *opt, size_t *len) {
    size_t n;
    char *buf = (char *)inflate_named(path, raw, raw_len, &n);
    if (!buf) return NULL;
    size_t pl = strlen(path);
    int gz = ends_with(path, pl, ".gz");
    if (gz) pl -= 3;
    const char *gz_note = gz ? " of the decompressed data" : "";
    if (ends_with(path, pl, ".jsonl") || ends_with(path, pl, ".ndjson")) {
        char *text = read_jsonl(path, buf, n, opt, len, gz_note);
        if (!text) free(buf);
        return text;
    }
    return check_utf8(path, buf, n, 0, opt, len, gz_note);
}

static int is_id_file(const char *path) {
    size_t n = strlen(path);
    return ends_with(path, n, ".bin") || ends_with(path, n, ".ids");
}

int ds_read_ids(const char *path, const tok_tokenizer *tok, int32_t **ids, size_t *n) {
    size_t len;
    char *file = mq_read_file(path, &len);
    return file ? ds_ids_from_bytes(path, (unsigned char *)file, len, tok, ids, n) : -1;
}

int ds_ids_from_bytes(const char *path, unsigned char *file, size_t file_len, const tok_tokenizer *tok, int32_t **ids, size_t *n) {
    size_t len;
    unsigned char *raw = inflate_named(path, file, file_len, &len);
    if (!raw) return -1;
    if (len % 4) {
        free(raw);
        return mq_fail("%s: size %zu bytes is not a multiple of 4 (a token-id file holds little-endian int32 ids)", path, len);
    }
    size_t k = len / 4;
    int32_t *out = mq_malloc(k * sizeof *out);
    int vocab = tok ? tok_vocab_size(tok) : INT32_MAX;
    for (size_t i = 0; i < k; i++) {
        const unsigned char *b = raw + 4 * i;
        int32_t id = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24);
        if (id < 0 || id >= vocab) {
            free(raw);
            free(out);
            if (id < 0) return mq_fail("%s: token id %d at index %zu (byte offset %zu) is negative", path, id, i, 4 * i);
            return mq_fail("%s: token id %d at index %zu (byte offset %zu) is outside the tokenizer's vocabulary (size %d)",
                           path, id, i, 4 * i, vocab);
        }
        out[i] = id;
    }
    free(raw);
    *ids = out;
    *n = k;
    return 0;
}

int ds_is_ids(const char *path) { return is_id_file(path); }

int ds_tokens(const char *path, const ds_options *opt, tok_tokenizer *tok, int32_t **ids, size_t *n) {
    if (is_id_file(path)) return ds_read_ids(path, tok, ids, n);
    if (!tok) return mq_fail("%s: a text file needs a tokenizer (only .bin/.ids files hold token ids)", path);
    size_t len;
    char *text = ds_read_text(path, opt, &len);
    if (!text) return -1;
    int rc = tok_encode(tok, text, len, ids, n);
    free(text);
    if (rc) return mq_fail_ctx("%s", path);
    return 0;
}

int ds_load_tokens(const char *path, const char *tokenizer, const char *field, int32_t **ids, size_t *n) {
    tok_tokenizer *tok = NULL;
    if (!is_id_file(path)) {
        if (!tokenizer) return mq_fail("%s is text and no tokenizer.json was found (give --tokenizer FILE)", path);
        if (!(tok = tok_load(tokenizer))) return mq_fail_ctx("%s is text: loading the tokenizer", path);
    }
    ds_options opt = {.field = field ? field : "text"};
    int rc = ds_tokens(path, &opt, tok, ids, n);
    tok_free(tok);
    return rc;
}
