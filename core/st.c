/* safetensors reader and writer (see st.h).
 * Reader: every shard is read whole into memory the st_file owns (pread of the size the file had
 * when opened), then its header is checked completely (length, JSON, dtypes, shapes, offsets inside
 * the data section, no overlaps) before any st_tensor is exposed. Not mmap: a mapped file that
 * another process truncates faults (SIGBUS) on the next access to a lost page, anywhere in the
 * program; a read of owned memory cannot, and a file that shrinks during the read is an error.
 * Float tensors enter FP32 only through st_to_f32, which refuses NaN and Inf by name and index.
 * Writer: streams header and data into an unnamed temporary file and links it into place. */
#include "st.h"
#include "err.h"
#include "fio.h"
#include "pt.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; this code reads it in place");

/* The reference implementation refuses headers above 100 MB; so do we, before allocating. */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* JSON numbers are doubles: integers above 2^53 cannot be represented exactly. */
#define ST_MAX_JSON_INT ((int64_t)1 << 53)

typedef struct {
    char *path;
    unsigned char *buf;   /* the whole file, owned */
    size_t size;
} st_shard;

struct st_file {
    char *path;        /* what st_open resolved: the .safetensors file or the index */
    st_shard *shards;
    int nshards;
    st_tensor *t;
    int n, cap;
    int *by_name;      /* indices into t sorted by name, for st_find */
    char **meta;       /* key, value, key, value... of the first file's __metadata__ */
    int nmeta;
};

/* ---- half-precision conversions ---- */

static uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | (man << 13)); /* inf, nan keeps payload */
    if (exp) return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
    /* zero or subnormal: man * 2^-24 is exact in binary32 */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
}

uint16_t st_f32_to_f16(float f) {
    uint32_t x = f32_bits(f), sign = (x >> 16) & 0x8000, a = x & 0x7fffffff;
    if (a > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff)); /* quiet nan */
    if (a >= 0x47800000) return (uint16_t)(sign | 0x7c00);                     /* >= 2^16: inf */
    uint32_t e = a >> 23;
    if (e < 113) {
        /* result is subnormal: round(f * 2^24) with round-half-even; a carry to 0x400 is exactly
         * the smallest normal, so the encoding stays right */
        if (e < 102) return (uint16_t)sign; /* at most 2^-25: rounds to zero */
        uint32_t m = (a & 0x7fffff) | 0x800000, shift = 126 - e;
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    uint32_t h = ((e - 112) << 10) | ((a >> 13) & 0x3ff), rem = a & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* a carry may reach inf: correct */
    return (uint16_t)(sign | h);
}

float st_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t st_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40); /* keep it a nan */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

static int is_float(mq_dtype d) { return d == MQ_F32 || d == MQ_F16 || d == MQ_BF16; }

/* Element i of t, and whether it is NaN or Inf, from its bit pattern. */
static int nonfinite_at(const st_tensor *t, int64_t i, float *v) {
    const unsigned char *p = t->data;
    uint32_t u;
    uint16_t h;
    switch (t->dtype) {
    case MQ_F32: memcpy(&u, p + 4 * i, 4); *v = bits_f32(u); return (u & 0x7f800000) == 0x7f800000;
    case MQ_F16: memcpy(&h, p + 2 * i, 2); *v = st_f16_to_f32(h); return (h & 0x7c00) == 0x7c00;
    case MQ_BF16: memcpy(&h, p + 2 * i, 2); *v = st_bf16_to_f32(h); return (h & 0x7f80) == 0x7f80;
    default: return 0;
    }
}

