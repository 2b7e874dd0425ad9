/* Byte-level BPE tokenizer from a Hugging Face tokenizer.json, id-for-id with `tokenizers` (0.23).
 * Encoding follows HF's pipeline: (1) split the raw text on added tokens that are not normalized,
 * (2) NFC each remaining piece and split it on the normalized added tokens, (3) cut each piece with
 * the GPT-2 regex, (4) BPE each word by merge rank over its bytes (the ByteLevel byte->char map is a
 * bijection, so working on raw bytes gives the same ids), caching word -> ids.
 * Not thread-safe: tok_encode fills the word cache. */
#include "datasets/tok.h"
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "datasets/unicode.h"

/* ------------------------------------------------------------------------------------ helpers */

typedef struct { int32_t *v; size_t n, cap; } idvec;

static void iv_push(idvec *a, int32_t id) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        int32_t *nv = realloc(a->v, a->cap * sizeof *nv);
        if (!nv) mq_die("out of memory: %zu token ids", a->cap);
        a->v = nv;
    }
    a->v[a->n++] = id;
}

typedef struct { char *p; size_t n, cap; } arena;

static size_t ar_add(arena *a, const void *src, size_t n) {
    if (a->n + n + 1 > a->cap) {
        while (a->n + n + 1 > a->cap) a->cap = a->cap ? a->cap * 2 : 1 << 16;
        char *np = realloc(a->p, a->cap);
        if (!np) mq_die("out of memory: tokenizer arena of %zu bytes", a->cap);
        a->p = np;
    }
    size_t off = a->n;
    memcpy(a->p + off, src, n);
    a->n += n;
    return off;
}

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
        s += 8; n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 29);
}

/* String -> id map (open addressing); keys are offsets into an arena owned by the caller. */
typedef struct { uint64_t h; uint32_t off, len; int32_t id; } smap_slot;
typedef struct { smap_slot *s; size_t mask, n; } smap;

static void smap_init(smap *m, size_t expect) {
    size_t cap = 64;
    while (cap < expect * 2) cap *= 2;
    m->s = mq_malloc(cap * sizeof *m->s);
    for (size_t i = 0; i < cap; i++) m->s[i].id = -1;
    m->mask = cap - 1;
    m->n = 0;
}

static smap_slot *smap_find(const smap *m, const arena *a, const char *k, size_t len, uint64_t h) {
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        smap_slot *s = &m->s[i];
        if (s->id < 0) return s;
        if (s->h == h && s->len == len && !memcmp(a->p + s->off, k, len)) return s;
    }
}

static int32_t smap_get(const smap *m, const arena *a, const char *k, size_t len) {
    if (!m->s) return -1;
    return smap_find(m, a, k, len, hash_bytes((const unsigned char *)k, len))->id;
}

/* Inserts key (already in the arena at off) unless present; returns the existing id or -1. */
static int32_t smap_put(smap *m, const arena *a, uint32_t off, uint32_t len, int32_t id) {
    uint64_t h = hash_bytes((const unsigned char *)a->p + off, len);
    smap_slot *s = smap_find(m, a, a->p + off, len, h);
    if (s->id >= 0) return s->id;
    *s = (smap_slot){h, off, len, id};
    m->n++;
    return -1;
}

/* ------------------------------------------------------------------- tokenizer data structure */

typedef struct {
    uint32_t off, len;     /* content in tok->strs */
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} added_token;

/* Byte trie over added-token contents, searched leftmost-longest like HF's Aho-Corasick. */
typedef struct { int32_t child, sibling, tok; uint8_t byte; } trie_node;
typedef struct { trie_node *nodes; int n, cap, n_first; uint8_t first[256], one_first; bool empty; } matcher;

typedef struct { uint64_t key; uint32_t rank; int32_t new_id; } merge_slot;   /* key (a << 32) | b */
/* 16 bytes, so that the table of a whole text's distinct words stays small in the CPU caches.
 * key: the word's bytes themselves when it has at most 4 (most do), else its offset in cache_keys;
 * ids: the id itself when the word is one token, else the offset of its ids in cache_ids. */
typedef struct { uint32_t h, key; uint16_t len, n_ids; int32_t ids; } cache_slot;

struct tok_tokenizer {
    char *path;
    int n_ids;                          /* highest id + 1 */
    arena strs;                         /* token strings (as in the JSON) and added-token patterns */
    uint32_t *str_off, *str_len;        /* per id; str_len UINT32_MAX: no token has this id */
    arena dec;                          /* per id: the bytes the ByteLevel decoder makes of it */
    uint32_t *dec_off, *dec_len;
    smap vocab;                         /* model.vocab: token string -> id */
    smap raw_vocab;                     /* raw bytes -> id, only for ignore_merges */
    int32_t byte_id[256];               /* id of each single-byte symbol, -1 when not in vocab */
    merge_slot *merges;
    size_t merge_mask;
    int32_t unk_id;                     /* -1: none */
    bool fuse_unk, ignore_merges, nfc, add_prefix_space, use_regex;
    added_token *added;
    int n_added;
    matcher raw_m, norm_m;              /* non-normalized / normalized added tokens */
    /* word cache and BPE scratch */
    cache_slot *cache;
    size_t cache_mask, cache_n;
    arena cache_keys;
    idvec cache_ids;
    int32_t *sym, *prv, *nxt;
    uint64_t *heap_key;
    int32_t *heap_new;
    size_t scratch_cap;
};

/* ------------------------------------------------------------------------ byte <-> unicode map */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order, so that every byte is a visible character in vocab strings. */
static uint32_t byte_to_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (uint32_t)b;
    int n = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
    return 256 + (uint32_t)n;
}

/* The ByteLevel decoder on one token: its characters mapped back to bytes, or (when one of them is
 * not in the byte alphabet, as in the added whitespace tokens) the token's own UTF-8. */
