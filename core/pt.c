/* PyTorch checkpoint (torch.save zip) reader, see pt.h.
 * Two small parts: a zip directory reader for stored entries (zip64 included, since multi-GB
 * checkpoints need it), and a pickle machine that knows the opcodes torch.save emits and builds
 * plain values; the only "calls" it performs are the few torch rebuild functions it recognises by
 * name, interpreted here, so a hostile file can at worst be refused. Every read is bounds-checked. */
#include "pt.h"
#include "err.h"
#include <stdlib.h>
#include <string.h>

/* ---- zip ---- */

typedef struct {
    const char *name;
    size_t name_len, off, size;
} zent;

static uint32_t rd16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const unsigned char *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static int zip_entries(const unsigned char *b, size_t len, const char *path, zent **out, int *nout) {
    *out = NULL;
    if (len < 22) return mq_fail("%s: %zu bytes, too small for a zip archive", path, len);
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0, e = (size_t)-1;
    for (size_t i = len - 22 + 1; i-- > lo;)
        if (rd32(b + i) == 0x06054b50) { e = i; break; }
    if (e == (size_t)-1)
        return mq_fail("%s: not a zip archive (no end of central directory): a legacy torch.save file is not supported", path);
    uint64_t count = rd16(b + e + 10), cd_size = rd32(b + e + 12), cd_off = rd32(b + e + 16);
    if (count == 0xffff || cd_size == 0xffffffff || cd_off == 0xffffffff) {
        if (e < 20 || rd32(b + e - 20) != 0x07064b50) return mq_fail("%s: zip64 end of central directory locator missing", path);
        uint64_t e64 = rd64(b + e - 20 + 8);
        if (len < 56 || e64 > len - 56 || rd32(b + e64) != 0x06064b50) return mq_fail("%s: bad zip64 end of central directory", path);
        count = rd64(b + e64 + 32);
        cd_size = rd64(b + e64 + 40);
        cd_off = rd64(b + e64 + 48);
    }
    if (cd_off > len || cd_size > len - cd_off) return mq_fail("%s: zip central directory lies outside the file", path);
    if (count > cd_size / 46) return mq_fail("%s: zip entry count %llu does not fit the central directory", path, (unsigned long long)count);
    zent *z = mq_malloc((size_t)(count ? count : 1) * sizeof *z);
    size_t p = (size_t)cd_off, end = (size_t)(cd_off + cd_size);
    for (uint64_t i = 0; i < count; i++) {
        if (end - p < 46 || rd32(b + p) != 0x02014b50) { free(z); return mq_fail("%s: bad zip central directory entry %llu", path, (unsigned long long)i); }
        uint32_t method = rd16(b + p + 10), nlen = rd16(b + p + 28), xlen = rd16(b + p + 30), clen = rd16(b + p + 32);
        uint64_t csize = rd32(b + p + 20), usize = rd32(b + p + 24), loff = rd32(b + p + 42);
        if (end - p - 46 < (size_t)nlen + xlen + clen) { free(z); return mq_fail("%s: zip central directory entry %llu overruns", path, (unsigned long long)i); }
        const unsigned char *name = b + p + 46, *x = name + nlen, *xe = x + xlen;
        /* zip64 extra field: 8-byte values for exactly the fields saturated above, in this order */
        while (xe - x >= 4) {
            uint32_t id = rd16(x), sz = rd16(x + 2);
            if ((size_t)(xe - x - 4) < sz) break;
            if (id == 1) {
                const unsigned char *q = x + 4, *qe = q + sz;
                if (usize == 0xffffffff && qe - q >= 8) { usize = rd64(q); q += 8; }
                if (csize == 0xffffffff && qe - q >= 8) { csize = rd64(q); q += 8; }
                if (loff == 0xffffffff && qe - q >= 8) { loff = rd64(q); q += 8; }
            }
            x += 4 + sz;
        }
        if (method != 0) {
            free(z);
            return mq_fail("%s: zip entry '%.*s' is compressed (method %u): only stored entries are supported", path, (int)nlen, name, method);
        }
        if (csize != usize || len < 30 || loff > len - 30 || rd32(b + loff) != 0x04034b50) {
            free(z);
            return mq_fail("%s: zip entry '%.*s': bad sizes or local header", path, (int)nlen, name);
        }
        uint64_t data = loff + 30 + rd16(b + loff + 26) + rd16(b + loff + 28);
        if (data > len || usize > len - data) {
            free(z);
            return mq_fail("%s: zip entry '%.*s' extends past the end of the file", path, (int)nlen, name);
        }
        z[i] = (zent){(const char *)name, nlen, (size_t)data, (size_t)usize};
        p += 46 + (size_t)nlen + xlen + clen;
    }
    *out = z;
    *nout = (int)count;
    return 0;
}

