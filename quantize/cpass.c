/* The extra calibration pass of q_cstats (see cstats.h): repeats the stats file's calibration windows
 * through the RMSNorm-fused FP32 model (norm_f set to ones too) and records, per layer, the absmax of
 * every in_proj input variant (weighted, x / rms(x), and rotated (x / rms(x)) H), of the rotated
 * out_proj input H y, and of the lm_head input variants. The rotated variants are observed on
 * rotated copies: in exact arithmetic that is what the rotated model computes, and this way one
 * pass serves every recipe. Also the Hessian pass of quamba2's GPTQ over the same windows (X^T X of
 * the in_proj, out_proj and lm_head inputs of the recipe's fused model). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "core/err.h"
#include "core/hash.h"
#include "core/mat.h"
#include "core/progress.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "hadamard/had.h"
#include "quantize/cstats.h"

typedef struct {
    const mq_model *orig;      /* for the norm weights */
    int rot_ok;                /* d_model has a Hadamard order: observe the ROTATED variants */
    float *in_max[Q_STAT_NVARIANTS], *out_max;   /* [variant][n_layer], [n_layer] */
    float head[Q_STAT_NVARIANTS];
    float *rot;                /* scratch for a rotated copy [T x max(d_inner, d_model)] */
    int bad;
} pass_ctx;

static float absmax_rows(const float *x, int rows, int cols, int ld) {
    float m = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float a = fabsf(x[(size_t)r * ld + c]);
            if (a > m || a != a) m = a != a ? INFINITY : a;
        }
    return m;
}

/* absmax of x * w (w per column) */
static float absmax_weighted(const float *x, const float *w, int rows, int cols, int ld) {
    float m = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float a = fabsf(x[(size_t)r * ld + c] * w[c]);
            if (a > m || a != a) m = a != a ? INFINITY : a;
        }
    return m;
}

/* absmax of the rows of x rotated by H, on a copy (the forward itself is unchanged) */
static float absmax_rotated(pass_ctx *p, const float *x, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++) memcpy(p->rot + (size_t)r * cols, x + (size_t)r * ld, (size_t)cols * sizeof(float));
    if (had_transform_f32(p->rot, rows, cols)) { p->bad = 1; return 0; }
    return absmax_rows(p->rot, rows, cols, cols);
}

static int pass_hook(void *vctx, const mq_act *a) {
    pass_ctx *p = vctx;
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    const float *x = a->x;
    float v[Q_STAT_NVARIANTS] = {0};
    if (role != MQ_ACT_LM_HEAD_IN && role != MQ_ACT_IN_PROJ_IN && role != MQ_ACT_OUT_PROJ_IN) return 0;
    if (a->dtype != MQ_F32 || a->device) return mq_fail("extra calibration pass: layer %d: not host FP32 data", layer);
    if (role == MQ_ACT_LM_HEAD_IN) {
        /* norm_f is ones in this model: x is x / rms(x) */
        v[Q_STAT_PLAIN] = absmax_weighted(x, p->orig->norm_f, rows, cols, ld);
        v[Q_STAT_FUSED] = absmax_rows(x, rows, cols, ld);
        if (p->rot_ok) v[Q_STAT_ROTATED] = absmax_rotated(p, x, rows, cols, ld);
        for (int k = 0; k < Q_STAT_NVARIANTS; k++) p->head[k] = fmaxf(p->head[k], v[k]);
        return 0;
    }
    if (layer < 0) return 0;
    if (role == MQ_ACT_IN_PROJ_IN) {
        /* the norm-fused model gives x / rms(x); the weighted output is x / rms(x) * w */
        v[Q_STAT_PLAIN] = absmax_weighted(x, p->orig->layers[layer].norm_w, rows, cols, ld);
        v[Q_STAT_FUSED] = absmax_rows(x, rows, cols, ld);
        if (p->rot_ok) v[Q_STAT_ROTATED] = absmax_rotated(p, x, rows, cols, ld);
        for (int k = 0; k < Q_STAT_NVARIANTS; k++) p->in_max[k][layer] = fmaxf(p->in_max[k][layer], v[k]);
    } else if (role == MQ_ACT_OUT_PROJ_IN) {
        float m = absmax_rotated(p, x, rows, cols, ld);
        if (m > p->out_max[layer] || m != m) p->out_max[layer] = m;
    }
    return 0;
}