/* "[r, c]" of the flat index i in t's shape. */
static void index_str(char *buf, size_t n, const st_tensor *t, int64_t i) {
    int64_t idx[MQ_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] ? i % t->shape[d] : 0;
        i = t->shape[d] ? i / t->shape[d] : 0;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->ndim && k < n; d++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int64_t st_count_nonfinite(const st_tensor *t, int64_t *first, float *value) {
    int64_t count = 0;
    if (!is_float(t->dtype)) return 0;
    for (int64_t i = 0; i < t->numel; i++) {
        float v;
        if (nonfinite_at(t, i, &v) && count++ == 0) {
            if (first) *first = i;
            if (value) *value = v;
        }
    }
    return count;
}

int st_check_finite(const st_tensor *t) {
    int64_t first = 0;
    float v = 0;
    int64_t n = st_count_nonfinite(t, &first, &v);
    if (!n) return 0;
    char at[160];
    index_str(at, sizeof at, t, first);
    return mq_fail("%s: tensor '%s': %lld non-finite value%s (NaN or Inf), the first at %s = %g", t->file, t->name, (long long)n,
                   n > 1 ? "s" : "", at, (double)v);
}

int st_to_f32(const st_tensor *t, float *dst) {
    /* data may be unaligned (header lengths need not be multiples of 8): load with memcpy */
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case MQ_F32:
        memcpy(dst, p, (size_t)t->numel * 4);
        break;
    case MQ_F16:
        for (int64_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = st_f16_to_f32(h); }
        break;
    case MQ_BF16:
        for (int64_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = st_bf16_to_f32(h); }
        break;
    default:
        return mq_fail("%s: tensor '%s': dtype %s is not a float type (expected F32, F16 or BF16)",
                       t->file, t->name, mq_dtype_name(t->dtype));
    }
    /* one pass over the result; the message (index, count) only when something is wrong */
    int bad = 0;
    for (int64_t i = 0; i < t->numel; i++) bad |= !isfinite(dst[i]);
    return bad ? st_check_finite(t) : 0;
}

/* ---- reader ---- */

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

/* A JSON number that is an integer in [0, 2^53]. */
static int json_index(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= (double)ST_MAX_JSON_INT) || d != floor(d)) return -1;
    *out = (int64_t)d;
    return 0;
}

static st_tensor *push_tensor(st_file *f) {
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 64;
        st_tensor *nt = realloc(f->t, (size_t)f->cap * sizeof *nt);
        if (!nt) mq_die("out of memory growing the tensor table");
        f->t = nt;
    }
    st_tensor *t = &f->t[f->n++];
    memset(t, 0, sizeof *t);
    return t;
}

static int parse_metadata(st_file *f, const char *path, const cJSON *m, int keep) {
    if (!cJSON_IsObject(m)) return mq_fail("%s: __metadata__ must be an object of strings", path);
    for (const cJSON *kv = m->child; kv; kv = kv->next)
        if (!cJSON_IsString(kv)) return mq_fail("%s: __metadata__ value of '%s' is not a string", path, kv->string);
    if (!keep || f->meta) return 0;
    for (const cJSON *kv = m->child; kv; kv = kv->next) f->nmeta++;
    f->meta = mq_malloc(2 * (size_t)f->nmeta * sizeof *f->meta);
    int i = 0;
    for (const cJSON *kv = m->child; kv; kv = kv->next) {
        f->meta[i++] = strdup(kv->string);
        f->meta[i++] = strdup(kv->valuestring);
    }
    return 0;
}