static void bytelevel_decode(const char *s, size_t len, const int *cp_to_byte, arena *out, uint32_t *off, uint32_t *olen) {
    char tmp[1024];
    char *buf = len <= sizeof tmp ? tmp : mq_malloc(len);
    size_t n = 0, i = 0;
    bool ok = true;
    while (i < len) {
        int k;
        uint32_t c = utf8_get((const unsigned char *)s + i, &k);
        if (c >= 324 || cp_to_byte[c] < 0) { ok = false; break; }
        buf[n++] = (char)cp_to_byte[c];
        i += (size_t)k;
    }
    if (ok) { *off = (uint32_t)ar_add(out, buf, n); *olen = (uint32_t)n; }
    else { *off = (uint32_t)ar_add(out, s, len); *olen = (uint32_t)len; }
    if (buf != tmp) free(buf);
}

/* --------------------------------------------------------------------------------- merges map */

static merge_slot *merge_find(const tok_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = (key * 0x9E3779B97F4A7C15ULL) >> 20 & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        merge_slot *s = &t->merges[i];
        if (s->key == key || s->key == UINT64_MAX) return s;
    }
}

/* ------------------------------------------------------------------------------------ matcher */

static int trie_node_new(matcher *m, uint8_t byte) {
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        trie_node *nn = realloc(m->nodes, (size_t)m->cap * sizeof *nn);
        if (!nn) mq_die("out of memory: added-token trie");
        m->nodes = nn;
    }
    m->nodes[m->n] = (trie_node){-1, -1, -1, byte};
    return m->n++;
}

static void trie_add(matcher *m, const char *s, size_t len, int tok) {
    if (!m->n) trie_node_new(m, 0);
    int node = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)s[i];
        int c = m->nodes[node].child;
        while (c >= 0 && m->nodes[c].byte != b) c = m->nodes[c].sibling;
        if (c < 0) {
            c = trie_node_new(m, b);
            m->nodes[c].sibling = m->nodes[node].child;
            m->nodes[node].child = c;
        }
        node = c;
    }
    if (m->nodes[node].tok < 0) m->nodes[node].tok = tok;   /* same pattern twice: first wins */
    if (!m->first[(uint8_t)s[0]]) { m->first[(uint8_t)s[0]] = 1; m->n_first++; m->one_first = (uint8_t)s[0]; }
    m->empty = false;
}

/* Leftmost-longest match at or after pos: the earliest start, and there the longest pattern. */
static bool trie_next(const matcher *m, const unsigned char *s, size_t n, size_t pos, size_t *ms, size_t *me, int *tok) {
    if (m->empty) return false;
    for (size_t i = pos; i < n; i++) {
        if (m->n_first == 1) {   /* the usual case ("<" of <|...|>, " " of space runs): memchr */
            const unsigned char *p = memchr(s + i, m->one_first, n - i);
            if (!p) return false;
            i = (size_t)(p - s);
        } else if (!m->first[s[i]]) {
            continue;
        }
        int node = 0, best = -1;
        size_t best_end = 0;
        for (size_t k = i; k < n; k++) {
            int c = m->nodes[node].child;
            while (c >= 0 && m->nodes[c].byte != s[k]) c = m->nodes[c].sibling;
            if (c < 0) break;
            node = c;
            if (m->nodes[node].tok >= 0) { best = m->nodes[node].tok; best_end = k + 1; }
        }
        if (best >= 0) { *ms = i; *me = best_end; *tok = best; return true; }
    }
    return false;
}

/* ---------------------------------------------------------------------------- JSON load helpers */

enum { TOK_ID_SLACK = 256 };                 /* holes allowed in the id space beyond one per token */
#define TOK_MAX_FILE ((size_t)1 << 30)       /* tokenizer.json files are megabytes; refuse > 1 GiB */

static int bad_field(const char *path, const char *field, const char *what) {
    return mq_fail("%s: field '%s': %s", path, field, what);
}

/* Optional boolean field: absent or null -> def; a non-boolean is an error. */
static int get_bool(const char *path, const cJSON *obj, const char *key, const char *where, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) {
        char f[256];
        snprintf(f, sizeof f, "%s.%s", where, key);
        return bad_field(path, f, "expected true or false");
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static bool is_int(const cJSON *v, double lo, double hi) {
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi && v->valuedouble == (double)(long long)v->valuedouble;
}

static const char *type_of(const cJSON *obj) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

/* normalizer: null, NFC, or a Sequence of those. */
static int load_normalizer(tok_tokenizer *t, const cJSON *n, const char *field) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = cJSON_IsObject(n) ? type_of(n) : NULL;
    if (!ty) return bad_field(t->path, field, "expected an object with a string \"type\"");
    if (!strcmp(ty, "NFC")) { t->nfc = true; return 0; }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(items)) return bad_field(t->path, field, "Sequence without a \"normalizers\" array");
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, items) {
            char f[256];
            snprintf(f, sizeof f, "%s.normalizers[%d]", field, i++);
            if (load_normalizer(t, it, f)) return -1;
        }
        return 0;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "normalizer type \"%s\" is not supported (only NFC)", ty);
    return bad_field(t->path, field, msg);
}

/* pre_tokenizer: ByteLevel, or a Sequence holding exactly one ByteLevel. */
static int load_pretok(tok_tokenizer *t, const cJSON *p, const char *field) {
    const char *ty = cJSON_IsObject(p) ? type_of(p) : NULL;
    if (!ty) return bad_field(t->path, field, "expected a ByteLevel pre-tokenizer object");
    if (!strcmp(ty, "Sequence")) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(items) || cJSON_GetArraySize(items) != 1)
            return bad_field(t->path, field, "only a Sequence of exactly one ByteLevel is supported");
        char f[256];
        snprintf(f, sizeof f, "%s.pretokenizers[0]", field);
        return load_pretok(t, cJSON_GetArrayItem(items, 0), f);
    }
    if (strcmp(ty, "ByteLevel")) {
        char msg[256];
        snprintf(msg, sizeof msg, "pre-tokenizer type \"%s\" is not supported (only ByteLevel)", ty);
        return bad_field(t->path, field, msg);
    }
    /* HF's serde defaults: add_prefix_space true, use_regex true */
    if (get_bool(t->path, p, "add_prefix_space", field, true, &t->add_prefix_space)) return -1;
    if (get_bool(t->path, p, "use_regex", field, true, &t->use_regex)) return -1;
    return 0;
}