static const zent *zip_find(const zent *z, int n, const char *prefix, size_t plen, const char *rest) {
    size_t rlen = strlen(rest);
    for (int i = 0; i < n; i++)
        if (z[i].name_len == plen + rlen && !memcmp(z[i].name, prefix, plen) && !memcmp(z[i].name + plen, rest, rlen)) return &z[i];
    return NULL;
}

/* ---- pickle ---- */

typedef enum { P_NONE, P_BOOL, P_INT, P_FLOAT, P_STR, P_TUPLE, P_LIST, P_DICT, P_GLOBAL, P_STORAGE, P_TENSOR, P_OBJ } pkind;
static const char *kind_name[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage", "tensor", "object"};

typedef struct pobj pobj;
struct pobj {
    pkind kind;
    int64_t i;              /* INT, BOOL; TENSOR: 1 if not contiguous */
    char *s;                /* STR; GLOBAL "module name"; STORAGE key; OBJ the callable's name */
    pobj **v;               /* TUPLE/LIST items; DICT keys and values interleaved */
    int n, cap;
    int dtype;              /* STORAGE: mq_dtype, -1 if not one we read */
    pobj *storage;          /* TENSOR */
    int64_t offset;         /* TENSOR: storage offset in elements */
    int ndim;
    int64_t shape[MQ_MAX_DIMS];
};

typedef struct {
    const char *path;
    const unsigned char *b;
    size_t len, pos;
    pobj **all; int nall, capall;   /* every object made, for freeing */
    pobj **stack; int sp, capstack;
    int *marks; int nmarks, capmarks;
    pobj **memo; size_t nmemo;      /* slots; memo_count of them are set (MEMOIZE's next key) */
    size_t memo_count;
} pvm;

#define GROW(arr, n, cap) MQ_GROW(arr, cap, (size_t)(n) + 1, 16)

static pobj *mk(pvm *m, pkind k) {
    pobj *o = mq_calloc(1, sizeof *o);
    o->kind = k;
    GROW(m->all, m->nall, m->capall);
    m->all[m->nall++] = o;
    return o;
}

static void add_item(pobj *c, pobj *x) {
    GROW(c->v, c->n, c->cap);
    c->v[c->n++] = x;
}

static pobj *mk_str(pvm *m, const unsigned char *s, size_t n) {
    pobj *o = mk(m, P_STR);
    o->s = mq_malloc(n + 1);
    memcpy(o->s, s, n);
    o->s[n] = 0;
    return o;
}

static int bad(pvm *m, const char *what) {
    return mq_fail("%s: data.pkl: %s at byte %zu", m->path, what, m->pos);
}

static int take(pvm *m, size_t k, const unsigned char **p) {
    if (m->len - m->pos < k) return bad(m, "truncated pickle");
    *p = m->b + m->pos;
    m->pos += k;
    return 0;
}

static void push(pvm *m, pobj *o) {
    GROW(m->stack, m->sp, m->capstack);
    m->stack[m->sp++] = o;
}

static pobj *pop(pvm *m) {
    if (m->sp <= (m->nmarks ? m->marks[m->nmarks - 1] : 0)) { bad(m, "pickle stack underflow"); return NULL; }
    return m->stack[--m->sp];
}

/* Items above the last mark, as a new container of kind k; the mark is removed. */
static pobj *pop_to_mark(pvm *m, pkind k) {
    if (!m->nmarks) { bad(m, "pickle MARK missing"); return NULL; }
    int at = m->marks[--m->nmarks];
    pobj *c = mk(m, k);
    for (int i = at; i < m->sp; i++) add_item(c, m->stack[i]);
    m->sp = at;
    return c;
}

static int memo_put(pvm *m, size_t idx) {
    if (!m->sp) return bad(m, "pickle memo put on an empty stack");
    if (idx > (1u << 22)) return bad(m, "pickle memo index too large");
    if (idx >= m->nmemo) {
        size_t nn = idx + 1 > 2 * m->nmemo ? idx + 1 : 2 * m->nmemo;
        pobj **nm = realloc(m->memo, nn * sizeof *nm);
        if (!nm) mq_die("out of memory reading a pickle");
        memset(nm + m->nmemo, 0, (nn - m->nmemo) * sizeof *nm);
        m->memo = nm;
        m->nmemo = nn;
    }
    if (!m->memo[idx]) m->memo_count++;
    m->memo[idx] = m->stack[m->sp - 1];
    return 0;
}

static int memo_get(pvm *m, size_t idx) {
    if (idx >= m->nmemo || !m->memo[idx]) return bad(m, "pickle memo key not found");
    push(m, m->memo[idx]);
    return 0;
}

static int storage_dtype(const char *global) {
    static const struct { const char *name; mq_dtype t; } map[] = {
        {"torch FloatStorage", MQ_F32}, {"torch HalfStorage", MQ_F16}, {"torch BFloat16Storage", MQ_BF16},
        {"torch CharStorage", MQ_I8},   {"torch ByteStorage", MQ_U8},  {"torch IntStorage", MQ_I32},
        {"torch LongStorage", MQ_I64},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(global, map[i].name)) return (int)map[i].t;
    return -1;
}

/* ('storage', torch.XStorage, key, location, numel) -> STORAGE */
static pobj *persistent_load(pvm *m, pobj *pid) {
    if (pid->kind != P_TUPLE || pid->n < 3 || pid->v[0]->kind != P_STR || strcmp(pid->v[0]->s, "storage") ||
        pid->v[1]->kind != P_GLOBAL || pid->v[2]->kind != P_STR) {
        bad(m, "persistent id is not ('storage', type, key, ...)");
        return NULL;
    }
    pobj *s = mk(m, P_STORAGE);
    s->dtype = storage_dtype(pid->v[1]->s);
    s->s = pid->v[2]->s;      /* owned by the STR object */
    s->storage = pid->v[1];   /* the type, for messages */
    return s;
}

static int int_tuple(const pobj *t, int64_t *out, int max) {
    if (t->kind != P_TUPLE || t->n > max) return -1;
    for (int i = 0; i < t->n; i++) {
        if (t->v[i]->kind != P_INT) return -1;
        out[i] = t->v[i]->i;
    }
    return t->n;
}

/* The callables torch.save's pickles use; anything else becomes an inert object. */
static pobj *reduce(pvm *m, pobj *fn, pobj *args) {
    const char *name = fn->kind == P_GLOBAL ? fn->s : "";
    if (!strcmp(name, "collections OrderedDict")) return mk(m, P_DICT);
    if (!strcmp(name, "torch._utils _rebuild_tensor_v2") || !strcmp(name, "torch._utils _rebuild_tensor")) {
        /* (storage, storage_offset, size, stride, ...) */
        int64_t stride[MQ_MAX_DIMS];
        if (args->kind != P_TUPLE || args->n < 3 || args->v[0]->kind != P_STORAGE || args->v[1]->kind != P_INT) {
            bad(m, "_rebuild_tensor_v2 with unexpected arguments");
            return NULL;
        }
        pobj *t = mk(m, P_TENSOR);
        t->storage = args->v[0];
        t->offset = args->v[1]->i;
        t->ndim = int_tuple(args->v[2], t->shape, MQ_MAX_DIMS);
        int ns = args->n > 3 ? int_tuple(args->v[3], stride, MQ_MAX_DIMS) : t->ndim;
        if (t->ndim < 0 || ns != t->ndim || t->offset < 0) { bad(m, "tensor with a bad size, stride or offset"); return NULL; }
        /* row-major contiguous, dims of size 1 aside (their stride is arbitrary) */
        int64_t want = 1;
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (t->shape[d] < 0) { bad(m, "tensor with a negative size"); return NULL; }
            if (args->n > 3 && t->shape[d] != 1 && stride[d] != want) t->i = 1;
            if (__builtin_mul_overflow(want, t->shape[d], &want)) { bad(m, "tensor size overflows"); return NULL; }
        }
        return t;
    }
    if (!strcmp(name, "torch._utils _rebuild_parameter") || !strcmp(name, "torch._utils _rebuild_parameter_with_state")) {
        if (args->kind == P_TUPLE && args->n >= 1 && args->v[0]->kind == P_TENSOR) return args->v[0];
        bad(m, "_rebuild_parameter without a tensor");
        return NULL;
    }
    pobj *o = mk(m, P_OBJ);
    o->s = fn->kind == P_GLOBAL ? fn->s : NULL;
    return o;
}