/* Fill t from one header entry; begin/end are the data_offsets. */
static int parse_entry(const char *path, const cJSON *e, st_tensor *t, int64_t *begin, int64_t *end) {
    const char *name = e->string;
    if (!cJSON_IsObject(e)) return mq_fail("%s: tensor '%s': header entry is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return mq_fail("%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    if (mq_dtype_from_name(dt->valuestring, &t->dtype))
        return mq_fail("%s: tensor '%s': unsupported dtype '%s' (supported: F32 F16 BF16 I8 I32 I64 U8)", path, name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return mq_fail("%s: tensor '%s': missing or non-array \"shape\"", path, name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > MQ_MAX_DIMS) return mq_fail("%s: tensor '%s': %d dimensions, at most %d supported", path, name, ndim, MQ_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1;
    int i = 0;
    for (const cJSON *d = sh->child; d; d = d->next, i++) {
        if (json_index(d, &t->shape[i]))
            return mq_fail("%s: tensor '%s': shape[%d] is not a non-negative integer", path, name, i);
        if (__builtin_mul_overflow(t->numel, t->shape[i], &t->numel) || t->numel > ST_MAX_JSON_INT)
            return mq_fail("%s: tensor '%s': shape has too many elements (overflow)", path, name);
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || json_index(off->child, begin) || json_index(off->child->next, end))
        return mq_fail("%s: tensor '%s': \"data_offsets\" must be [begin, end] of non-negative integers", path, name);
    if (*end < *begin)
        return mq_fail("%s: tensor '%s': data_offsets [%lld, %lld] end before begin", path, name, (long long)*begin, (long long)*end);
    int64_t nbytes;
    if (__builtin_mul_overflow(t->numel, (int64_t)mq_dtype_size(t->dtype), &nbytes))
        return mq_fail("%s: tensor '%s': byte size overflows", path, name);
    if (*end - *begin != nbytes) {
        char s[256];
        shape_str(s, sizeof s, t->ndim, t->shape);
        return mq_fail("%s: tensor '%s': size mismatch: shape %s of %s needs %lld bytes, data_offsets [%lld, %lld] hold %lld",
                       path, name, s, dt->valuestring, (long long)nbytes, (long long)*begin, (long long)*end,
                       (long long)(*end - *begin));
    }
    t->nbytes = (size_t)nbytes;
    return 0;
}

static int ends_with(const char *s, const char *suffix);

typedef struct { int64_t begin, end; int idx; } span;
static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* A torch.save checkpoint: its tensors point into the zip entries of the read file (see pt.h). */
static int add_pt_tensors(st_file *f, const st_shard *s) {
    pt_tensor *pt;
    int n;
    if (pt_parse(s->buf, s->size, s->path, &pt, &n)) return -1;
    for (int i = 0; i < n; i++) {
        st_tensor *t = push_tensor(f);
        t->name = pt[i].name;
        pt[i].name = NULL; /* now owned by f */
        t->dtype = pt[i].dtype;
        t->ndim = pt[i].ndim;
        memcpy(t->shape, pt[i].shape, sizeof t->shape);
        t->numel = pt[i].numel;
        t->data = s->buf + pt[i].offset;
        t->nbytes = pt[i].nbytes;
        t->file = s->path;
    }
    pt_free(pt, n);
    return 0;
}

/* A new shard of f named path (its buffer still to be filled). */
static st_shard *new_shard(st_file *f, const char *path) {
    st_shard *ns = realloc(f->shards, (size_t)(f->nshards + 1) * sizeof *f->shards);
    if (!ns) mq_die("out of memory");
    f->shards = ns;
    st_shard *s = &f->shards[f->nshards++];
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    if (!s->path) mq_die("out of memory");
    return s;
}

static int parse_shard(st_file *f, st_shard *s, int keep_meta);

/* Read one safetensors file (or a .bin: add_pt_tensors) whole and append its tensors to f.
 * keep_meta: record its __metadata__. */
static int open_shard(st_file *f, const char *path, int keep_meta) {
    st_shard *s = new_shard(f, path);
    int fd = fio_open_regular(path, &s->size);
    if (fd < 0) return -1;
    if (s->size >= 8 && !ends_with(path, ".bin")) {
        /* the header length first: a file that is not safetensors is refused before its bulk is read */
        uint64_t hlen;
        if (fio_pread_all(fd, &hlen, 8, 0, path)) { close(fd); return -1; }
        if (hlen > s->size - 8) {
            close(fd);
            return mq_fail("%s: header length %llu beyond the file size (%zu bytes): truncated or not a safetensors file",
                           path, (unsigned long long)hlen, s->size);
        }
    }
    s->buf = mq_malloc(s->size);
    int rc = fio_pread_all(fd, s->buf, s->size, 0, path);
    close(fd);
    return rc ? -1 : parse_shard(f, s, keep_meta);
}

static int parse_shard(st_file *f, st_shard *s, int keep_meta) {
    const char *path = s->path;
    if (s->size < 8)
        return mq_fail("%s: truncated: %zu bytes, too short for %s", path, s->size,
                       ends_with(path, ".bin") ? "a zip archive" : "the 8-byte header length");
    if (ends_with(path, ".bin")) return add_pt_tensors(f, s);
    const unsigned char *base = s->buf;
    uint64_t hlen;
    memcpy(&hlen, base, 8);
    if (hlen > s->size - 8)
        return mq_fail("%s: header length %llu beyond the file size (%zu bytes): truncated or not a safetensors file",
                       path, (unsigned long long)hlen, s->size);
    if (hlen > ST_MAX_HEADER) return mq_fail("%s: header length %llu exceeds the 100 MB limit", path, (unsigned long long)hlen);
    if (hlen < 2) return mq_fail("%s: bad JSON header: %llu bytes", path, (unsigned long long)hlen);
    size_t data_len = s->size - 8 - (size_t)hlen;
    const unsigned char *data = base + 8 + hlen;

    /* a NUL-terminated private copy: cJSON then never reads past the header */
    char *htxt = mq_malloc((size_t)hlen + 1);
    memcpy(htxt, base + 8, (size_t)hlen);
    htxt[hlen] = 0;
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(htxt, (size_t)hlen, &endp, 0);
    int bad_tail = 0;
    if (root && endp)
        for (const char *p = endp; p < htxt + hlen; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') { bad_tail = 1; break; }
    if (!root || bad_tail || !cJSON_IsObject(root)) {
        long at = endp ? (long)(endp - htxt) : -1;
        cJSON_Delete(root);
        free(htxt);
        return mq_fail("%s: bad JSON header (%s near byte %ld of %llu)", path,
                       !root ? "parse error" : bad_tail ? "trailing data" : "not an object", at, (unsigned long long)hlen);
    }

    int rc = 0;
    int nent = cJSON_GetArraySize(root);
    span *spans = mq_malloc((size_t)(nent ? nent : 1) * sizeof *spans);
    int nspan = 0;
    for (const cJSON *e = root->child; e && !rc; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            rc = parse_metadata(f, path, e, keep_meta);
            continue;
        }
        st_tensor *t = push_tensor(f);
        t->name = strdup(e->string);
        t->file = s->path;
        int64_t b = 0, en = 0;
        rc = parse_entry(path, e, t, &b, &en);
        if (!rc && (uint64_t)en > data_len)
            rc = mq_fail("%s: tensor '%s': data_offsets [%lld, %lld] outside the data section (%zu bytes)",
                         path, t->name, (long long)b, (long long)en, data_len);
        if (!rc) {
            t->data = data + b;
            spans[nspan++] = (span){b, en, f->n - 1};
        }
    }
    /* no two tensors may share bytes: sorted by begin, each must start at or after the previous end */
    if (!rc) {
        qsort(spans, (size_t)nspan, sizeof *spans, span_cmp);
        int64_t prev_end = 0;
        int prev = -1;
        for (int i = 0; i < nspan && !rc; i++) {
            if (spans[i].begin == spans[i].end) continue;
            if (prev >= 0 && spans[i].begin < prev_end)
                rc = mq_fail("%s: tensors '%s' and '%s' overlap: data_offsets [%lld, %lld] and [%lld, %lld]", path,
                             f->t[spans[prev].idx].name, f->t[spans[i].idx].name, (long long)spans[prev].begin,
                             (long long)prev_end, (long long)spans[i].begin, (long long)spans[i].end);
            prev = i;
            prev_end = spans[i].end;
        }
    }
    free(spans);
    cJSON_Delete(root);
    free(htxt);
    return rc;
}

static int by_name_cmp(const void *a, const void *b, void *file) {
    const st_file *f = file;
    return strcmp(f->t[*(const int *)a].name, f->t[*(const int *)b].name);
}

/* Sort the name index and reject duplicates (within one header or across shards). */
static int build_index(st_file *f) {
    f->by_name = mq_malloc((size_t)(f->n ? f->n : 1) * sizeof *f->by_name);
    for (int i = 0; i < f->n; i++) f->by_name[i] = i;
    qsort_r(f->by_name, (size_t)f->n, sizeof *f->by_name, by_name_cmp, f);
    for (int i = 1; i < f->n; i++) {
        const st_tensor *a = &f->t[f->by_name[i - 1]], *b = &f->t[f->by_name[i]];
        if (!strcmp(a->name, b->name)) {
            if (a->file == b->file) return mq_fail("%s: duplicate tensor name '%s'", a->file, a->name);
            return mq_fail("duplicate tensor '%s' in %s and in %s", a->name, a->file, b->file);
        }
    }
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = mq_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int is_file(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISREG(s.st_mode);
}

/* model.safetensors.index.json: open every shard named in weight_map and check that the index and
 * the shards agree tensor by tensor. */
static int open_index(st_file *f, const char *index_path) {
    char *text = mq_read_file(index_path, NULL);
    if (!text) return -1;
    const char *endp = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &endp, 1);
    free(text);
    if (!root) return mq_fail("%s: bad JSON", index_path);
    int rc = 0;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm)) rc = mq_fail("%s: missing \"weight_map\" object", index_path);
    else if (!wm->child) rc = mq_fail("%s: \"weight_map\" is empty", index_path);

    char *dir = strdup(index_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else strcpy(dir, ".");

    /* shard files in the order they first appear in the map */
    const char **shards = mq_malloc((size_t)(cJSON_GetArraySize(wm) + 1) * sizeof *shards);
    int ns = 0;
    for (const cJSON *e = wm ? wm->child : NULL; e && !rc; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0])
            { rc = mq_fail("%s: weight_map entry '%s' is not a shard file name", index_path, e->string); break; }
        if (strchr(e->valuestring, '/'))
            { rc = mq_fail("%s: weight_map entry '%s': shard '%s' must be a file name in the same directory", index_path, e->string, e->valuestring); break; }
        int seen = 0;
        for (int i = 0; i < ns && !seen; i++) seen = !strcmp(shards[i], e->valuestring);
        if (!seen) shards[ns++] = e->valuestring;
    }
    for (int i = 0; i < ns && !rc; i++) {
        char *sp = join(dir, shards[i]);
        int first = f->n;
        if (open_shard(f, sp, i == 0)) rc = mq_fail_ctx("%s: shard '%s'", index_path, shards[i]);
        /* each tensor of the shard must be listed, and listed for this shard */
        for (int k = first; k < f->n && !rc; k++) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(wm, f->t[k].name);
            if (!e) rc = mq_fail("%s: tensor '%s' is present in the shard but not listed in %s", sp, f->t[k].name, index_path);
            else if (strcmp(e->valuestring, shards[i]))
                rc = mq_fail("%s: tensor '%s' is present in the shard but %s lists it in '%s'", sp, f->t[k].name,
                             index_path, e->valuestring);
        }
        free(sp);
    }
    if (!rc) rc = build_index(f);
    /* and each listed tensor must be present */
    for (const cJSON *e = wm ? wm->child : NULL; e && !rc; e = e->next)
        if (!st_find(f, e->string))
            rc = mq_fail("%s: tensor '%s' is listed for shard '%s' but absent from it", index_path, e->string, e->valuestring);
    free(shards);
    free(dir);
    cJSON_Delete(root);
    return rc;
}