/* One merge, "a b" (split on the single space) or ["a", "b"], into pointers to the two halves. */
static int merge_parts(tok_tokenizer *t, const cJSON *m, int i, const char **a, size_t *la, const char **b, size_t *lb) {
    char f[64];
    snprintf(f, sizeof f, "model.merges[%d]", i);
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ')) {
            char msg[512];
            snprintf(msg, sizeof msg, "expected \"a b\" (two tokens separated by one space), found \"%.200s\"", s);
            return bad_field(t->path, f, msg);
        }
        *a = s; *la = (size_t)(sp - s); *b = sp + 1; *lb = strlen(sp + 1);
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
        cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
        *a = cJSON_GetArrayItem(m, 0)->valuestring; *la = strlen(*a);
        *b = cJSON_GetArrayItem(m, 1)->valuestring; *lb = strlen(*b);
        return 0;
    }
    return bad_field(t->path, f, "expected a string \"a b\" or a pair [\"a\", \"b\"]");
}

static int load_model(tok_tokenizer *t, const cJSON *model, int *max_id) {
    const char *path = t->path;
    if (!cJSON_IsObject(model)) return bad_field(path, "model", "missing or not an object");
    const char *ty = type_of(model);
    if (ty && strcmp(ty, "BPE")) {
        char msg[256];
        snprintf(msg, sizeof msg, "model type \"%s\" is not supported (only BPE)", ty);
        return bad_field(path, "model.type", msg);
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab)) return bad_field(path, "model.vocab", "missing or not an object of token -> id");
    if (!cJSON_IsArray(merges)) return bad_field(path, "model.merges", "missing or not an array");

    const cJSON *v = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0))
        return bad_field(path, "model.dropout", "BPE dropout is random; only null or 0 is supported");
    const char *unsupported[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        v = cJSON_GetObjectItemCaseSensitive(model, unsupported[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !v->valuestring[0])) {
            char f[64];
            snprintf(f, sizeof f, "model.%s", unsupported[i]);
            return bad_field(path, f, "not supported for byte-level BPE (must be null)");
        }
    }
    bool byte_fallback = false;
    if (get_bool(path, model, "byte_fallback", "model", false, &byte_fallback)) return -1;
    if (byte_fallback) return bad_field(path, "model.byte_fallback", "not supported (must be false)");
    if (get_bool(path, model, "fuse_unk", "model", false, &t->fuse_unk)) return -1;
    if (get_bool(path, model, "ignore_merges", "model", false, &t->ignore_merges)) return -1;

    /* vocab: count and check ids first, so per-id arrays can be sized */
    int n = 0;
    const cJSON *it, *top = NULL;
    cJSON_ArrayForEach(it, vocab) {
        if (!is_int(it, 0, 2147483646.0)) {
            char f[300];
            snprintf(f, sizeof f, "model.vocab[\"%.200s\"]", it->string);
            return bad_field(path, f, "expected a non-negative integer id");
        }
        if ((int)it->valuedouble > *max_id) *max_id = (int)it->valuedouble, top = it;
        n++;
    }
    /* the per-id tables are sized by the highest id: ids may leave holes, but not more holes than
     * tokens (id 2147483646 in a 50k vocabulary would ask for gigabytes) */
    if (*max_id >= 2 * n + TOK_ID_SLACK) {
        char f[300], msg[300];
        snprintf(f, sizeof f, "model.vocab[\"%.200s\"]", top->string);
        snprintf(msg, sizeof msg, "id %d is far beyond the %d tokens listed (ids must be below 2 x tokens + %d = %d)", *max_id, n,
                 TOK_ID_SLACK, 2 * n + TOK_ID_SLACK);
        return bad_field(path, f, msg);
    }
    smap_init(&t->vocab, (size_t)n);
    return n;
}

