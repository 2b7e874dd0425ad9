/* The CPU reference forward of Mamba1 / Mamba2 (see model.h): prefill, decode steps through the
 * same code with T = 1, logits and per-token NLL. Each mixer reads top to bottom as transformers'
 * slow path does; the numerics live in ssm/ops.c and core/mat.c. Hooks are called on the buffer
 * the next op reads, so a hook that rewrites in place changes what the model computes. */
#include "ssm/model.h"
#include "core/err.h"
#include "core/mat.h"
#include "ssm/ops.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct mq_state {
    int n_layer;
    size_t conv_n, ssm_n;  /* floats per layer: conv history [conv_dim x (d_conv-1)], SSM state */
    float *buf;            /* [n_layer] x (conv, ssm) */
};

static size_t ssm_state_floats(const mq_config *c) {
    return c->arch == MQ_MAMBA1 ? (size_t)c->d_inner * c->d_state
                                : (size_t)c->n_heads * c->head_dim * c->d_state;
}

mq_state *ssm_state_new(const mq_model *m) {
    mq_state *s = mq_calloc(1, sizeof *s);
    s->n_layer = m->cfg.n_layer;
    s->conv_n = (size_t)cfg_conv_dim(&m->cfg) * (m->cfg.d_conv - 1);
    s->ssm_n = ssm_state_floats(&m->cfg);
    s->buf = mq_calloc((s->conv_n + s->ssm_n) * s->n_layer, sizeof(float));
    return s;
}

void ssm_state_reset(mq_state *s) { memset(s->buf, 0, (s->conv_n + s->ssm_n) * s->n_layer * sizeof(float)); }

void ssm_state_free(mq_state *s) {
    if (!s) return;
    free(s->buf);
    free(s);
}

static float *conv_state(mq_state *s, int l) { return s->buf + (s->conv_n + s->ssm_n) * l; }
static float *scan_state(mq_state *s, int l) { return conv_state(s, l) + s->conv_n; }

const char *ssm_act_role_name(mq_act_role role) {
    static const char *names[MQ_ACT_NROLES] = {
        [MQ_ACT_IN_PROJ_IN] = "in_proj_in", [MQ_ACT_CONV_IN] = "conv_in", [MQ_ACT_Z] = "z",
        [MQ_ACT_SSM_X] = "ssm_x", [MQ_ACT_X_PROJ_OUT] = "x_proj_out", [MQ_ACT_DT] = "dt",
        [MQ_ACT_B] = "B", [MQ_ACT_C] = "C", [MQ_ACT_SSM_OUT] = "ssm_out",
        [MQ_ACT_OUT_PROJ_IN] = "out_proj_in", [MQ_ACT_SSM_STATE] = "ssm_state",
        [MQ_ACT_LM_HEAD_IN] = "lm_head_in", [MQ_ACT_RESID] = "resid",
    };
    return (unsigned)role < MQ_ACT_NROLES ? names[role] : "unknown";
}

int ssm_hook_f32(const mq_hooks *hk, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    if (!hk || !hk->fn) return 0;
    mq_act a = {.layer = layer, .role = role, .dtype = MQ_F32, .x = x, .rows = rows, .cols = cols, .ld = ld};
    return hk->fn(hk->ctx, &a);
}
/* a hook's error ends the mixer / the forward with it */
#define HOOK(l, role, x, rows, cols, ld)                                      \
    do {                                                                      \
        if (ssm_hook_f32(hk, l, role, x, rows, cols, ld)) return -1;          \
    } while (0)

/* Scratch for one call, sized for T tokens; one allocation. */
typedef struct {
    float *resid, *normed, *proj, *xc, *xp, *dtlr, *dt, *y, *out;
    float *mem;
} work;

static void work_init(work *w, const mq_config *c, int T) {
    size_t xp_w = c->arch == MQ_MAMBA1 ? (size_t)c->dt_rank + 2 * c->d_state : 0;
    size_t dt_w = c->arch == MQ_MAMBA1 ? (size_t)c->d_inner : (size_t)c->n_heads;
    size_t sizes[] = {c->d_model, c->d_model, cfg_in_proj_dim(c), cfg_conv_dim(c), xp_w,
                      c->arch == MQ_MAMBA1 ? (size_t)c->dt_rank : 0, dt_w, c->d_inner, c->d_model};
    float **bufs[] = {&w->resid, &w->normed, &w->proj, &w->xc, &w->xp, &w->dtlr, &w->dt, &w->y, &w->out};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) total += sizes[i] * T;
    w->mem = mq_malloc(total * sizeof(float));
    float *p = w->mem;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) { *bufs[i] = p; p += sizes[i] * T; }
}