static long meta_long(const calib_stats *cs, const char *key, long def) {
    const char *v = calib_stats_meta(cs, key);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static void ctx_init(pass_ctx *p, const mq_model *m, int rot_ok, size_t rot_floats) {
    memset(p, 0, sizeof *p);
    p->orig = m;
    p->rot_ok = rot_ok;
    for (int v = 0; v < Q_STAT_NVARIANTS; v++) p->in_max[v] = mq_calloc((size_t)m->cfg.n_layer, sizeof(float));
    p->out_max = mq_calloc((size_t)m->cfg.n_layer, sizeof(float));
    p->rot = rot_floats ? mq_malloc(rot_floats * sizeof(float)) : NULL;
}

static void ctx_free(pass_ctx *p) {
    for (int v = 0; v < Q_STAT_NVARIANTS; v++) free(p->in_max[v]);
    free(p->out_max);
    free(p->rot);
}

/* The stats file's calibration windows, again: the data file (checked against data.sha256)
 * tokenized, and the start of every window (same samples, seqlen and seed). */
static int load_windows(const q_cstats *s, const char *tokenizer, int32_t **ids_out, size_t **starts_out, long *samples_out,
                        long *seqlen_out) {
    const calib_stats *cs = s->cs;
    const char *data = s->data[0] ? s->data : calib_stats_meta(cs, "data.path"), *want = calib_stats_meta(cs, "data.sha256");
    if (!data || !want) return mq_fail("%s: metadata lacks data.path / data.sha256: cannot repeat the calibration windows", s->path);
    char hex[HASH_HEX_LEN];
    if (hash_file(data, hex)) return mq_fail_ctx("%s: re-reading the calibration data", s->path);
    if (strcmp(hex, want))
        return mq_fail("%s: the calibration data %s changed since calibration (sha256 %.16s..., the stats say %.16s...); rerun mambaq calib",
                       s->path, data, hex, want);
    long samples = meta_long(cs, "calib.samples", 0), seqlen = meta_long(cs, "calib.seqlen", 0);
    const char *seed = calib_stats_meta(cs, "calib.seed");
    int seeded = seed && *seed && strcmp(seed, "none");
    uint64_t seedv = seeded ? strtoull(seed, NULL, 10) : 0;
    if (samples <= 0 || seqlen <= 0) return mq_fail("%s: metadata lacks calib.samples / calib.seqlen", s->path);

    tok_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    int is_ids = calib_has_suffix(data, ".bin") || calib_has_suffix(data, ".ids");
    if (!is_ids && !(tok = tok_load(tokenizer))) return -1;
    const char *field = calib_stats_meta(cs, "data.field");
    ds_options dso = {.field = field ? field : "text", .replace_invalid = 0};
    int rc = ds_tokens(data, &dso, tok, &ids, &n);
    if (tok) tok_free(tok);
    if (rc) return -1;
    size_t *starts = mq_malloc((size_t)samples * sizeof *starts);
    if (calib_windows(n, (int)seqlen, (int)samples, seeded, seedv, starts, data)) {
        free(ids);
        free(starts);
        return -1;
    }
    *ids_out = ids;
    *starts_out = starts;
    *samples_out = samples;
    *seqlen_out = seqlen;
    return 0;
}

int q_cstats_fused_pass(q_cstats *s, const mq_model *m, const char *tokenizer, int progress) {
    int32_t *ids = NULL;
    size_t *starts = NULL;
    long samples, seqlen;
    if (load_windows(s, tokenizer, &ids, &starts, &samples, &seqlen)) return mq_fail_ctx("extra calibration pass");
    int rc = 0;
    mq_model f;
    if (q_model_copy(m, &f, 0) || q_fuse_norm(&f)) {
        free(ids);
        free(starts);
        return -1;
    }
    for (int k = 0; k < f.cfg.d_model; k++) f.norm_f[k] = 1.0f;   /* lm_head_in = x / rms(x) (f computes no logits) */
    int L = m->cfg.n_layer, rot_ok = had_factor(m->cfg.d_model, NULL, NULL) == 0;
    if (!rot_ok) mq_clear_error();   /* no residual rotation for this model: its recipes say so */
    size_t wide = (size_t)(m->cfg.d_inner > m->cfg.d_model ? m->cfg.d_inner : m->cfg.d_model);
    pass_ctx p;
    ctx_init(&p, m, rot_ok, 0);
    prog_bar bar;
    prog_start(&bar, "fused stats", "samples", samples, !progress);
    double t0 = prog_now();
    long done = 0;
    char err[1024] = "";
    /* windows are independent: one per thread (as eval does), each thread with its own maxima,
     * merged at the end (a max does not depend on the order) */
    int outer = samples > 1 && mat_threads() > 1;
#ifdef _OPENMP
    if (outer) omp_set_max_active_levels(1);
#endif
#pragma omp parallel if (outer)
    {
        pass_ctx t;
        ctx_init(&t, m, rot_ok, (size_t)seqlen * wide);
        mq_hooks h = {pass_hook, &t};
        float *hidden = mq_malloc((size_t)seqlen * m->cfg.d_model * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (long i = 0; i < samples; i++) {
            if (rc) continue;
            int bad = ssm_forward(&f, ids + starts[i], (int)seqlen, &h, hidden) || t.bad;
#pragma omp critical(fused_pass)
            {
                if (bad && !rc) {
                    rc = -1;
                    snprintf(err, sizeof err, "extra calibration pass, window %ld: %s", i, mq_errmsg());
                }
                done++;
                prog_update(&bar, done, done * seqlen);
            }
        }
#pragma omp critical(fused_pass)
        {
            for (int l = 0; l < L; l++) {
                for (int v = 0; v < Q_STAT_NVARIANTS; v++) p.in_max[v][l] = fmaxf(p.in_max[v][l], t.in_max[v][l]);
                p.out_max[l] = fmaxf(p.out_max[l], t.out_max[l]);
            }
            for (int v = 0; v < Q_STAT_NVARIANTS; v++) p.head[v] = fmaxf(p.head[v], t.head[v]);
        }
        ctx_free(&t);
        free(hidden);
    }
    prog_finish(&bar);
    if (rc) mq_fail("%s", err);
    for (int l = 0; l < L && !rc; l++)
        for (int v = 0; v < Q_STAT_NVARIANTS && !rc; v++)
            if (!isfinite(p.in_max[v][l]) || !isfinite(p.out_max[l]))
                rc = mq_fail("extra calibration pass: layer %d produced non-finite activations", l);
    for (int v = 0; v < Q_STAT_NVARIANTS && !rc; v++)
        if (!isfinite(p.head[v])) rc = mq_fail("extra calibration pass: the lm_head input is not finite");
    s->pass_seconds = prog_now() - t0;
    s->pass_tokens = samples * seqlen;
    ssm_free(&f);
    free(ids);
    free(starts);
    if (rc) {
        ctx_free(&p);
        return -1;
    }
    for (int v = 0; v < Q_STAT_NVARIANTS; v++) {
        free(s->pass_in[v]);
        s->pass_in[v] = v == Q_STAT_ROTATED && !rot_ok ? NULL : p.in_max[v];
        if (!s->pass_in[v]) free(p.in_max[v]);
    }
    free(s->pass_rot);
    s->pass_rot = p.out_max;
    free(s->pass_head);
    s->pass_head = mq_malloc(Q_STAT_NVARIANTS * sizeof(float));
    memcpy(s->pass_head, p.head, sizeof p.head);
    if (!rot_ok) s->pass_head[Q_STAT_ROTATED] = NAN;
    return 0;
}

/* ---- the Hessian pass (quamba2 GPTQ) ---- */

typedef struct {
    q_hessians *h;
    float *xt, *acc;           /* scratch: X^T [n x T], X^T X [n x n] */
} hess_ctx;

/* H += 2 X^T X of x [rows x n] (stride ld) */
static void hess_add(hess_ctx *c, double *H, const float *x, int rows, int n, int ld) {
    for (int r = 0; r < rows; r++)
        for (int k = 0; k < n; k++) c->xt[(size_t)k * rows + r] = x[(size_t)r * ld + k];
    mat_linear(c->acc, c->xt, c->xt, NULL, n, n, rows);
    for (size_t i = 0; i < (size_t)n * n; i++) H[i] += 2.0 * c->acc[i];
}

static int hess_hook(void *vctx, const mq_act *a) {
    hess_ctx *c = vctx;
    q_hessians *h = c->h;
    if (a->dtype != MQ_F32 || a->device) return mq_fail("Hessian pass: layer %d: not host FP32 data", a->layer);
    if (a->role == MQ_ACT_LM_HEAD_IN && h->lm_head) hess_add(c, h->lm_head, a->x, a->rows, a->cols, a->ld);
    else if (a->layer >= 0 && a->layer < h->n_layer && a->role == MQ_ACT_IN_PROJ_IN) hess_add(c, h->in_proj[a->layer], a->x, a->rows, a->cols, a->ld);
    else if (a->layer >= 0 && a->layer < h->n_layer && a->role == MQ_ACT_OUT_PROJ_IN) hess_add(c, h->out_proj[a->layer], a->x, a->rows, a->cols, a->ld);
    return 0;
}

int q_cstats_hessian_pass(q_cstats *s, const mq_model *m, const char *tokenizer, const q_options *o, int progress, q_hessians *h) {
    const mq_config *cfg = &m->cfg;
    memset(h, 0, sizeof *h);
    int32_t *ids = NULL;
    size_t *starts = NULL;
    long samples, seqlen;
    if (load_windows(s, tokenizer, &ids, &starts, &samples, &seqlen)) return mq_fail_ctx("Hessian pass");
    long use = (Q_HESS_MAX_TOKENS + seqlen - 1) / seqlen;
    if (use > samples) use = samples;
    mq_model f;
    int rc = q_model_copy(m, &f, 0) || (q_method_fuses_norm(o->method) && q_fuse_norm(&f)) ||
             (q_method_uses_hadamard(o->method) && q_fuse_hadamard(&f));
    if (rc) {
        free(ids);
        free(starts);
        return -1;
    }
    int D = cfg->d_model, E = cfg->d_inner, L = cfg->n_layer, wide = D > E ? D : E;
    h->n_layer = L;
    h->d_model = D;
    h->d_inner = E;
    h->in_proj = mq_calloc((size_t)L, sizeof *h->in_proj);
    h->out_proj = mq_calloc((size_t)L, sizeof *h->out_proj);
    for (int l = 0; l < L; l++) {
        h->in_proj[l] = mq_calloc((size_t)D * D, sizeof(double));
        h->out_proj[l] = mq_calloc((size_t)E * E, sizeof(double));
    }
    if (o->quantize_head) h->lm_head = mq_calloc((size_t)D * D, sizeof(double));
    hess_ctx c = {h, mq_malloc((size_t)seqlen * wide * sizeof(float)), mq_malloc((size_t)wide * wide * sizeof(float))};
    mq_hooks hh = {hess_hook, &c};
    q_rotate_ctx rc_ctx = {&hh};
    mq_hooks hooks = q_method_uses_hadamard(o->method) ? q_rotate_hooks(&rc_ctx) : hh;   /* out_proj reads H y */
    float *hidden = mq_malloc((size_t)seqlen * D * sizeof(float));
    prog_bar bar;
    prog_start(&bar, "Hessians", "samples", use, !progress);
    for (long i = 0; i < use && !rc; i++) {
        if (ssm_forward(&f, ids + starts[i], (int)seqlen, &hooks, hidden)) rc = mq_fail_ctx("Hessian pass, window %ld", i);
        prog_update(&bar, i + 1, (i + 1) * seqlen);
    }
    prog_finish(&bar);
    h->tokens = use * seqlen;
    free(hidden);
    free(c.xt);
    free(c.acc);
    ssm_free(&f);
    free(ids);
    free(starts);
    if (rc) q_hessians_free(h);
    return rc;
}