static int build_merges(tok_tokenizer *t, const cJSON *merges) {
    size_t n = (size_t)cJSON_GetArraySize(merges), cap = 1024;
    while (cap < n * 2) cap *= 2;
    t->merges = mq_malloc(cap * sizeof *t->merges);
    for (size_t i = 0; i < cap; i++) t->merges[i].key = UINT64_MAX;
    t->merge_mask = cap - 1;
    const cJSON *m;
    int i = 0;
    uint32_t rank = 0;
    char *buf = NULL;
    size_t bufcap = 0;
    cJSON_ArrayForEach(m, merges) {
        /* HF skips the "#version" header line of merges.txt-style lists */
        if (cJSON_IsString(m) && !strncmp(m->valuestring, "#version", 8)) { i++; continue; }
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (merge_parts(t, m, i, &a, &la, &b, &lb)) { free(buf); return -1; }
        int32_t ia = smap_get(&t->vocab, &t->strs, a, la), ib = smap_get(&t->vocab, &t->strs, b, lb);
        if (la + lb > bufcap) { bufcap = (la + lb) * 2; free(buf); buf = mq_malloc(bufcap); }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int32_t inew = smap_get(&t->vocab, &t->strs, buf, la + lb);
        if (ia < 0 || ib < 0 || inew < 0) {
            const char *miss = ia < 0 ? a : ib < 0 ? b : buf;
            size_t ml = ia < 0 ? la : ib < 0 ? lb : la + lb;
            char f[64], msg[600];
            snprintf(f, sizeof f, "model.merges[%d]", i);
            snprintf(msg, sizeof msg, "token \"%.*s\" is not in model.vocab", (int)(ml > 200 ? 200 : ml), miss);
            free(buf);
            return bad_field(t->path, f, msg);
        }
        /* a repeated pair: the later entry wins, as when HF collects the list into its map */
        merge_slot *s = merge_find(t, ia, ib);
        *s = (merge_slot){((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib, rank, inew};
        rank++;
        i++;
    }
    free(buf);
    return 0;
}

/* added_tokens, with HF's id rule: the id of the same content already known (added or vocab),
 * else the next id after the vocab and the added tokens so far. The file's "id" is not what HF uses
 * either; it only matters when the file is inconsistent. */
static int load_added(tok_tokenizer *t, const cJSON *arr, int n_vocab_entries, int *max_id) {
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return bad_field(t->path, "added_tokens", "expected an array");
    int n = cJSON_GetArraySize(arr), i = 0;
    t->added = mq_calloc((size_t)n + 1, sizeof *t->added);
    smap added_map;
    smap_init(&added_map, (size_t)n);
    int32_t max_added = -1;
    const cJSON *a;
    cJSON_ArrayForEach(a, arr) {
        char f[64];
        snprintf(f, sizeof f, "added_tokens[%d]", i);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!cJSON_IsObject(a) || !cJSON_IsString(content)) { free(added_map.s); return bad_field(t->path, f, "expected an object with a string \"content\""); }
        if (!is_int(id, 0, 2147483646.0)) { free(added_map.s); return bad_field(t->path, f, "expected a non-negative integer \"id\""); }
        added_token tk = {0};
        if (get_bool(t->path, a, "special", f, false, &tk.special)) goto fail;
        if (get_bool(t->path, a, "single_word", f, false, &tk.single_word)) goto fail;
        if (get_bool(t->path, a, "lstrip", f, false, &tk.lstrip)) goto fail;
        if (get_bool(t->path, a, "rstrip", f, false, &tk.rstrip)) goto fail;
        if (get_bool(t->path, a, "normalized", f, !tk.special, &tk.normalized)) goto fail;
        size_t len = strlen(content->valuestring);
        i++;
        if (!len) continue;   /* HF ignores empty added tokens */
        tk.off = (uint32_t)ar_add(&t->strs, content->valuestring, len);
        tk.len = (uint32_t)len;
        int32_t known = smap_get(&added_map, &t->strs, t->strs.p + tk.off, len);
        if (known < 0) known = smap_get(&t->vocab, &t->strs, t->strs.p + tk.off, len);
        if (known >= 0) tk.id = known;
        else if (max_added < 0) tk.id = n_vocab_entries;
        else tk.id = max_added >= n_vocab_entries || n_vocab_entries == 0 ? max_added + 1 : n_vocab_entries;
        if (tk.id > max_added) max_added = tk.id;
        if (tk.id > *max_id) *max_id = tk.id;
        smap_put(&added_map, &t->strs, tk.off, tk.len, tk.id);
        t->added[t->n_added++] = tk;
    }
    free(added_map.s);
    return 0;
fail:
    free(added_map.s);
    return -1;
}

/* Tries of added-token patterns: non-normalized ones match the raw text, normalized ones the NFC
 * text (so their own content is normalized first). */
static void build_matchers(tok_tokenizer *t) {
    t->raw_m.empty = t->norm_m.empty = true;
    for (int i = 0; i < t->n_added; i++) {
        added_token *a = &t->added[i];
        const char *s = t->strs.p + a->off;
        if (!a->normalized) { trie_add(&t->raw_m, s, a->len, i); continue; }
        char *ns;
        size_t nl;
        if (t->nfc && uni_nfc(s, a->len, &ns, &nl)) {
            trie_add(&t->norm_m, ns, nl, i);
            free(ns);
        } else {
            trie_add(&t->norm_m, s, a->len, i);
        }
    }
}

tok_tokenizer *tok_load(const char *path) {
    size_t len;
    char *text = mq_read_file(path, &len);
    if (!text) return NULL;
    tok_tokenizer *t = tok_load_json(text, len, path);
    free(text);
    return t;
}

tok_tokenizer *tok_load_json(const char *text, size_t len, const char *path) {
    if (len > TOK_MAX_FILE) {
        mq_fail("%s: %zu bytes: too large for a tokenizer.json (limit %zu)", path, len, TOK_MAX_FILE);
        return NULL;
    }
    /* JSON is UTF-8 (HF's serde_json refuses anything else), and every string of it is later read
     * code point by code point (utf8_get, NFC), which needs valid UTF-8 */
    size_t bad = utf8_check(text, len);
    if (bad < len) {
        mq_fail("%s: not valid UTF-8 at byte offset %zu (byte 0x%02X)", path, bad, (unsigned char)text[bad]);
        return NULL;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *e = cJSON_GetErrorPtr();
        size_t off = e && e >= text && e <= text + len ? (size_t)(e - text) : 0;
        mq_fail("%s: not valid JSON (parse error near byte offset %zu)", path, off);
        return NULL;
    }
    tok_tokenizer *t = mq_calloc(1, sizeof *t);
    t->path = strdup(path);
    t->unk_id = -1;
    int max_id = -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *f;
    int n_vocab;
    if (!cJSON_IsObject(root)) { mq_fail("%s: expected a JSON object at the top level", path); goto fail; }
    for (const char **k = (const char *[]){"truncation", "padding", NULL}; *k; k++) {
        f = cJSON_GetObjectItemCaseSensitive(root, *k);
        if (f && !cJSON_IsNull(f)) { bad_field(path, *k, "must be null (mambaq tokenizes whole texts)"); goto fail; }
    }
    if ((n_vocab = load_model(t, model, &max_id)) < 0) goto fail;
    if (load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer")) goto fail;
    f = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (load_pretok(t, f, "pre_tokenizer")) goto fail;
    f = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (!cJSON_IsObject(f) || !type_of(f) || strcmp(type_of(f), "ByteLevel")) {
        bad_field(path, "decoder", "expected a ByteLevel decoder");
        goto fail;
    }

    /* model.vocab strings, then the added tokens (which may reuse vocab ids) */
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *it;
    struct { uint32_t off, len; int32_t id; } *ents = mq_malloc((size_t)(n_vocab ? n_vocab : 1) * sizeof *ents);
    int k = 0;
    cJSON_ArrayForEach(it, vocab) {
        size_t l = strlen(it->string);
        ents[k].off = (uint32_t)ar_add(&t->strs, it->string, l);
        ents[k].len = (uint32_t)l;
        ents[k].id = (int32_t)it->valuedouble;
        if (smap_put(&t->vocab, &t->strs, ents[k].off, ents[k].len, ents[k].id) >= 0) {
            char fl[300];
            snprintf(fl, sizeof fl, "model.vocab[\"%.200s\"]", it->string);
            bad_field(path, fl, "token listed twice");
            free(ents);
            goto fail;
        }
        k++;
    }
    if (load_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), n_vocab, &max_id)) { free(ents); goto fail; }
    if (!n_vocab) {   /* checked last, so that the other fields' errors come first */
        bad_field(path, "model.vocab", "empty: every text would encode to no tokens");
        free(ents);
        goto fail;
    }
    t->n_ids = max_id + 1;
    t->str_off = mq_calloc((size_t)t->n_ids + 1, sizeof *t->str_off);
    t->str_len = mq_malloc(((size_t)t->n_ids + 1) * sizeof *t->str_len);
    for (size_t i = 0; i <= (size_t)t->n_ids; i++) t->str_len[i] = UINT32_MAX;
    for (int i = 0; i < n_vocab; i++) {
        if (t->str_len[ents[i].id] != UINT32_MAX) {
            char fl[300];
            snprintf(fl, sizeof fl, "model.vocab[\"%.*s\"]", (int)(ents[i].len > 200 ? 200 : ents[i].len), t->strs.p + ents[i].off);
            mq_fail("%s: field '%s': id %d is already used by another token", path, fl, ents[i].id);
            free(ents);
            goto fail;
        }
        t->str_off[ents[i].id] = ents[i].off;
        t->str_len[ents[i].id] = ents[i].len;
    }
    free(ents);
    for (int i = 0; i < t->n_added; i++) {   /* added content is what HF decodes for these ids */
        t->str_off[t->added[i].id] = t->added[i].off;
        t->str_len[t->added[i].id] = t->added[i].len;
    }

    if (build_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"))) goto fail;
    f = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    if (f && !cJSON_IsNull(f)) {
        if (!cJSON_IsString(f)) { bad_field(path, "model.unk_token", "expected a string or null"); goto fail; }
        t->unk_id = smap_get(&t->vocab, &t->strs, f->valuestring, strlen(f->valuestring));
        if (t->unk_id < 0) { bad_field(path, "model.unk_token", "token is not in model.vocab"); goto fail; }
    }

    /* byte alphabet: single-byte symbols, and the decoder's reverse map */
    int cp_to_byte[324];
    for (int c = 0; c < 324; c++) cp_to_byte[c] = -1;
    for (int b = 0; b < 256; b++) {
        uint32_t cp = byte_to_cp(b);
        cp_to_byte[cp] = b;
        char u[4];
        int l = utf8_put(cp, u);
        t->byte_id[b] = smap_get(&t->vocab, &t->strs, u, (size_t)l);
    }
    t->dec_off = mq_calloc((size_t)t->n_ids, sizeof *t->dec_off);
    t->dec_len = mq_calloc((size_t)t->n_ids, sizeof *t->dec_len);
    for (int id = 0; id < t->n_ids; id++)
        if (t->str_len[id] != UINT32_MAX)
            bytelevel_decode(t->strs.p + t->str_off[id], t->str_len[id], cp_to_byte, &t->dec, &t->dec_off[id], &t->dec_len[id]);
    if (t->ignore_merges) {
        /* whole-word lookups happen on raw bytes: key the vocab by decoded bytes */
        smap_init(&t->raw_vocab, (size_t)n_vocab);
        for (int id = 0; id < t->n_ids; id++) {
            if (t->str_len[id] == UINT32_MAX) continue;
            const char *s = t->strs.p + t->str_off[id];
            bool byte_level = true;
            for (uint32_t i = 0; i < t->str_len[id];) {
                int l;
                uint32_t c = utf8_get((const unsigned char *)s + i, &l);
                if (c >= 324 || cp_to_byte[c] < 0) { byte_level = false; break; }
                i += (uint32_t)l;
            }
            if (byte_level) smap_put(&t->raw_vocab, &t->dec, t->dec_off[id], t->dec_len[id], id);
        }
    }
    build_matchers(t);
    cJSON_Delete(root);
    return t;
fail:
    cJSON_Delete(root);
    tok_free(t);
    return NULL;
}

void tok_free(tok_tokenizer *t) {
    if (!t) return;
    free(t->path);
    free(t->strs.p); free(t->str_off); free(t->str_len);
    free(t->dec.p); free(t->dec_off); free(t->dec_len);
    free(t->vocab.s); free(t->raw_vocab.s);
    free(t->merges);
    free(t->added);
    free(t->raw_m.nodes); free(t->norm_m.nodes);
    free(t->cache); free(t->cache_keys.p); free(t->cache_ids.v);
    free(t->sym); free(t->prv); free(t->nxt); free(t->heap_key); free(t->heap_new);
    free(t);
}

int tok_vocab_size(const tok_tokenizer *t) { return t->n_ids; }

int32_t tok_token_to_id(const tok_tokenizer *t, const char *token) {
    size_t len = strlen(token);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->strs.p + t->added[i].off, token, len)) return t->added[i].id;
    return smap_get(&t->vocab, &t->strs, token, len);
}