/* Mamba1 mixer on w->normed [T x d_model] -> w->out [T x d_model]. */
static int mixer_m1(const mq_model *m, int l, work *w, int T, float *cst, float *sst, const mq_hooks *hk) {
    const mq_config *c = &m->cfg;
    const mq_layer *L = &m->layers[l];
    int Di = c->d_inner, N = c->d_state, R = c->dt_rank, np = 2 * Di, nxp = R + 2 * N;

    mat_linear(w->proj, w->normed, L->in_proj, L->in_proj_b, T, np, c->d_model);
    float *x = w->proj, *z = w->proj + Di;  /* in_proj output is [x | z] */
    HOOK(l, MQ_ACT_CONV_IN, x, T, Di, np);
    HOOK(l, MQ_ACT_Z, z, T, Di, np);

    op_conv1d(w->xc, Di, x, np, L->conv_w, L->conv_b, cst, T, Di, c->d_conv, 1);
    HOOK(l, MQ_ACT_SSM_X, w->xc, T, Di, Di);

    mat_linear(w->xp, w->xc, L->x_proj, NULL, T, nxp, Di);
    HOOK(l, MQ_ACT_X_PROJ_OUT, w->xp, T, nxp, nxp);
    for (int t = 0; t < T; t++)  /* mat_linear wants a dense input: copy the dt_low_rank columns */
        memcpy(w->dtlr + (size_t)t * R, w->xp + (size_t)t * nxp, (size_t)R * sizeof(float));
    mat_linear(w->dt, w->dtlr, L->dt_proj, L->dt_proj_b, T, Di, R);
    HOOK(l, MQ_ACT_DT, w->dt, T, Di, Di);
    op_dt_softplus(w->dt, Di, w->dt, Di, NULL, T, Di, 0.0f, INFINITY);

    float *B = w->xp + R, *C = w->xp + R + N;
    HOOK(l, MQ_ACT_B, B, T, N, nxp);
    HOOK(l, MQ_ACT_C, C, T, N, nxp);

    op_scan_m1(w->y, Di, w->xc, Di, w->dt, Di, L->A, B, nxp, C, nxp, L->D, z, np, sst, T, Di, N);
    HOOK(l, MQ_ACT_SSM_STATE, sst, Di, N, N);
    HOOK(l, MQ_ACT_SSM_OUT, w->y, T, Di, Di);
    HOOK(l, MQ_ACT_OUT_PROJ_IN, w->y, T, Di, Di);
    mat_linear(w->out, w->y, L->out_proj, L->out_proj_b, T, c->d_model, Di);
    return 0;
}

/* Mamba2 mixer on w->normed [T x d_model] -> w->out [T x d_model]. */
static int mixer_m2(const mq_model *m, int l, work *w, int T, float *cst, float *sst, const mq_hooks *hk) {
    const mq_config *c = &m->cfg;
    const mq_layer *L = &m->layers[l];
    int Di = c->d_inner, H = c->n_heads, P = c->head_dim, G = c->n_groups, N = c->d_state;
    int GN = G * N, cd = cfg_conv_dim(c), np = cfg_in_proj_dim(c);

    mat_linear(w->proj, w->normed, L->in_proj, L->in_proj_b, T, np, c->d_model);
    float *z = w->proj, *xBC = w->proj + Di, *dt = w->proj + Di + cd;  /* [z | xBC | dt] */
    HOOK(l, MQ_ACT_CONV_IN, xBC, T, cd, np);
    HOOK(l, MQ_ACT_Z, z, T, Di, np);
    HOOK(l, MQ_ACT_DT, dt, T, H, np);

    op_conv1d(w->xc, cd, xBC, np, L->conv_w, L->conv_b, cst, T, cd, c->d_conv, 1);
    float *x = w->xc, *B = w->xc + Di, *C = w->xc + Di + GN;
    HOOK(l, MQ_ACT_SSM_X, x, T, Di, cd);
    HOOK(l, MQ_ACT_B, B, T, GN, cd);
    HOOK(l, MQ_ACT_C, C, T, GN, cd);

    op_dt_softplus(w->dt, H, dt, np, L->dt_bias, T, H, c->dt_limit_min, c->dt_limit_max);
    op_scan_m2(w->y, Di, x, cd, w->dt, H, L->A, B, cd, C, cd, L->D, sst, T, H, P, G, N);
    HOOK(l, MQ_ACT_SSM_STATE, sst, H * P, N, N);

    /* transformers' MambaRMSNormGated normalizes over all of d_inner (see ops.h); the reference
     * files come from it, so the whole row is one group here. */
    op_gated_rmsnorm(w->y, Di, w->y, Di, z, np, L->gnorm_w, T, Di, Di, c->norm_eps, c->norm_before_gate);
    HOOK(l, MQ_ACT_SSM_OUT, w->y, T, Di, Di);
    HOOK(l, MQ_ACT_OUT_PROJ_IN, w->y, T, Di, Di);
    mat_linear(w->out, w->y, L->out_proj, L->out_proj_b, T, c->d_model, Di);
    return 0;
}