st_file *st_open(const char *path) {
    st_file *f = mq_calloc(1, sizeof *f);
    struct stat s;
    int rc;
    if (stat(path, &s) != 0) {
        mq_fail("%s: cannot open: %s", path, strerror(errno));
        free(f);
        return NULL;
    }
    if (S_ISDIR(s.st_mode)) {
        /* safetensors first, as transformers prefers them */
        static const char *names[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                      "pytorch_model.bin.index.json"};
        for (int i = 0; i < 4 && !f->path; i++) {
            char *p = join(path, names[i]);
            if (is_file(p)) f->path = p;
            else free(p);
        }
        if (!f->path) {
            mq_fail("%s: no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
                    "pytorch_model.bin.index.json in this directory", path);
            free(f);
            return NULL;
        }
    } else {
        f->path = strdup(path);
    }
    if (ends_with(f->path, ".json")) rc = open_index(f, f->path);
    else rc = open_shard(f, f->path, 1) || build_index(f) ? -1 : 0;
    if (rc) { st_close(f); return NULL; }
    return f;
}

st_file *st_open_buffer(const void *data, size_t n, const char *name) {
    st_file *f = mq_calloc(1, sizeof *f);
    f->path = strdup(name);
    st_shard *s = new_shard(f, name);
    s->size = n;
    s->buf = mq_malloc(n);
    if (n) memcpy(s->buf, data, n);
    if (parse_shard(f, s, 1) || build_index(f)) { st_close(f); return NULL; }
    return f;
}