const char *tok_id_to_token(const tok_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || t->str_len[id] == UINT32_MAX) return NULL;
    *len = t->str_len[id];
    return t->strs.p + t->str_off[id];
}

/* ------------------------------------------------------------------------------------------ BPE */

static void scratch(tok_tokenizer *t, size_t n) {
    if (n <= t->scratch_cap) return;
    size_t c = t->scratch_cap ? t->scratch_cap : 64;
    while (c < n) c *= 2;
    free(t->sym); free(t->prv); free(t->nxt); free(t->heap_key); free(t->heap_new);
    t->sym = mq_malloc(c * sizeof *t->sym);
    t->prv = mq_malloc(c * sizeof *t->prv);
    t->nxt = mq_malloc(c * sizeof *t->nxt);
    /* every merge pushes at most two entries, plus the n - 1 initial pairs */
    t->heap_key = mq_malloc(3 * c * sizeof *t->heap_key);
    t->heap_new = mq_malloc(3 * c * sizeof *t->heap_new);
    t->scratch_cap = c;
}

/* Min-heap on (rank << 32 | position): lowest rank first, leftmost among equal ranks, as in
 * HF's Word::merge_all. */
static void heap_push(tok_tokenizer *t, size_t *n, uint64_t key, int32_t new_id) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (t->heap_key[p] <= key) break;
        t->heap_key[i] = t->heap_key[p]; t->heap_new[i] = t->heap_new[p];
        i = p;
    }
    t->heap_key[i] = key; t->heap_new[i] = new_id;
}

