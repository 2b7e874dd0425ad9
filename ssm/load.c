/* Checkpoint loading for the CPU model (see model.h): reads config.json, opens the safetensors
 * checkpoint, checks that the tensors are exactly the ones the config implies (presence, shape,
 * float dtype, nothing extra), then converts them all to FP32 into one arena and precomputes
 * A = -exp(A_log). Accepts the transformers layout (backbone.embeddings) and the state-spaces one
 * (backbone.embedding); everything else is named identically in both. */
#include "ssm/model.h"
#include "core/err.h"
#include "core/st.h"
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN 160
#define ARENA_ALIGN 16 /* floats: every array starts on a 64-byte boundary */

/* One tensor the model expects. */
typedef struct {
    char name[NAME_MAX_LEN];
    int ndim;
    int64_t shape[3];
    float **dst;           /* where the FP32 copy's address goes; NULL: validated, not loaded */
    const st_tensor *t;    /* found in the checkpoint */
} want;

typedef struct {
    want *w;
    int n, cap;
} want_list;

__attribute__((format(printf, 7, 8)))
static void add(want_list *l, float **dst, int ndim, int64_t d0, int64_t d1, int64_t d2, const char *fmt, ...) {
    MQ_GROW(l->w, l->cap, (size_t)l->n + 1, 256);
    want *w = &l->w[l->n++];
    memset(w, 0, sizeof *w);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->name, sizeof w->name, fmt, ap);
    va_end(ap);
    w->ndim = ndim;
    w->shape[0] = d0;
    w->shape[1] = d1;
    w->shape[2] = d2;
    w->dst = dst;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static int64_t numel(const want *w) {
    int64_t n = 1;
    for (int i = 0; i < w->ndim; i++) n *= w->shape[i];
    return n;
}

/* The tensor list a config implies. `emb` is the embedding's name in this layout. */
static void expected_tensors(mq_model *m, want_list *l, const char *emb, int want_lm_head) {
    const mq_config *c = &m->cfg;
    int64_t D = c->d_model, V = c->vocab_size, Di = c->d_inner, N = c->d_state, K = c->d_conv;
    int64_t P = cfg_in_proj_dim(c), C = cfg_conv_dim(c), H = c->n_heads, R = c->dt_rank;
    add(l, &m->embed, 2, V, D, 0, "%s", emb);
    add(l, &m->norm_f, 1, D, 0, 0, "backbone.norm_f.weight");
    /* when tied, a stored lm_head is checked but the embedding is used, as transformers does */
    if (want_lm_head) add(l, c->tie_embeddings ? NULL : &m->lm_head, 2, V, D, 0, "lm_head.weight");
    for (int i = 0; i < c->n_layer; i++) {
        mq_layer *L = &m->layers[i];
        const char *p = "backbone.layers";
        add(l, &L->norm_w, 1, D, 0, 0, "%s.%d.norm.weight", p, i);
        add(l, &L->in_proj, 2, P, D, 0, "%s.%d.mixer.in_proj.weight", p, i);
        if (c->proj_bias) add(l, &L->in_proj_b, 1, P, 0, 0, "%s.%d.mixer.in_proj.bias", p, i);
        add(l, &L->conv_w, 3, C, 1, K, "%s.%d.mixer.conv1d.weight", p, i);
        if (c->conv_bias) add(l, &L->conv_b, 1, C, 0, 0, "%s.%d.mixer.conv1d.bias", p, i);
        add(l, &L->out_proj, 2, D, Di, 0, "%s.%d.mixer.out_proj.weight", p, i);
        if (c->proj_bias) add(l, &L->out_proj_b, 1, D, 0, 0, "%s.%d.mixer.out_proj.bias", p, i);
        if (c->arch == MQ_MAMBA1) {
            add(l, &L->x_proj, 2, R + 2 * N, Di, 0, "%s.%d.mixer.x_proj.weight", p, i);
            add(l, &L->dt_proj, 2, Di, R, 0, "%s.%d.mixer.dt_proj.weight", p, i);
            add(l, &L->dt_proj_b, 1, Di, 0, 0, "%s.%d.mixer.dt_proj.bias", p, i);
            add(l, &L->A_log, 2, Di, N, 0, "%s.%d.mixer.A_log", p, i);
            add(l, &L->D, 1, Di, 0, 0, "%s.%d.mixer.D", p, i);
        } else {
            add(l, &L->dt_bias, 1, H, 0, 0, "%s.%d.mixer.dt_bias", p, i);
            add(l, &L->A_log, 1, H, 0, 0, "%s.%d.mixer.A_log", p, i);
            add(l, &L->D, 1, H, 0, 0, "%s.%d.mixer.D", p, i);
            add(l, &L->gnorm_w, 1, Di, 0, 0, "%s.%d.mixer.norm.weight", p, i);
        }
    }
}

