/* The tests' own activation statistics for q_quantize (test_sim, test_int8), independent of calib/:
 * absmax per (layer, role, part, variant) and the EMA of per-sample percentiles of the SSM input x
 * (calib's definition), from a plain pass and a fused pass over the calibration windows. Variant 1
 * is the fused pass (norm fused into in_proj, norm_f ones, y rotated), variant 2 its in_proj and
 * lm_head inputs rotated (quamba-rot's residual rotation). Header only. */
#ifndef MQ_TESTS_TSTATS_H
#define MQ_TESTS_TSTATS_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "hadamard/had.h"
#include "quantize/q.h"
#include "ssm/model.h"

#define TS_MAX_LAYERS 64
#define TS_MAX_PCT 8
typedef struct {
    float amax[TS_MAX_LAYERS][MQ_ACT_NROLES + 1][Q_MAX_PARTS][Q_STAT_NVARIANTS];
    double pct[TS_MAX_PCT];                  /* the percentiles of SSM_X observed */
    int npct;
    float pema[TS_MAX_LAYERS][TS_MAX_PCT];   /* their EMA over the samples, per layer */
    int nsamples, variant;                   /* samples the plain pass saw; the variant being observed */
    const mq_model *m;
    float *tmp;
    float *chan[TS_MAX_LAYERS][3];           /* plain pass: per-column absmax of SSM_X, B, C (quamba2 vectors) */
} tstats;

/* slot of a role in chan, or -1 */
static int ts_chan_slot(mq_act_role role) { return role == MQ_ACT_SSM_X ? 0 : role == MQ_ACT_B ? 1 : role == MQ_ACT_C ? 2 : -1; }

static int ts_cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void ts_obs_max(float *dst, const float *x, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) *dst = fmaxf(*dst, fabsf(x[(size_t)r * ld + c]));
}

/* x rotated (H, on a copy in s->tmp) and its absmax into *dst */
static void ts_obs_rotated(tstats *s, float *dst, const float *x, int rows, int cols, int ld) {
    for (int r = 0; r < rows; r++) memcpy(s->tmp + (size_t)r * cols, x + (size_t)r * ld, (size_t)cols * 4);
    had_transform_f32(s->tmp, rows, cols);
    ts_obs_max(dst, s->tmp, rows, cols, cols);
}

static int ts_hook(void *vctx, const mq_act *a) {
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    const float *x = a->x;
    tstats *s = vctx;
    const int v = s->variant;
    const mq_config *c = &s->m->cfg;
    /* the residual-rotated variant: (x / rms(x)) H (the fused pass has norm_f = 1) */
    if (v == 1 && role == MQ_ACT_LM_HEAD_IN) ts_obs_rotated(s, &s->amax[0][MQ_ACT_NROLES][0][Q_STAT_ROTATED], x, rows, cols, ld);
    if (v == 1 && role == MQ_ACT_IN_PROJ_IN && layer >= 0 && layer < TS_MAX_LAYERS)
        ts_obs_rotated(s, &s->amax[layer][role][0][Q_STAT_ROTATED], x, rows, cols, ld);
    if (role == MQ_ACT_LM_HEAD_IN) { ts_obs_max(&s->amax[0][MQ_ACT_NROLES][0][v], x, rows, cols, ld); return 0; }
    if (layer < 0 || layer >= TS_MAX_LAYERS) return 0;
    if (v == 1 && role == MQ_ACT_OUT_PROJ_IN) { ts_obs_rotated(s, &s->amax[layer][role][0][1], x, rows, cols, ld); return 0; }
    if (role == MQ_ACT_DT && c->arch == MQ_MAMBA1) {   /* Quamba: dt_proj's output without its bias */
        const float *b = s->m->layers[layer].dt_proj_b;
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < cols; k++)
                s->amax[layer][role][0][v] = fmaxf(s->amax[layer][role][0][v], fabsf(x[(size_t)r * ld + k] - b[k]));
        return 0;
    }
    for (int p = 0; p < q_role_parts(c->arch, role); p++) {
        int c0, nc;
        q_role_part_cols(c, role, p, &c0, &nc);
        ts_obs_max(&s->amax[layer][role][p][v], x + c0, rows, nc < 0 ? cols : nc, ld);
    }
    const int slot = ts_chan_slot(role);
    if (v == 0 && slot >= 0) {
        float **ch = &s->chan[layer][slot];
        if (!*ch) *ch = mq_calloc((size_t)cols, sizeof(float));
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < cols; k++) (*ch)[k] = fmaxf((*ch)[k], fabsf(x[(size_t)r * ld + k]));
    }
    if (role == MQ_ACT_SSM_X && v == 0) {   /* per-sample percentiles of |x| (torch.quantile 'linear'), their EMA */
        size_t n = (size_t)rows * cols;
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < cols; k++) s->tmp[(size_t)r * cols + k] = fabsf(x[(size_t)r * ld + k]);
        qsort(s->tmp, n, sizeof(float), ts_cmpf);
        for (int q = 0; q < s->npct; q++) {
            double rank = s->pct[q] / 100 * (double)(n - 1);
            size_t lo = (size_t)rank;
            float val = lo + 1 < n ? s->tmp[lo] + (float)(rank - lo) * (s->tmp[lo + 1] - s->tmp[lo]) : s->tmp[n - 1];
            float *e = &s->pema[layer][q];
            *e = s->nsamples == 0 ? val : *e + 0.01f * (val - *e);
        }
    }
    return 0;
}