static void heap_pop(tok_tokenizer *t, size_t *n, uint64_t *key, int32_t *new_id) {
    *key = t->heap_key[0]; *new_id = t->heap_new[0];
    size_t m = --(*n), i = 0;
    uint64_t k = t->heap_key[m];
    int32_t v = t->heap_new[m];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && t->heap_key[c + 1] < t->heap_key[c]) c++;
        if (t->heap_key[c] >= k) break;
        t->heap_key[i] = t->heap_key[c]; t->heap_new[i] = t->heap_new[c];
        i = c;
    }
    t->heap_key[i] = k; t->heap_new[i] = v;
}

static void push_pair(tok_tokenizer *t, size_t *hn, int32_t pos) {
    int32_t q = t->nxt[pos];
    if (q < 0) return;
    merge_slot *s = merge_find(t, t->sym[pos], t->sym[q]);
    if (s->key != UINT64_MAX) heap_push(t, hn, ((uint64_t)s->rank << 32) | (uint32_t)pos, s->new_id);
}

/* BPE of one pre-tokenized word (raw bytes) appended to out. */
static void bpe_merge(tok_tokenizer *t, const unsigned char *w, size_t n, idvec *out) {
    if (t->ignore_merges) {
        int32_t id = smap_get(&t->raw_vocab, &t->dec, (const char *)w, n);
        if (id >= 0) { iv_push(out, id); return; }
    }
    scratch(t, n);
    /* initial symbols: one per byte; bytes missing from the vocab become unk (fused or not) or
     * are dropped when there is no unk token, as HF does */
    int32_t m = 0;
    bool pending_unk = false;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[w[i]];
        if (id >= 0) {
            if (pending_unk) { t->sym[m++] = t->unk_id; pending_unk = false; }
            t->sym[m++] = id;
        } else if (t->unk_id >= 0) {
            if (pending_unk && !t->fuse_unk) t->sym[m++] = t->unk_id;
            pending_unk = true;
        }
    }
    if (pending_unk) t->sym[m++] = t->unk_id;
    for (int32_t i = 0; i < m; i++) { t->prv[i] = i - 1; t->nxt[i] = i + 1 < m ? i + 1 : -1; }
    size_t hn = 0;
    for (int32_t i = 0; i + 1 < m; i++) push_pair(t, &hn, i);
    while (hn) {
        uint64_t key;
        int32_t new_id;
        heap_pop(t, &hn, &key, &new_id);
        int32_t p = (int32_t)(uint32_t)key;
        if (t->sym[p] < 0 || t->nxt[p] < 0) continue;          /* merged away, or now last */
        int32_t q = t->nxt[p];
        merge_slot *s = merge_find(t, t->sym[p], t->sym[q]);
        if (s->key == UINT64_MAX || s->new_id != new_id) continue;   /* stale entry */
        t->sym[p] = new_id;
        t->sym[q] = -1;
        t->nxt[p] = t->nxt[q];
        if (t->nxt[q] >= 0) t->prv[t->nxt[q]] = p;
        if (t->prv[p] >= 0) push_pair(t, &hn, t->prv[p]);
        push_pair(t, &hn, p);
    }
    for (int32_t i = 0; i >= 0 && m > 0; i = t->nxt[i]) iv_push(out, t->sym[i]);
}

enum { CACHE_MAX_WORD = 256, CACHE_MAX_ENTRIES = 1 << 20, CACHE_EMPTY = 0xFFFF };

static uint32_t short_key(const unsigned char *w, size_t n) {
    uint32_t k = 0;
    memcpy(&k, w, n);
    return k;
}

