/* The extra calibration pass of q_cstats (see cstats.h): repeats the stats file's calibration windows
 * through the RMSNorm-fused FP32 model and records, per layer, the absmax of the in_proj input with
 * and without the norm weight and of the rotated out_proj input H y. */
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
    const mq_model *orig;      /* for the RMSNorm weights */
    float *in_max[2], *out_max;   /* [variant][n_layer], [n_layer] */
    float *rot;                /* scratch for H y [T x d_inner] */
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

static void pass_hook(void *vctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    pass_ctx *p = vctx;
    if (layer < 0) return;
    if (role == MQ_ACT_IN_PROJ_IN) {
        /* the norm-fused model gives x / rms(x); the weighted output is x / rms(x) * w */
        float m = absmax_rows(x, rows, cols, ld), mw = 0;
        const float *w = p->orig->layers[layer].norm_w;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                float a = fabsf(x[(size_t)r * ld + c] * w[c]);
                if (a > mw || a != a) mw = a != a ? INFINITY : a;
            }
        if (m > p->in_max[Q_STAT_FUSED][layer]) p->in_max[Q_STAT_FUSED][layer] = m;
        if (mw > p->in_max[Q_STAT_PLAIN][layer]) p->in_max[Q_STAT_PLAIN][layer] = mw;
    } else if (role == MQ_ACT_OUT_PROJ_IN) {
        /* observe H y on a copy; the forward itself is unchanged */
        for (int r = 0; r < rows; r++) memcpy(p->rot + (size_t)r * cols, x + (size_t)r * ld, (size_t)cols * sizeof(float));
        if (had_transform_f32(p->rot, rows, cols)) { p->bad = 1; return; }
        float m = absmax_rows(p->rot, rows, cols, cols);
        if (m > p->out_max[layer]) p->out_max[layer] = m;
    }
}

static long meta_long(const calib_stats *cs, const char *key, long def) {
    const char *v = calib_stats_meta(cs, key);
    return v && *v ? strtol(v, NULL, 10) : def;
}

/* A copy of m whose RMSNorm weights are folded into in_proj (arena duplicated, pointers rebased). */
static int fused_copy(const mq_model *m, mq_model *f) {
    *f = *m;
    if (posix_memalign(&f->arena, 64, m->arena_bytes ? m->arena_bytes : 64)) mq_die("out of memory (%zu bytes)", m->arena_bytes);
    memcpy(f->arena, m->arena, m->arena_bytes);
    f->layers = mq_malloc((size_t)m->cfg.n_layer * sizeof *f->layers);
    ptrdiff_t d = (char *)f->arena - (char *)m->arena;
    const char *lo = m->arena, *hi = lo + m->arena_bytes;
#define REBASE(p) ((p) && (const char *)(p) >= lo && (const char *)(p) < hi ? (float *)((char *)(p) + d) : (p))
    for (int l = 0; l < m->cfg.n_layer; l++) {
        mq_layer L = m->layers[l];
        float **fields[] = {&L.norm_w, &L.in_proj, &L.in_proj_b, &L.conv_w, &L.conv_b, &L.out_proj, &L.out_proj_b, &L.A_log,
                            &L.A, &L.D, &L.x_proj, &L.dt_proj, &L.dt_proj_b, &L.dt_bias, &L.gnorm_w};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) *fields[i] = REBASE(*fields[i]);
        if (L.norm_w && (const char *)m->layers[l].norm_w == (const char *)L.norm_w) {
            free(f->arena);
            free(f->layers);
            return mq_fail("fused_copy: model arrays are not in its arena (internal error)");
        }
        f->layers[l] = L;
    }
    f->embed = REBASE(m->embed);
    f->norm_f = REBASE(m->norm_f);
    f->lm_head = REBASE(m->lm_head);
#undef REBASE
    return q_fuse_norm(f);
}

int q_cstats_fused_pass(q_cstats *s, const mq_model *m, const char *tokenizer, int progress) {
    const calib_stats *cs = s->cs;
    const char *data = calib_stats_meta(cs, "data.path"), *want = calib_stats_meta(cs, "data.sha256");
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
    if (!is_ids && !(tok = tok_load(tokenizer))) return mq_fail_ctx("extra calibration pass");
    ds_options dso = {.field = "text", .replace_invalid = 0};
    int rc = ds_tokens(data, &dso, tok, &ids, &n);
    if (tok) tok_free(tok);
    if (rc) return mq_fail_ctx("extra calibration pass");
    size_t *starts = mq_malloc((size_t)samples * sizeof *starts);
    if (calib_windows(n, (int)seqlen, (int)samples, seeded, seedv, starts, data)) {
        free(ids);
        free(starts);
        return -1;
    }
    mq_model f;
    if (fused_copy(m, &f)) {
        free(ids);
        free(starts);
        return -1;
    }
    int L = m->cfg.n_layer;
    pass_ctx p = {m, {mq_calloc((size_t)L, sizeof(float)), mq_calloc((size_t)L, sizeof(float))}, mq_calloc((size_t)L, sizeof(float)), NULL, 0};
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
        pass_ctx t = {m, {mq_calloc((size_t)L, sizeof(float)), mq_calloc((size_t)L, sizeof(float))}, mq_calloc((size_t)L, sizeof(float)),
                      mq_malloc((size_t)seqlen * m->cfg.d_inner * sizeof(float)), 0};
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
        for (int l = 0; l < L; l++) {
            for (int v = 0; v < 2; v++) p.in_max[v][l] = fmaxf(p.in_max[v][l], t.in_max[v][l]);
            p.out_max[l] = fmaxf(p.out_max[l], t.out_max[l]);
        }
        free(t.in_max[0]);
        free(t.in_max[1]);
        free(t.out_max);
        free(t.rot);
        free(hidden);
    }
    prog_finish(&bar);
    if (rc) mq_fail("%s", err);
    for (int l = 0; l < L && !rc; l++)
        if (!isfinite(p.in_max[0][l]) || !isfinite(p.in_max[1][l]) || !isfinite(p.out_max[l]))
            rc = mq_fail("extra calibration pass: layer %d produced non-finite activations", l);
    s->pass_seconds = prog_now() - t0;
    s->pass_tokens = samples * seqlen;
    ssm_free(&f);
    free(ids);
    free(starts);
    if (rc) {
        free(p.in_max[0]);
        free(p.in_max[1]);
        free(p.out_max);
        return -1;
    }
    for (int v = 0; v < 2; v++) {
        free(s->pass_in[v]);
        s->pass_in[v] = p.in_max[v];
    }
    free(s->pass_rot);
    s->pass_rot = p.out_max;
    return 0;
}