/* Presence, float dtype and exact shape of every expected tensor; then nothing left over. */
static int check_tensors(const st_file *f, want_list *l, const mq_config *c) {
    char *used = mq_calloc((size_t)st_count(f) + 1, 1);
    int rc = 0;
    for (int i = 0; i < l->n && !rc; i++) {
        want *w = &l->w[i];
        char exp[96], got[96];
        shape_str(exp, sizeof exp, w->ndim, w->shape);
        w->t = st_find(f, w->name);
        if (!w->t) { rc = mq_fail("%s: missing tensor '%s' (expected shape %s)", st_path(f), w->name, exp); break; }
        used[w->t - st_get(f, 0)] = 1;
        shape_str(got, sizeof got, w->t->ndim, w->t->shape);
        int same = w->t->ndim == w->ndim;
        for (int d = 0; same && d < w->ndim; d++) same = w->t->shape[d] == w->shape[d];
        if (!same) rc = mq_fail("%s: tensor '%s': expected shape %s, found %s", w->t->file, w->name, exp, got);
        else if (w->t->dtype != MQ_F32 && w->t->dtype != MQ_F16 && w->t->dtype != MQ_BF16)
            rc = mq_fail("%s: tensor '%s': dtype %s, expected F32, F16 or BF16", w->t->file, w->name, mq_dtype_name(w->t->dtype));
    }
    if (!rc) {
        /* name the first few unexpected tensors and count the rest */
        char list[512] = "";
        int extra = 0;
        for (int i = 0; i < st_count(f); i++) {
            if (used[i]) continue;
            if (extra < 4) {
                size_t k = strlen(list);
                snprintf(list + k, sizeof list - k, "%s'%s'", extra ? ", " : "", st_get(f, i)->name);
            }
            extra++;
        }
        if (extra)
            rc = mq_fail("%s: %d unexpected tensor%s, not part of this Mamba%d model with %d layers: %s%s", st_path(f), extra,
                         extra > 1 ? "s" : "", c->arch == MQ_MAMBA1 ? 1 : 2, c->n_layer, list, extra > 4 ? ", ..." : "");
    }
    free(used);
    return rc;
}

int ssm_load(const char *dir, mq_model *m) {
    memset(m, 0, sizeof *m);
    if (cfg_load(dir, &m->cfg)) return -1;
    st_file *f = st_open(dir);
    if (!f) return -1;
    mq_config *c = &m->cfg;

    const char *emb = "backbone.embeddings.weight";   /* transformers */
    if (!st_find(f, emb)) emb = "backbone.embedding.weight"; /* state-spaces */
    const st_tensor *e = st_find(f, emb);
    if (!e) {
        mq_fail("%s: no embedding: neither 'backbone.embeddings.weight' (transformers) nor 'backbone.embedding.weight' (state-spaces)",
                st_path(f));
        st_close(f);
        return -1;
    }
    /* checkpoints pad the vocabulary (e.g. 50277 -> 50280): the embedding's rows are the truth */
    if (e->ndim == 2 && e->shape[0] > c->vocab_size && e->shape[0] <= (1 << 24)) c->vocab_size = (int)e->shape[0];

    m->layers = mq_calloc((size_t)c->n_layer, sizeof *m->layers);
    want_list l = {0};
    expected_tensors(m, &l, emb, st_find(f, "lm_head.weight") != NULL || !c->tie_embeddings);
    int rc = check_tensors(f, &l, c);
    if (rc) { free(l.w); free(m->layers); m->layers = NULL; st_close(f); return -1; }

    /* one arena: every loaded tensor, then A for each layer */
    size_t total = 0;
    for (int i = 0; i < l.n; i++)
        if (l.w[i].dst) total += ((size_t)numel(&l.w[i]) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    size_t a_len = c->arch == MQ_MAMBA1 ? (size_t)c->d_inner * c->d_state : (size_t)c->n_heads;
    size_t a_stride = (a_len + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    total += a_stride * (size_t)c->n_layer;
    m->arena_bytes = total * sizeof(float);
    if (posix_memalign(&m->arena, 64, m->arena_bytes ? m->arena_bytes : 64)) mq_die("out of memory allocating %zu bytes", m->arena_bytes);
    float *p = m->arena;
    for (int i = 0; i < l.n && !rc; i++) {
        if (!l.w[i].dst) continue;
        *l.w[i].dst = p;
        rc = st_to_f32(l.w[i].t, p);
        p += ((size_t)numel(&l.w[i]) + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    }
    for (int i = 0; i < c->n_layer && !rc; i++) {
        mq_layer *L = &m->layers[i];
        L->A = p;
        for (size_t k = 0; k < a_len; k++) L->A[k] = -expf(L->A_log[k]);
        p += a_stride;
    }
    if (c->tie_embeddings) m->lm_head = m->embed;
    free(l.w);
    st_close(f);
    if (rc) { ssm_free(m); return -1; }
    return 0;
}

void ssm_free(mq_model *m) {
    if (!m) return;
    free(m->arena);
    free(m->layers);
    memset(m, 0, sizeof *m);
}