/* BPE with the word cache: most words of a text repeat, so most words cost one hash lookup. */
static void bpe_word(tok_tokenizer *t, const unsigned char *w, size_t n, idvec *out) {
    if (n > CACHE_MAX_WORD) { bpe_merge(t, w, n, out); return; }
    if (!t->cache) {
        t->cache_mask = (1 << 15) - 1;
        t->cache = mq_malloc((t->cache_mask + 1) * sizeof *t->cache);
        for (size_t i = 0; i <= t->cache_mask; i++) t->cache[i].len = CACHE_EMPTY;
    }
    uint64_t h64 = hash_bytes(w, n);
    uint32_t h = (uint32_t)(h64 >> 32), key = n <= 4 ? short_key(w, n) : 0;
    size_t i = h64 & t->cache_mask;
    for (;; i = (i + 1) & t->cache_mask) {
        const cache_slot *s = &t->cache[i];
        if (s->len == CACHE_EMPTY) break;
        if (s->h != h || s->len != n) continue;
        if (n <= 4 ? s->key != key : memcmp(t->cache_keys.p + s->key, w, n) != 0) continue;
        if (s->n_ids == 1) iv_push(out, s->ids);
        else for (uint32_t k = 0; k < s->n_ids; k++) iv_push(out, t->cache_ids.v[(uint32_t)s->ids + k]);
        return;
    }
    size_t before = out->n;
    bpe_merge(t, w, n, out);
    size_t got = out->n - before;
    if (t->cache_n >= CACHE_MAX_ENTRIES || got > 0xFFFF) return;
    cache_slot *s = &t->cache[i];
    s->h = h;
    s->len = (uint16_t)n;
    s->key = n <= 4 ? key : (uint32_t)ar_add(&t->cache_keys, w, n);
    s->n_ids = (uint16_t)got;
    if (got == 1) s->ids = out->v[before];
    else {
        s->ids = (int32_t)t->cache_ids.n;
        for (size_t k = before; k < out->n; k++) iv_push(&t->cache_ids, out->v[k]);
    }
    if (++t->cache_n * 4 > t->cache_mask * 3) {   /* keep the load under 3/4 */
        size_t cap = (t->cache_mask + 1) * 2;
        cache_slot *nc = mq_malloc(cap * sizeof *nc);
        for (size_t k = 0; k < cap; k++) nc[k].len = CACHE_EMPTY;
        /* the slot index came from the low hash bits, which are gone: rehash from the key */
        for (size_t k = 0; k <= t->cache_mask; k++) {
            const cache_slot *o = &t->cache[k];
            if (o->len == CACHE_EMPTY) continue;
            const unsigned char *kw = o->len <= 4 ? (const unsigned char *)&o->key : (const unsigned char *)t->cache_keys.p + o->key;
            size_t j = hash_bytes(kw, o->len) & (cap - 1);
            while (nc[j].len != CACHE_EMPTY) j = (j + 1) & (cap - 1);
            nc[j] = *o;
        }
        free(t->cache);
        t->cache = nc;
        t->cache_mask = cap - 1;
    }
}

/* ------------------------------------------------------------------------- pre-tokenization */

enum { CL_O = 0, CL_L = UNI_L, CL_N = UNI_N, CL_S = UNI_S };

static const uint8_t ascii_cls[128] = {
    ['\t'] = CL_S, ['\n'] = CL_S, ['\v'] = CL_S, ['\f'] = CL_S, ['\r'] = CL_S, [' '] = CL_S,
    ['0'] = CL_N, ['1'] = CL_N, ['2'] = CL_N, ['3'] = CL_N, ['4'] = CL_N, ['5'] = CL_N, ['6'] = CL_N,
    ['7'] = CL_N, ['8'] = CL_N, ['9'] = CL_N,
    ['A'] = CL_L, ['B'] = CL_L, ['C'] = CL_L, ['D'] = CL_L, ['E'] = CL_L, ['F'] = CL_L, ['G'] = CL_L,
    ['H'] = CL_L, ['I'] = CL_L, ['J'] = CL_L, ['K'] = CL_L, ['L'] = CL_L, ['M'] = CL_L, ['N'] = CL_L,
    ['O'] = CL_L, ['P'] = CL_L, ['Q'] = CL_L, ['R'] = CL_L, ['S'] = CL_L, ['T'] = CL_L, ['U'] = CL_L,
    ['V'] = CL_L, ['W'] = CL_L, ['X'] = CL_L, ['Y'] = CL_L, ['Z'] = CL_L,
    ['a'] = CL_L, ['b'] = CL_L, ['c'] = CL_L, ['d'] = CL_L, ['e'] = CL_L, ['f'] = CL_L, ['g'] = CL_L,
    ['h'] = CL_L, ['i'] = CL_L, ['j'] = CL_L, ['k'] = CL_L, ['l'] = CL_L, ['m'] = CL_L, ['n'] = CL_L,
    ['o'] = CL_L, ['p'] = CL_L, ['q'] = CL_L, ['r'] = CL_L, ['s'] = CL_L, ['t'] = CL_L, ['u'] = CL_L,
    ['v'] = CL_L, ['w'] = CL_L, ['x'] = CL_L, ['y'] = CL_L, ['z'] = CL_L,
};

/* Class of the character at s[i] for the split regex: \p{L}, \p{N}, \s or anything else. */
static inline int cls_at(const unsigned char *s, size_t i, int *len) {
    if (s[i] < 0x80) { *len = 1; return ascii_cls[s[i]]; }
    return uni_flags(utf8_get(s + i, len)) & (CL_L | CL_N | CL_S);
}

/* The GPT-2 split regex, 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+,
 * by hand: at each position the first alternative that matches, each greedy. Every character is
 * covered by some alternative, so the matches tile the piece. Each match is BPE'd. */
static void pretokenize(tok_tokenizer *t, const unsigned char *s, size_t n, idvec *out) {
    if (!t->use_regex) { bpe_word(t, s, n, out); return; }
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        if (s[i] == '\'' && i + 1 < n) {
            unsigned char c1 = s[i + 1], c2 = i + 2 < n ? s[i + 2] : 0;
            if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') { bpe_word(t, s + i, 2, out); i += 2; continue; }
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                bpe_word(t, s + i, 3, out); i += 3; continue;
            }
        }
        int len, k = cls_at(s, i, &len);
        if (s[i] == ' ' && i + 1 < n) {   /* " ?X+": a single space joins a following non-space run */
            int len2, k2 = cls_at(s, i + 1, &len2);
            if (k2 != CL_S) { k = k2; i += 1; len = len2; }
        }
        if (k != CL_S) {
            size_t j = i + (size_t)len;
            while (j < n) {
                int l;
                if (cls_at(s, j, &l) != k) break;
                j += (size_t)l;
            }
            bpe_word(t, s + start, j - start, out);
            i = j;
            continue;
        }
        /* whitespace run: \s+(?!\S) leaves its last character to the next word when one follows
         * (a run of one then falls through to \s+ and is taken whole) */
        size_t j = i, last = i;
        while (j < n) {
            int l;
            if (cls_at(s, j, &l) != CL_S) break;
            last = j;
            j += (size_t)l;
        }
        size_t end = (j < n && last > i) ? last : j;
        bpe_word(t, s + i, end - i, out);
        i = end;
    }
}