/* the q_stats interface */
static int ts_absmax(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, float *v) {
    tstats *s = ctx;
    int r = role == MQ_ACT_LM_HEAD_IN ? MQ_ACT_NROLES : (int)role;
    if (role == MQ_ACT_LM_HEAD_IN) layer = 0;
    *v = s->amax[layer][r][part][var];
    return *v > 0 ? 0 : mq_fail("no statistics for layer %d role %d part %d variant %d", layer, role, part, var);
}
static int ts_pct(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, double p, float *v) {
    tstats *s = ctx;
    for (int q = 0; q < s->npct; q++)
        if (s->pct[q] == p) { *v = s->pema[layer][q]; return 0; }
    return mq_fail("percentile %g not observed", p);
}
/* quamba2's vectors: "channel" (n columns) or "group" (n SSD groups of the columns) absmax */
static int ts_vector(void *ctx, int layer, mq_act_role role, const char *kind, float *v, int n) {
    tstats *s = ctx;
    const int slot = ts_chan_slot(role);
    const float *ch = slot >= 0 && layer >= 0 && layer < TS_MAX_LAYERS ? s->chan[layer][slot] : NULL;
    if (!ch) return mq_fail("no per-column statistics for layer %d role %d", layer, role);
    const int cols = role == MQ_ACT_SSM_X ? s->m->cfg.d_inner : s->m->cfg.n_groups * s->m->cfg.d_state;
    const int per = !strcmp(kind, "group") ? cols / n : 1;
    for (int i = 0; i < n; i++) {
        v[i] = 0;
        for (int k = i * per; k < (i + 1) * per; k++) v[i] = fmaxf(v[i], ch[k]);
    }
    return 0;
}

__attribute__((unused)) static q_stats ts_iface(tstats *s) {
    q_stats st = {.absmax = ts_absmax, .percentile = ts_pct, .vector = ts_vector, .ctx = s};
    return st;
}

/* The statistics of m (loaded from dir) over `samples` windows of len tokens at cal, with the
 * percentiles pct[npct] of SSM_X; the fused pass loads dir again. Free with tstats_free. */
__attribute__((unused)) static tstats *ts_collect(const char *dir, mq_model *m, const int32_t *cal, int samples, int len,
                                                  const double *pct, int npct) {
    tstats *s = mq_calloc(1, sizeof *s);
    s->m = m;
    s->npct = npct < TS_MAX_PCT ? npct : TS_MAX_PCT;
    memcpy(s->pct, pct, (size_t)s->npct * sizeof *pct);
    s->tmp = mq_malloc((size_t)len * cfg_conv_dim(&m->cfg) * sizeof(float));
    float *hidden = mq_malloc((size_t)len * m->cfg.d_model * sizeof(float));
    mq_hooks h = {ts_hook, s};
    for (int i = 0; i < samples; i++, s->nsamples++) ssm_forward(m, cal + (size_t)i * len, len, &h, hidden);
    mq_model f;
    if (ssm_load(dir, &f) == 0 && q_fuse_norm(&f) == 0) {
        for (int k = 0; k < f.cfg.d_model; k++) f.norm_f[k] = 1.0f;
        s->variant = 1;
        s->m = &f;
        for (int i = 0; i < samples; i++) ssm_forward(&f, cal + (size_t)i * len, len, &h, hidden);
        ssm_free(&f);
    }
    s->m = m;
    s->variant = 0;
    free(hidden);
    return s;
}

__attribute__((unused)) static void tstats_free(tstats *s) {
    if (s) {
        free(s->tmp);
        for (int l = 0; l < TS_MAX_LAYERS; l++)
            for (int k = 0; k < 3; k++) free(s->chan[l][k]);
    }
    free(s);
}

#endif
