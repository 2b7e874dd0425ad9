/* UTF-8 validation and repair, and NFC over the generated Unicode tables (see unicode.h).
 * NFC works segment by segment: text is copied through untouched up to a "hot" character (one NFC
 * may change or join to what precedes); from the last non-hot character before it up to the next
 * non-hot character is decomposed, put in canonical order and recomposed (UAX #15). */
#include "datasets/unicode.h"
#include <stdlib.h>
#include <string.h>
#include "core/err.h"

/* ---------------------------------------------------------------------------------------- UTF-8 */

int utf8_seq_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    if (c < 0x80) return 1;
    if (c < 0xC2 || c > 0xF4) return 0;
    if (c < 0xE0) return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (c == 0xE0) lo = 0xA0;        /* overlong */
        else if (c == 0xED) hi = 0x9F;   /* surrogates */
        return avail >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c == 0xF0) lo = 0x90;            /* overlong */
    else if (c == 0xF4) hi = 0x8F;       /* above U+10FFFF */
    return avail >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
}

size_t utf8_check(const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            /* ASCII runs dominate: test 8 bytes at a time */
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, u + i, 8);
                if (w & 0x8080808080808080ULL) break;
                i += 8;
            }
            while (i < len && u[i] < 0x80) i++;
            continue;
        }
        int n = utf8_seq_len(u + i, len - i);
        if (!n) return i;
        i += (size_t)n;
    }
    return len;
}

int utf8_put(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12)); o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18)); o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of the maximal subpart of an ill-formed sequence at s: the lead byte plus the continuation
 * bytes that were still acceptable. One U+FFFD replaces that many bytes. */
static size_t bad_len(const unsigned char *s, size_t avail) {
    unsigned c = s[0], lo = 0x80, hi = 0xBF;
    if (c < 0xC2 || c > 0xF4) return 1;
    size_t need = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (c == 0xE0) lo = 0xA0; else if (c == 0xED) hi = 0x9F;
    else if (c == 0xF0) lo = 0x90; else if (c == 0xF4) hi = 0x8F;
    size_t k = 1;
    if (avail > 1 && s[1] >= lo && s[1] <= hi) {
        k = 2;
        while (k < need && k < avail && (s[k] & 0xC0) == 0x80) k++;
    }
    return k;
}

char *utf8_replace_invalid(const char *s, size_t len, size_t *out_len, size_t *n_bad) {
    /* worst case: every byte becomes 3 bytes of U+FFFD */
    char *out = mq_malloc(len * 3 + 1);
    size_t o = 0, i = 0, bad = 0;
    while (i < len) {
        size_t ok = utf8_check(s + i, len - i);
        memcpy(out + o, s + i, ok);
        o += ok; i += ok;
        if (i == len) break;
        i += bad_len((const unsigned char *)s + i, len - i);
        o += (size_t)utf8_put(0xFFFD, out + o);
        bad++;
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    if (n_bad) *n_bad = bad;
    return out;
}

/* ------------------------------------------------------------------------------------------ NFC */

enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7,
       LCOUNT = 19, VCOUNT = 21, TCOUNT = 28, NCOUNT = VCOUNT * TCOUNT, SCOUNT = LCOUNT * NCOUNT };

int uni_ccc_of(uint32_t cp) {
    int lo = 0, hi = uni_n_ccc - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        uint32_t c = uni_ccc[mid] >> 8;
        if (c == cp) return (int)(uni_ccc[mid] & 0xFF);
        if (c < cp) lo = mid + 1; else hi = mid - 1;
    }
    return 0;
}

static const uni_decomp *find_decomp(uint32_t cp) {
    int lo = 0, hi = uni_n_decomps - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (uni_decomps[mid].cp == cp) return &uni_decomps[mid];
        if (uni_decomps[mid].cp < cp) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

/* The primary composite of (a, b), or 0 when there is none (U+0000 is never a composite). */
static uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a - LBASE < LCOUNT && b - VBASE < VCOUNT)
        return SBASE + ((a - LBASE) * VCOUNT + (b - VBASE)) * TCOUNT;
    if (a - SBASE < SCOUNT && (a - SBASE) % TCOUNT == 0 && b - (TBASE + 1) < TCOUNT - 1)
        return a + (b - TBASE);
    uint64_t key = ((uint64_t)a << 21) | b;
    int lo = 0, hi = uni_n_pairs - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (uni_pairs[mid].key == key) return uni_pairs[mid].cp;
        if (uni_pairs[mid].key < key) lo = mid + 1; else hi = mid - 1;
    }
    return 0;
}

typedef struct { uint32_t *cp; uint8_t *cc; size_t n, cap; } cpbuf;

static void cp_push(cpbuf *b, uint32_t c) {
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        uint32_t *ncp = realloc(b->cp, b->cap * sizeof *ncp);
        uint8_t *ncc = realloc(b->cc, b->cap);
        if (!ncp || !ncc) mq_die("out of memory in NFC");
        b->cp = ncp; b->cc = ncc;
    }
    b->cp[b->n++] = c;
}