/* Pre-tokenization of one piece after the added-token splits, with ByteLevel's add_prefix_space. */
static void encode_words(tok_tokenizer *t, const unsigned char *s, size_t n, idvec *out) {
    if (!n) return;
    if (t->add_prefix_space && s[0] != ' ') {
        unsigned char *tmp = mq_malloc(n + 1);
        tmp[0] = ' ';
        memcpy(tmp + 1, s, n);
        pretokenize(t, tmp, n + 1, out);
        free(tmp);
        return;
    }
    pretokenize(t, s, n, out);
}

/* ------------------------------------------------------------------------ added-token splits */

static bool is_word_char_before(const unsigned char *s, size_t end) {   /* \w$ on s[..end] */
    if (!end) return false;
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80) i--;
    int l;
    return (uni_flags(utf8_get(s + i, &l)) & UNI_W) != 0;
}

static bool is_word_char_at(const unsigned char *s, size_t i, size_t n) {   /* ^\w on s[i..n] */
    if (i >= n) return false;
    int l;
    return (uni_flags(utf8_get(s + i, &l)) & UNI_W) != 0;
}

typedef void (*piece_fn)(tok_tokenizer *t, const unsigned char *s, size_t n, idvec *out);

/* HF's AddedVocabulary::find_matches: leftmost-longest matches, kept or dropped by single_word,
 * widened by lstrip/rstrip over White_Space; the text between matches goes to on_text. */
static void split_added(tok_tokenizer *t, const matcher *m, const unsigned char *s, size_t n, piece_fn on_text, idvec *out) {
    size_t start_offset = 0, pos = 0, ms, me;
    int k;
    while (trie_next(m, s, n, pos, &ms, &me, &k)) {
        pos = me;   /* matching resumes after the raw match, even when it is dropped */
        const added_token *a = &t->added[k];
        size_t start = ms, stop = me;
        if (a->single_word && (is_word_char_before(s, start) || is_word_char_at(s, stop, n))) continue;
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t b = ns - 1;
                while (b > 0 && (s[b] & 0xC0) == 0x80) b--;
                int l;
                if (!(uni_flags(utf8_get(s + b, &l)) & UNI_S)) break;
                ns = b;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                int l;
                if (!(uni_flags(utf8_get(s + stop, &l)) & UNI_S)) break;
                stop += (size_t)l;
            }
        }
        if (start_offset < start) on_text(t, s + start_offset, start - start_offset, out);
        iv_push(out, a->id);
        start_offset = stop;
    }
    if (start_offset < n) on_text(t, s + start_offset, n - start_offset, out);
}

static void encode_normalized(tok_tokenizer *t, const unsigned char *s, size_t n, idvec *out) {
    split_added(t, &t->norm_m, s, n, encode_words, out);
}

static void encode_raw(tok_tokenizer *t, const unsigned char *s, size_t n, idvec *out) {
    char *ns;
    size_t nl;
    if (t->nfc && uni_nfc((const char *)s, n, &ns, &nl)) {
        encode_normalized(t, (const unsigned char *)ns, nl, out);
        free(ns);
        return;
    }
    encode_normalized(t, s, n, out);
}

int tok_encode(tok_tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n_ids) {
    size_t bad = utf8_check(text, len);
    if (bad < len) return mq_fail("invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad, (unsigned char)text[bad]);
    idvec out = {0};
    split_added(t, &t->raw_m, (const unsigned char *)text, len, encode_raw, &out);
    if (!out.v) out.v = mq_malloc(sizeof *out.v);
    *ids = out.v;
    *n_ids = out.n;
    return 0;
}

char *tok_normalize(const tok_tokenizer *t, const char *text, size_t len, size_t *out_len) {
    char *ns;
    size_t nl;
    /* NFC reads code points: only valid UTF-8 goes through it (invalid text comes back as it is) */
    if (t->nfc && utf8_check(text, len) == len && uni_nfc(text, len, &ns, &nl)) { *out_len = nl; return ns; }
    ns = mq_malloc(len + 1);
    memcpy(ns, text, len);
    ns[len] = 0;
    *out_len = len;
    return ns;
}

/* ------------------------------------------------------------------------------------- decode */

char *tok_decode(const tok_tokenizer *t, const int32_t *ids, size_t n_ids, size_t *len) {
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || t->str_len[ids[i]] == UINT32_MAX) {
            mq_fail("%s: token id %d at position %zu is not in the vocabulary (size %d)", t->path, ids[i], i, t->n_ids);
            return NULL;
        }
        total += t->dec_len[ids[i]];
    }
    char *s = mq_malloc(total + 1);
    size_t o = 0;
    for (size_t i = 0; i < n_ids; i++) {
        memcpy(s + o, t->dec.p + t->dec_off[ids[i]], t->dec_len[ids[i]]);
        o += t->dec_len[ids[i]];
    }
    s[o] = 0;
    /* ids may cut a character in two: the bytes are joined first, then made valid the way
     * Rust's from_utf8_lossy does */
    if (utf8_check(s, o) < o) {
        char *fixed = utf8_replace_invalid(s, o, &o, NULL);
        free(s);
        s = fixed;
    }
    if (len) *len = o;
    return s;
}