int ssm_prefill(const mq_model *m, mq_state *s, const int32_t *tokens, int T, const mq_hooks *hooks,
                float *hidden) {
    const mq_config *c = &m->cfg;
    if (T <= 0) return mq_fail("ssm_prefill: empty sequence (T = %d)", T);
    const mq_hooks *hk = hooks;
    const int D = c->d_model;
    work w;
    work_init(&w, c, T);
    int rc = op_embed(w.resid, m->embed, tokens, T, D, c->vocab_size);
    for (int l = 0; l < c->n_layer && !rc; l++) {
        /* residual stream in FP32: resid += previous mixer output, normed = RMSNorm(resid) */
        op_add_rmsnorm(w.resid, l ? w.out : NULL, w.normed, m->layers[l].norm_w, T, D, c->norm_eps);
        rc = (l && ssm_hook_f32(hk, l - 1, MQ_ACT_RESID, w.resid, T, D, D)) ||
             ssm_hook_f32(hk, l, MQ_ACT_IN_PROJ_IN, w.normed, T, D, D);
        if (!rc) rc = c->arch == MQ_MAMBA1 ? mixer_m1(m, l, &w, T, conv_state(s, l), scan_state(s, l), hk)
                                           : mixer_m2(m, l, &w, T, conv_state(s, l), scan_state(s, l), hk);
    }
    if (!rc) {
        op_add_rmsnorm(w.resid, w.out, hidden, m->norm_f, T, D, c->norm_eps);
        rc = ssm_hook_f32(hk, c->n_layer - 1, MQ_ACT_RESID, w.resid, T, D, D) ||
             ssm_hook_f32(hk, -1, MQ_ACT_LM_HEAD_IN, hidden, T, D, D);
    }
    free(w.mem);
    return rc ? -1 : 0;
}

int ssm_forward(const mq_model *m, const int32_t *tokens, int T, const mq_hooks *hooks, float *hidden) {
    mq_state *s = ssm_state_new(m);
    int rc = ssm_prefill(m, s, tokens, T, hooks, hidden);
    ssm_state_free(s);
    return rc;
}

int ssm_step(const mq_model *m, mq_state *s, int32_t token, const mq_hooks *hooks, float *hidden) {
    return ssm_prefill(m, s, &token, 1, hooks, hidden);
}

void ssm_logits(const mq_model *m, const float *hidden, int T, float *logits) {
    mat_linear(logits, hidden, m->lm_head, NULL, T, m->cfg.vocab_size, m->cfg.d_model);
}

double ssm_nll(const mq_model *m, const int32_t *tokens, int T, const mq_hooks *hooks, float *nll) {
    const mq_config *c = &m->cfg;
    if (T < 2) return 0;
    float *hidden = mq_malloc((size_t)T * c->d_model * sizeof(float));
    if (ssm_forward(m, tokens, T, hooks, hidden)) {
        free(hidden);
        return NAN;
    }
    /* 256 rows of logits (51 MB at a 50k vocabulary) amortize packing lm_head in mat_linear. */
    enum { BLOCK = 256 };
    int V = c->vocab_size;
    float *logits = mq_malloc((size_t)BLOCK * V * sizeof(float));
    double total = 0;
    int bad = T;   /* the first position whose NLL is NaN/Inf */
    for (int r0 = 0; r0 < T - 1 && bad == T; r0 += BLOCK) {
        int rows = T - 1 - r0 < BLOCK ? T - 1 - r0 : BLOCK;
        ssm_logits(m, hidden + (size_t)r0 * c->d_model, rows, logits);
#pragma omp parallel for schedule(static) reduction(+ : total) reduction(min : bad)
        for (int r = 0; r < rows; r++) {
            const float *row = logits + (size_t)r * V;
            double v = op_logsumexp(row, V) - row[tokens[r0 + r + 1]];
            if (nll) nll[r0 + r] = (float)v;
            total += v;
            if (!isfinite(v) && r0 + r < bad) bad = r0 + r;
        }
    }
    free(logits);
    free(hidden);
    if (bad < T)
        return mq_fail("the NLL is not finite (%s) at token %d of %d: the logits hold NaN/Inf (activations overflow float32, "
                       "or the weights or scales are broken)", isnan(total) ? "NaN" : "Inf", bad + 1, T), NAN;
    return total;
}