static void decompose(uint32_t c, cpbuf *b) {
    if (c - SBASE < SCOUNT) {
        uint32_t s = c - SBASE;
        cp_push(b, LBASE + s / NCOUNT);
        cp_push(b, VBASE + (s % NCOUNT) / TCOUNT);
        if (s % TCOUNT) cp_push(b, TBASE + s % TCOUNT);
        return;
    }
    const uni_decomp *d = c >= 0xC0 ? find_decomp(c) : NULL;
    if (!d) { cp_push(b, c); return; }
    for (int i = 0; i < d->len; i++) cp_push(b, uni_decomp_pool[d->off + i]);
}

/* Stable sort of one run of non-starters by combining class: insertion sort for the usual short
 * run, counting sort (classes are < 256) so that a long run of marks stays linear. */
static void sort_run(uint32_t *cp, uint8_t *cc, size_t n) {
    if (n <= 16) {
        for (size_t i = 1; i < n; i++) {
            uint32_t c = cp[i]; uint8_t k = cc[i];
            size_t j = i;
            for (; j > 0 && cc[j - 1] > k; j--) { cp[j] = cp[j - 1]; cc[j] = cc[j - 1]; }
            cp[j] = c; cc[j] = k;
        }
        return;
    }
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++) count[cc[i] + 1]++;
    for (int k = 1; k < 257; k++) count[k] += count[k - 1];
    uint32_t *tmp = mq_malloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) tmp[count[cc[i]]++] = cp[i];
    memcpy(cp, tmp, n * sizeof *tmp);
    free(tmp);
    for (size_t i = 0; i < n; i++) cc[i] = (uint8_t)uni_ccc_of(cp[i]);
}

/* Canonical composition in place (UAX #15): a character joins the last starter unless a character
 * in between has class 0 or a class >= its own. Returns the new length. */
static size_t compose(uint32_t *cp, uint8_t *cc, size_t n) {
    if (!n) return 0;
    size_t starter = 0, w = 1;
    int last = cc[0] ? 256 : 0;   /* leading non-starters never compose */
    for (size_t r = 1; r < n; r++) {
        uint32_t c = cp[r];
        int k = cc[r];
        uint32_t comp = (last < k || last == 0) ? compose_pair(cp[starter], c) : 0;
        if (comp) { cp[starter] = comp; continue; }
        if (k == 0) starter = w;
        last = k;
        cp[w] = c; cc[w] = (uint8_t)k; w++;
    }
    return w;
}

typedef struct { char *p; size_t n, cap; } bytebuf;

static void bb_append(bytebuf *b, const void *src, size_t n) {
    MQ_GROW(b->p, b->cap, b->n + n + 1, 4096);
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

/* NFC of the segment s[0..len) (starts at a segment boundary or the text start, ends before one). */
static void nfc_segment(const unsigned char *s, size_t len, cpbuf *cb, bytebuf *out, int *changed) {
    cb->n = 0;
    for (size_t i = 0; i < len;) {
        int n;
        decompose(utf8_get(s + i, &n), cb);
        i += (size_t)n;
    }
    for (size_t i = 0; i < cb->n; i++) cb->cc[i] = (uint8_t)uni_ccc_of(cb->cp[i]);
    for (size_t i = 0; i < cb->n;) {
        if (!cb->cc[i]) { i++; continue; }
        size_t j = i;
        while (j < cb->n && cb->cc[j]) j++;
        sort_run(cb->cp + i, cb->cc + i, j - i);
        i = j;
    }
    size_t n = compose(cb->cp, cb->cc, cb->n);
    size_t start = out->n;
    for (size_t i = 0; i < n; i++) {
        char tmp[4];
        bb_append(out, tmp, (size_t)utf8_put(cb->cp[i], tmp));
    }
    if (out->n - start != len || memcmp(out->p + start, s, len)) *changed = 1;
}

int uni_nfc(const char *s, size_t len, char **out, size_t *out_len) {
    const unsigned char *u = (const unsigned char *)s;
    char lead[4];
    utf8_put(uni_first_hot, lead);
    /* every byte below `cold` is ASCII, a continuation byte, or the lead of a character below the
     * first hot one, so the scan only decodes characters from there up */
    const unsigned char cold = (unsigned char)lead[0];
    bytebuf ob = {0};
    cpbuf cb = {0};
    int changed = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i, last = i;   /* last: start of the last non-hot character seen */
        while (j < len) {
            unsigned char b = u[j];
            if (b < cold) {
                if (b < 0x80 || b >= 0xC0) last = j;
                j++;
                continue;
            }
            int n;
            uint32_t c = utf8_get(u + j, &n);
            if (uni_flags(c) & UNI_HOT) break;
            last = j;
            j += (size_t)n;
        }
        if (j == len) {
            if (ob.p) bb_append(&ob, s + i, len - i);
            break;
        }
        /* hot character at j: its segment starts at the last non-hot character before it */
        size_t seg = j > i ? last : j;
        bb_append(&ob, s + i, seg - i);   /* i == 0 at the first hot character */
        size_t k = j;
        while (k < len) {
            int n;
            uint32_t c = utf8_get(u + k, &n);
            if (!(uni_flags(c) & UNI_HOT)) break;
            k += (size_t)n;
        }
        nfc_segment(u + seg, k - seg, &cb, &ob, &changed);
        i = k;
    }
    free(cb.cp);
    free(cb.cc);
    if (!changed) { free(ob.p); return 0; }
    ob.p[ob.n] = 0;
    *out = ob.p;
    *out_len = ob.n;
    return 1;
}