static int64_t read_int_le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    if (n < 8 && n && (p[n - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    return (int64_t)v;
}

/* Runs the pickle; returns the top-level object or NULL. */
static pobj *run(pvm *m) {
    const unsigned char *p = NULL;
    for (;;) {
        if (take(m, 1, &p)) return NULL;
        unsigned op = *p;
        pobj *a, *b, *c;
        switch (op) {
        case 0x80: if (take(m, 1, &p)) return NULL; break;                       /* PROTO */
        case 0x95: if (take(m, 8, &p)) return NULL; break;                       /* FRAME */
        case '.': return pop(m);                                                  /* STOP */
        case '(': GROW(m->marks, m->nmarks, m->capmarks); m->marks[m->nmarks++] = m->sp; break;
        case '}': push(m, mk(m, P_DICT)); break;
        case ']': push(m, mk(m, P_LIST)); break;
        case ')': push(m, mk(m, P_TUPLE)); break;
        case 'N': push(m, mk(m, P_NONE)); break;
        case 0x88: case 0x89: a = mk(m, P_BOOL); a->i = op == 0x88; push(m, a); break;
        case 't': if (!(a = pop_to_mark(m, P_TUPLE))) return NULL; push(m, a); break;
        case 'l': if (!(a = pop_to_mark(m, P_LIST))) return NULL; push(m, a); break;
        case 0x85: case 0x86: case 0x87: {                                        /* TUPLE1..3 */
            int k = (int)op - 0x84;
            if (m->sp - (m->nmarks ? m->marks[m->nmarks - 1] : 0) < k) { bad(m, "pickle stack underflow"); return NULL; }
            a = mk(m, P_TUPLE);
            for (int i = m->sp - k; i < m->sp; i++) add_item(a, m->stack[i]);
            m->sp -= k;
            push(m, a);
            break;
        }
        case 'q': if (take(m, 1, &p) || memo_put(m, p[0])) return NULL; break;
        case 'r': if (take(m, 4, &p) || memo_put(m, rd32(p))) return NULL; break;
        case 0x94: if (memo_put(m, m->memo_count)) return NULL; break;            /* MEMOIZE */
        case 'h': if (take(m, 1, &p) || memo_get(m, p[0])) return NULL; break;
        case 'j': if (take(m, 4, &p) || memo_get(m, rd32(p))) return NULL; break;
        case 'K': if (take(m, 1, &p)) return NULL; a = mk(m, P_INT); a->i = p[0]; push(m, a); break;
        case 'M': if (take(m, 2, &p)) return NULL; a = mk(m, P_INT); a->i = rd16(p); push(m, a); break;
        case 'J': if (take(m, 4, &p)) return NULL; a = mk(m, P_INT); a->i = (int32_t)rd32(p); push(m, a); break;
        case 0x8a: {                                                              /* LONG1 */
            if (take(m, 1, &p)) return NULL;
            size_t n = p[0];
            if (n > 8) { bad(m, "integer wider than 64 bits"); return NULL; }
            if (take(m, n, &p)) return NULL;
            a = mk(m, P_INT);
            a->i = read_int_le(p, n);
            push(m, a);
            break;
        }
        case 'G': if (take(m, 8, &p)) return NULL; push(m, mk(m, P_FLOAT)); break;  /* BINFLOAT: value unused */
        case 'X': case 'T': case 0x8c: case 'U': case 0x8d: case 'B': case 'C': case 0x8e: {
            /* BINUNICODE, BINSTRING, SHORT_BINUNICODE, SHORT_BINSTRING, BINUNICODE8, BINBYTES, SHORT_BINBYTES, BINBYTES8 */
            size_t w = (op == 0x8c || op == 'U' || op == 'C') ? 1 : (op == 0x8d || op == 0x8e) ? 8 : 4;
            if (take(m, w, &p)) return NULL;
            uint64_t n = w == 1 ? p[0] : w == 4 ? rd32(p) : rd64(p);
            if (n > m->len - m->pos) { bad(m, "string runs past the end of the pickle"); return NULL; }
            if (take(m, (size_t)n, &p)) return NULL;
            push(m, mk_str(m, p, (size_t)n));
            break;
        }
        case 'c': {                                                               /* GLOBAL "module\nname\n" */
            const unsigned char *s = m->b + m->pos, *nl1 = memchr(s, '\n', m->len - m->pos);
            const unsigned char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(m->b + m->len - nl1 - 1)) : NULL;
            if (!nl2) { bad(m, "unterminated GLOBAL"); return NULL; }
            a = mk_str(m, s, (size_t)(nl2 - s));
            a->s[nl1 - s] = ' ';
            a->kind = P_GLOBAL;
            m->pos = (size_t)(nl2 + 1 - m->b);
            push(m, a);
            break;
        }
        case 0x93: {                                                              /* STACK_GLOBAL */
            if (!(b = pop(m)) || !(a = pop(m))) return NULL;
            if (a->kind != P_STR || b->kind != P_STR) { bad(m, "STACK_GLOBAL of non-strings"); return NULL; }
            size_t la = strlen(a->s), lb = strlen(b->s);
            c = mk(m, P_GLOBAL);
            c->s = mq_malloc(la + lb + 2);
            memcpy(c->s, a->s, la);
            c->s[la] = ' ';
            memcpy(c->s + la + 1, b->s, lb + 1);
            push(m, c);
            break;
        }
        case 'Q':                                                                 /* BINPERSID */
            if (!(a = pop(m)) || !(b = persistent_load(m, a))) return NULL;
            push(m, b);
            break;
        case 'R': case 0x81:                                                      /* REDUCE, NEWOBJ */
            if (!(b = pop(m)) || !(a = pop(m))) return NULL;
            if (b->kind != P_TUPLE) { bad(m, "REDUCE arguments are not a tuple"); return NULL; }
            if (!(c = reduce(m, a, b))) return NULL;
            push(m, c);
            break;
        case 'b':                                                                 /* BUILD: state is not needed */
            if (!pop(m) || !m->sp) { bad(m, "BUILD without an object"); return NULL; }
            break;
        case 's':                                                                 /* SETITEM */
            if (!(b = pop(m)) || !(a = pop(m))) return NULL;
            if (!m->sp) { bad(m, "SETITEM without a dict"); return NULL; }
            c = m->stack[m->sp - 1];
            if (c->kind == P_DICT) { add_item(c, a); add_item(c, b); }
            break;
        case 'u': case 'e': {                                                     /* SETITEMS, APPENDS */
            if (!(a = pop_to_mark(m, P_LIST))) return NULL;
            if (!m->sp) { bad(m, "SETITEMS/APPENDS without a container"); return NULL; }
            c = m->stack[m->sp - 1];
            if (op == 'u' && a->n % 2) { bad(m, "SETITEMS with an odd number of items"); return NULL; }
            if ((op == 'u' && c->kind == P_DICT) || (op == 'e' && c->kind == P_LIST))
                for (int i = 0; i < a->n; i++) add_item(c, a->v[i]);
            break;
        }
        case 'a':                                                                 /* APPEND */
            if (!(a = pop(m)) || !m->sp) { bad(m, "APPEND without a list"); return NULL; }
            if (m->stack[m->sp - 1]->kind == P_LIST) add_item(m->stack[m->sp - 1], a);
            break;
        case '0': if (!pop(m)) return NULL; break;                                /* POP */
        case '1': if (!pop_to_mark(m, P_LIST)) return NULL; break;                /* POP_MARK */
        case '2': if (!m->sp) { bad(m, "DUP on an empty stack"); return NULL; } push(m, m->stack[m->sp - 1]); break;
        default: {
            char what[64];
            snprintf(what, sizeof what, "unsupported pickle opcode 0x%02x", op);
            m->pos--;
            bad(m, what);
            return NULL;
        }
        }
    }
}

static void vm_free(pvm *m) {
    for (int i = 0; i < m->nall; i++) {
        free(m->all[i]->v);
        if (m->all[i]->kind == P_STR || m->all[i]->kind == P_GLOBAL) free(m->all[i]->s);
        free(m->all[i]);
    }
    free(m->all);
    free(m->stack);
    free(m->marks);
    free(m->memo);
}

void pt_free(pt_tensor *t, int n) {
    for (int i = 0; t && i < n; i++) free(t[i].name);
    free(t);
}

int pt_parse(const unsigned char *buf, size_t len, const char *path, pt_tensor **out, int *nout) {
    *out = NULL;
    *nout = 0;
    zent *z = NULL;
    int nz = 0;
    if (zip_entries(buf, len, path, &z, &nz)) return -1;
    /* <prefix>data.pkl, where the prefix is the archive's folder ("archive/" or the file's stem) */
    const zent *pkl = NULL;
    for (int i = 0; i < nz; i++)
        if (z[i].name_len >= 8 && !memcmp(z[i].name + z[i].name_len - 8, "data.pkl", 8)) {
            if (pkl) { free(z); return mq_fail("%s: more than one data.pkl in the archive", path); }
            pkl = &z[i];
        }
    if (!pkl) { free(z); return mq_fail("%s: no data.pkl in the zip archive: not a torch.save checkpoint", path); }
    const char *prefix = pkl->name;
    size_t plen = pkl->name_len - 8;
    const zent *bo = zip_find(z, nz, prefix, plen, "byteorder");
    if (bo && !(bo->size == 6 && !memcmp(buf + bo->off, "little", 6))) {
        free(z);
        return mq_fail("%s: byteorder is not 'little': big-endian checkpoints are not supported", path);
    }

    pvm m = {.path = path, .b = buf + pkl->off, .len = pkl->size};
    pobj *root = run(&m);
    int rc = root ? 0 : -1;
    if (!rc && root->kind != P_DICT)
        rc = mq_fail("%s: data.pkl holds a %s, expected a state dict (name -> tensor)", path, kind_name[root->kind]);
    pt_tensor *t = NULL;
    int n = 0;
    if (!rc) t = mq_calloc((size_t)(root->n / 2 + 1), sizeof *t);
    for (int i = 0; !rc && i + 1 < root->n; i += 2) {
        const pobj *k = root->v[i], *v = root->v[i + 1];
        if (k->kind != P_STR) { rc = mq_fail("%s: state dict key %d is a %s, not a string", path, i / 2, kind_name[k->kind]); break; }
        if (v->kind != P_TENSOR) { rc = mq_fail("%s: state dict entry '%s' is a %s, not a tensor", path, k->s, kind_name[v->kind]); break; }
        const pobj *s = v->storage;
        if (s->dtype < 0) { rc = mq_fail("%s: tensor '%s': unsupported storage type '%s'", path, k->s, s->storage->s); break; }
        if (v->i) { rc = mq_fail("%s: tensor '%s' is not contiguous: not supported", path, k->s); break; }
        char rest[300];
        snprintf(rest, sizeof rest, "data/%s", s->s);
        const zent *d = zip_find(z, nz, prefix, plen, rest);
        if (!d) { rc = mq_fail("%s: tensor '%s': storage '%s' missing from the archive", path, k->s, rest); break; }
        pt_tensor *o = &t[n];
        o->dtype = (mq_dtype)s->dtype;
        o->ndim = v->ndim;
        o->numel = 1;
        for (int j = 0; j < v->ndim; j++) { o->shape[j] = v->shape[j]; o->numel *= v->shape[j]; }
        size_t es = mq_dtype_size(o->dtype);
        uint64_t first, count;
        if (__builtin_mul_overflow((uint64_t)v->offset, es, &first) || __builtin_mul_overflow((uint64_t)o->numel, es, &count) ||
            first > d->size || count > d->size - first) {
            rc = mq_fail("%s: tensor '%s': offset %lld + %lld elements exceed its storage '%s' (%zu bytes)", path, k->s,
                         (long long)v->offset, (long long)o->numel, rest, d->size);
            break;
        }
        o->offset = d->off + (size_t)first;
        o->nbytes = (size_t)count;
        o->name = strdup(k->s);
        n++;
    }
    vm_free(&m);
    free(z);
    if (rc) { pt_free(t, n); return -1; }
    *out = t;
    *nout = n;
    return 0;
}