void st_close(st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->nshards; i++) {
        free(f->shards[i].buf);
        free(f->shards[i].path);
    }
    for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
    for (int i = 0; i < 2 * f->nmeta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->shards);
    free(f->t);
    free(f->by_name);
    free(f->path);
    free(f);
}

const char *st_path(const st_file *f) { return f->path; }
int st_count(const st_file *f) { return f->n; }
const st_tensor *st_get(const st_file *f, int i) { return i >= 0 && i < f->n ? &f->t[i] : NULL; }

const st_tensor *st_find(const st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(name, f->t[f->by_name[mid]].name);
        if (!c) return &f->t[f->by_name[mid]];
        if (c < 0) hi = mid - 1; else lo = mid + 1;
    }
    return NULL;
}

const char *st_metadata(const st_file *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta[2 * i], key)) return f->meta[2 * i + 1];
    return NULL;
}

/* ---- writer ---- */

void (*st_test_before_commit)(const char *path);

typedef struct {
    char *name;
    mq_dtype dtype;
    int ndim;
    int64_t shape[MQ_MAX_DIMS];
    void *data;
    size_t nbytes;
} st_wtensor;

struct st_writer {
    st_wtensor *t;
    int n, cap;
    cJSON *meta; /* object of strings, NULL until the first key */
    int allow_nonfinite;
};

void st_writer_allow_nonfinite(st_writer *w) { w->allow_nonfinite = 1; }

st_writer *st_writer_new(void) { return mq_calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) { free(w->t[i].name); free(w->t[i].data); }
    free(w->t);
    cJSON_Delete(w->meta);
    free(w);
}

int st_writer_add(st_writer *w, const char *name, mq_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    if (!name || !name[0] || !strcmp(name, "__metadata__")) return mq_fail("st_writer: invalid tensor name '%s'", name ? name : "");
    if ((unsigned)dtype >= MQ_NDTYPES) return mq_fail("st_writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > MQ_MAX_DIMS) return mq_fail("st_writer: tensor '%s': %d dimensions (0..%d allowed)", name, ndim, MQ_MAX_DIMS);
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->t[i].name, name)) return mq_fail("st_writer: duplicate tensor name '%s'", name);
    int64_t numel = 1, nbytes;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(numel, shape[i], &numel) || numel > ST_MAX_JSON_INT)
            return mq_fail("st_writer: tensor '%s': invalid shape (dim %d = %lld)", name, i, (long long)shape[i]);
    if (__builtin_mul_overflow(numel, (int64_t)mq_dtype_size(dtype), &nbytes)) return mq_fail("st_writer: tensor '%s': too large", name);
    if (!w->allow_nonfinite && is_float(dtype)) {
        st_tensor view = {.name = name, .dtype = dtype, .ndim = ndim, .numel = numel, .data = data, .file = "st_writer"};
        for (int i = 0; i < ndim; i++) view.shape[i] = shape[i];
        if (st_check_finite(&view)) return mq_fail_ctx("refusing to write a non-finite value");
    }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        st_wtensor *nt = realloc(w->t, (size_t)w->cap * sizeof *nt);
        if (!nt) mq_die("out of memory growing the writer table");
        w->t = nt;
    }
    st_wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    t->name = strdup(name);
    t->dtype = dtype;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->nbytes = (size_t)nbytes;
    t->data = mq_malloc(t->nbytes);
    if (t->nbytes) memcpy(t->data, data, t->nbytes);
    return 0;
}

int st_writer_add_metadata(st_writer *w, const char *key, const char *value) {
    if (!w->meta) w->meta = cJSON_CreateObject();
    if (cJSON_GetObjectItemCaseSensitive(w->meta, key)) cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    cJSON_AddStringToObject(w->meta, key, value);
    return 0;
}

int st_writer_write(st_writer *w, const char *path) {
    /* header: __metadata__ first, then tensors in the order added, offsets contiguous */
    cJSON *root = cJSON_CreateObject();
    if (w->meta) cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(w->meta, 1));
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_wtensor *t = &w->t[i];
        cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "dtype", mq_dtype_name(t->dtype));
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToObject(e, "shape", sh);
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + t->nbytes)));
        cJSON_AddItemToObject(e, "data_offsets", of);
        cJSON_AddItemToObject(root, t->name, e);
        off += t->nbytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return mq_fail("%s: cannot serialize the header", path);
    /* pad with spaces so the data section starts 8-byte aligned */
    size_t jlen = strlen(json), hlen = (jlen + 7) & ~(size_t)7;
    char *hdr = mq_malloc(8 + hlen);
    uint64_t hl = hlen;
    memcpy(hdr, &hl, 8);
    memcpy(hdr + 8, json, jlen);
    memset(hdr + 8 + jlen, ' ', hlen - jlen);
    free(json);

    /* an unnamed temporary: a writer killed half-way leaves nothing behind (core/fio.h) */
    fio_out *o = fio_create(path);
    int rc = o ? fio_write(o, hdr, 8 + hlen) : -1;
    for (int i = 0; i < w->n && !rc; i++) rc = fio_write(o, w->t[i].data, w->t[i].nbytes);
    if (st_test_before_commit && !rc) st_test_before_commit(path);
    if (!rc) rc = fio_commit(o, 1);
    else if (o) fio_abort(o);
    free(hdr);
    return rc;
}
