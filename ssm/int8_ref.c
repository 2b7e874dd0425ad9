/* CPU references of the int8 kernels (see int8_ref.h). */
#include "ssm/int8_ref.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "ssm/ops.h"
#include "core/mat.h"
#include "hadamard/had.h"

void i8ref_gemm(int32_t *acc, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K) {
#pragma omp parallel for schedule(static) if ((long)M * N * K > (1L << 20))
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int8_t *x = X + (size_t)m * ldx, *w = W + (size_t)n * K;
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)x[k] * w[k];
            acc[(size_t)m * N + n] = s;
        }
}

void i8ref_epilogue(const int32_t *acc, int M, int N, float sx, const float *sw, const float *bias, const float *qs,
                    int8_t *q_out, float *f_out) {
    for (size_t i = 0; i < (size_t)M * N; i++) {
        int n = (int)(i % N);
        float v = (float)acc[i] * (sx * sw[n]);
        if (bias) v += bias[n];
        if (q_out) q_out[i] = qr_quant_i8(v, qs[n]);
        if (f_out) f_out[i] = v;
    }
}

void i8ref_add_rmsnorm(float *resid, const float *delta, const float *w, int T, int D, float eps, float s, int8_t *q,
                       float *out) {
    float *v = mq_malloc((size_t)T * D * sizeof(float));
    op_add_rmsnorm(resid, delta, v, w, T, D, eps);
    for (size_t i = 0; i < (size_t)T * D; i++) q[i] = qr_quant_i8(v[i], s);
    if (out) memcpy(out, v, (size_t)T * D * sizeof(float));
    free(v);
}

void i8ref_conv1d(int8_t *out, int ldo, const int8_t *x, int ldx, int8_t *state, const int8_t *w, const float *sw,
                  const float *s_in, const float *bias, const float *s_out, int T, int C, int K) {
    const int H = K - 1;
    for (int c = 0; c < C; c++) {
        for (int t = 0; t < T; t++) {
            int32_t acc = 0;
            for (int j = 0; j < K; j++) {
                int s = t - H + j, v = 0;
                if (s >= 0) v = x[(size_t)s * ldx + c];
                else if (state) v = state[(size_t)c * H + H + s];
                acc += (int32_t)w[(size_t)c * K + j] * v;
            }
            float v = (bias ? bias[c] : 0.f) + (float)acc * (sw[c] * s_in[c]);
            out[(size_t)t * ldo + c] = qr_quant_i8(v / (1.0f + expf(-v)), s_out[c]);
        }
        if (state && H > 0) {
            int8_t nv[8];
            for (int j = 0; j < H; j++) {
                int tt = T - H + j;
                nv[j] = tt >= 0 ? x[(size_t)tt * ldx + c] : state[(size_t)c * H + H + tt];
            }
            memcpy(state + (size_t)c * H, nv, (size_t)H);
        }
    }
}

/* dense float copy of an int8 [T x C] (ld) block times s, plus bias[c] when given */
static float *deq(const int8_t *q, int ld, int T, int C, float s, const float *bias) {
    float *f = mq_malloc((size_t)T * C * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            float v = (float)q[(size_t)t * ld + c] * s;
            f[(size_t)t * C + c] = bias ? v + bias[c] : v;
        }
    return f;
}
/* the same with a scale per column */
static float *deq_cols(const int8_t *q, int ld, int T, int C, const float *s) {
    float *f = mq_malloc((size_t)T * C * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) f[(size_t)t * C + c] = (float)q[(size_t)t * ld + c] * s[c];
    return f;
}
static float *filled(int n, float v) {
    float *f = mq_malloc((size_t)n * sizeof(float) + 4);
    for (int i = 0; i < n; i++) f[i] = v;
    return f;
}

void i8ref_scan_m1v(float *y, const int8_t *u, int ldu, const float *su, const int8_t *dt, int lddt, float sdt,
                    const float *dt_bias, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb, float sc,
                    const int8_t *z, int ldz, float sz, const float *A, const float *D, float *state, int T, int Di,
                    int N) {
    float *fu = deq_cols(u, ldu, T, Di, su), *fd = deq(dt, lddt, T, Di, sdt, dt_bias);
    float *fb = deq(Bm, ldbc, T, N, sb, NULL), *fc = deq(Cm, ldbc, T, N, sc, NULL);
    float *fz = z ? deq(z, ldz, T, Di, sz, NULL) : NULL;
    /* the simulation: dt_proj's output (bias included) -> op_dt_softplus(lo 0, hi inf) */
    op_dt_softplus(fd, Di, fd, Di, NULL, T, Di, 0.0f, INFINITY);
    op_scan_m1(y, Di, fu, Di, fd, Di, A, fb, N, fc, N, D, fz, Di, state, T, Di, N);
    free(fu), free(fd), free(fb), free(fc), free(fz);
}

void i8ref_scan_m1(float *y, const int8_t *u, int ldu, float su, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb, float sc,
                   const int8_t *z, int ldz, float sz, const float *A, const float *D, float *state, int T, int Di, int N) {
    float *vu = filled(Di, su);
    i8ref_scan_m1v(y, u, ldu, vu, dt, lddt, sdt, dt_bias, Bm, Cm, ldbc, sb, sc, z, ldz, sz, A, D, state, T, Di, N);
    free(vu);
}

void i8ref_scan_m2v(float *y, const int8_t *x, int ldx, const float *sx, const int8_t *dt, int lddt, float sdt,
                    const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, int ldbc,
                    const float *sb, const float *sc, const float *A, const float *D, float *state, int T, int H, int P,
                    int G, int N) {
    const int Di = H * P, GN = G * N;
    float *fx = deq_cols(x, ldx, T, Di, sx), *fd = deq(dt, lddt, T, H, sdt, NULL);
    float *fb = deq_cols(Bm, ldbc, T, GN, sb), *fc = deq_cols(Cm, ldbc, T, GN, sc);
    op_dt_softplus(fd, H, fd, H, dt_bias, T, H, lo, hi);
    op_scan_m2(y, Di, fx, Di, fd, H, A, fb, GN, fc, GN, D, state, T, H, P, G, N);
    free(fx), free(fd), free(fb), free(fc);
}

void i8ref_scan_m2(float *y, const int8_t *x, int ldx, float sx, const int8_t *dt, int lddt, float sdt,
                   const float *dt_bias, float lo, float hi, const int8_t *Bm, const int8_t *Cm, int ldbc, float sb,
                   float sc, const float *A, const float *D, float *state, int T, int H, int P, int G, int N) {
    float *vx = filled(H * P, sx), *vb = filled(G * N, sb), *vc = filled(G * N, sc);
    i8ref_scan_m2v(y, x, ldx, vx, dt, lddt, sdt, dt_bias, lo, hi, Bm, Cm, ldbc, vb, vc, A, D, state, T, H, P, G, N);
    free(vx), free(vb), free(vc);
}

void i8ref_gated_rmsnorm(float *out, const float *y, const int8_t *z, int ldz, float sz, const float *w, int T, int D,
                         float eps, int norm_before_gate) {
    float *fz = deq(z, ldz, T, D, sz, NULL);
    op_gated_rmsnorm(out, D, y, D, fz, D, w, T, D, D, eps, norm_before_gate);
    free(fz);
}

/* ---------------------------------------------------------------- plan */

static int in_dim(const mq_config *c) { return cfg_in_proj_dim(c); }
static int xp_dim(const mq_config *c) { return c->arch == MQ_MAMBA1 ? c->dt_rank + 2 * c->d_state : 0; }

static float *wscales(const q_weight *w) {
    float *s = mq_malloc((size_t)w->rows * sizeof(float));
    for (int r = 0; r < w->rows; r++) s[r] = w->scale[w->nscale == 1 ? 0 : r];
    return s;
}
/* n columns of segments {ncols[i], scale[i]} */
static float *segments(int n, const int *ncols, const float *scale, int nseg) {
    float *s = mq_malloc((size_t)n * sizeof(float) + 4);
    int c = 0;
    for (int i = 0; i < nseg; i++)
        for (int k = 0; k < ncols[i]; k++) s[c++] = scale[i];
    if (c != n) mq_die("i8ref_plan: %d columns, expected %d (internal error)", c, n);
    return s;
}
static int check_weight(const q_weight *w, int rows, int cols, int layer, const char *name) {
    const int w4 = w->bits == 4, ok_scales = w4 ? w->group > 0 && cols % w->group == 0 && w->nscale == rows * (cols / w->group)
                                               : w->nscale == 1 || w->nscale == rows;
    if (!w->q || !w->scale || w->rows != rows || w->cols != cols || !ok_scales)
        return mq_fail("int8 pass: layer %d %s is %dx%d with %d scales, expected %dx%d", layer, name, w->rows, w->cols,
                       w->nscale, rows, cols);
    return 0;
}
/* a weight's scales per row for the int8 epilogue; NULL for an int4 weight (its group scales are its own) */
static float *row_scales(const q_weight *w) { return w->bits == 4 ? NULL : wscales(w); }
static int need_scale(float s, int layer, const char *what, int part) {
    if (s > 0 && isfinite(s)) return 0;
    return mq_fail("int8 pass: layer %d has no valid %s scale%s (%g); every W8A8 role must be quantized", layer, what,
                   part == 1 ? " of part B" : part == 2 ? " of part C" : "", (double)s);
}

int i8ref_plan_build(const q_model *qm, i8ref_plan *p) {
    const mq_config *c = &qm->cfg;
    const int D = c->d_model, E = c->d_inner, in = in_dim(c), cd = cfg_conv_dim(c), K = c->d_conv, N = c->d_state;
    const int GN = c->n_groups * c->d_state, xw = xp_dim(c), H = c->n_heads;
    memset(p, 0, sizeof *p);
    for (int l = 0; l < c->n_layer; l++) {
        const q_layer *Q = &qm->layers[l];
        struct { mq_act_role role; int part; } want[] = {
            {MQ_ACT_IN_PROJ_IN, 0}, {MQ_ACT_CONV_IN, 0}, {MQ_ACT_Z, 0}, {MQ_ACT_SSM_X, 0}, {MQ_ACT_DT, 0},
            {MQ_ACT_OUT_PROJ_IN, 0}, {c->arch == MQ_MAMBA1 ? MQ_ACT_X_PROJ_OUT : MQ_ACT_B, 0},
            {c->arch == MQ_MAMBA1 ? MQ_ACT_X_PROJ_OUT : MQ_ACT_C, 0}, {MQ_ACT_CONV_IN, c->arch == MQ_MAMBA2 ? 1 : 0},
            {MQ_ACT_CONV_IN, c->arch == MQ_MAMBA2 ? 2 : 0}};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            if (!q_layer_vector_scaled(qm, l, want[i].role) &&
                need_scale(Q->act_scale[want[i].role][want[i].part], l, q_role_key(c->arch, want[i].role), want[i].part))
                return -1;
        if (check_weight(&Q->in_proj, in, D, l, "in_proj") || check_weight(&Q->conv1d, cd, K, l, "conv1d") ||
            check_weight(&Q->out_proj, D, E, l, "out_proj") ||
            (c->arch == MQ_MAMBA1 && (check_weight(&Q->x_proj, xw, E, l, "x_proj") ||
                                      check_weight(&Q->dt_proj, E, c->dt_rank, l, "dt_proj"))))
            return -1;
    }
    if (qm->lm_head_q.q && (check_weight(&qm->lm_head_q, c->vocab_size, D, -1, "lm_head") || !(qm->lm_head_in_scale > 0)))
        return qm->lm_head_in_scale > 0 ? -1 : mq_fail("int8 pass: quantized lm_head without an input scale");
    p->n_layer = c->n_layer;
    p->layers = mq_calloc((size_t)c->n_layer, sizeof *p->layers);
    for (int l = 0; l < c->n_layer; l++) {
        const q_layer *Q = &qm->layers[l];
        i8ref_plan_layer *L = &p->layers[l];
        L->s_in = Q->act_scale[MQ_ACT_IN_PROJ_IN][0];
        L->s_conv0 = Q->act_scale[MQ_ACT_CONV_IN][0];
        L->s_z = Q->act_scale[MQ_ACT_Z][0];
        L->s_u = Q->act_scale[MQ_ACT_SSM_X][0];
        L->s_dt = Q->act_scale[MQ_ACT_DT][0];
        L->s_y = Q->act_scale[MQ_ACT_OUT_PROJ_IN][0];
        L->in_sw = row_scales(&Q->in_proj);
        L->conv_sw = wscales(&Q->conv1d);
        L->out_sw = row_scales(&Q->out_proj);
        if (c->arch == MQ_MAMBA1) {
            L->s_xp = L->s_B = L->s_C = Q->act_scale[MQ_ACT_X_PROJ_OUT][0];
            const int ni[2] = {E, E}, nc[1] = {E};
            const float si[2] = {L->s_conv0, L->s_z};
            L->in_qs = segments(in, ni, si, 2);
            L->conv_sin = segments(cd, nc, &L->s_conv0, 1);
            L->conv_sout = mq_malloc((size_t)cd * sizeof(float)); /* per channel: quamba2 clusters x */
            for (int j = 0; j < cd; j++) L->conv_sout[j] = q_act_col_scale(qm, l, MQ_ACT_SSM_X, j);
            L->xp_sw = wscales(&Q->x_proj);
            L->xp_qs = segments(xw, &xw, &L->s_xp, 1);
            L->dt_sw = wscales(&Q->dt_proj);
            L->dt_qs = segments(E, &E, &L->s_dt, 1);
            L->A = mq_malloc((size_t)E * N * sizeof(float));
            for (size_t i = 0; i < (size_t)E * N; i++) L->A[i] = -expf(Q->A_log[i]); /* as q_sim_build */
        } else {
            const float *cin = Q->act_scale[MQ_ACT_CONV_IN];
            L->s_B = Q->act_scale[MQ_ACT_B][0];
            L->s_C = Q->act_scale[MQ_ACT_C][0];
            const int ni[5] = {E, E, GN, GN, H}, nc[3] = {E, GN, GN};
            const float si[5] = {L->s_z, cin[0], cin[1], cin[2], L->s_dt};
            L->in_qs = segments(in, ni, si, 5);
            L->conv_sin = segments(cd, nc, cin, 3);
            /* the conv output x | B | C, a scale per column (quamba2: clustered x, B / C per SSD group) */
            L->conv_sout = mq_malloc((size_t)cd * sizeof(float));
            for (int j = 0; j < cd; j++)
                L->conv_sout[j] = j < E ? q_act_col_scale(qm, l, MQ_ACT_SSM_X, j)
                                        : q_act_col_scale(qm, l, j < E + GN ? MQ_ACT_B : MQ_ACT_C, (j - E) % GN);
            L->A = mq_malloc((size_t)H * sizeof(float));
            for (int h = 0; h < H; h++) L->A[h] = -expf(Q->A_log[h]);
        }
    }
    if (qm->lm_head_q.q) p->lm_sw = row_scales(&qm->lm_head_q);
    return 0;
}

void i8ref_plan_free(i8ref_plan *p) {
    for (int l = 0; l < p->n_layer && p->layers; l++) {
        i8ref_plan_layer *L = &p->layers[l];
        free(L->in_sw), free(L->in_qs), free(L->conv_sw), free(L->conv_sin), free(L->conv_sout), free(L->out_sw);
        free(L->xp_sw), free(L->xp_qs), free(L->dt_sw), free(L->dt_qs), free(L->A);
    }
    free(p->layers);
    free(p->lm_sw);
    memset(p, 0, sizeof *p);
}

/* ---------------------------------------------------------------- CPU mirror of the GPU pass */

static int hook(const mq_hooks *hk, int layer, mq_act_role role, const void *x, mq_dtype dt, float s, int rows, int cols,
                int ld) {
    if (!hk || !hk->fn) return 0;
    mq_act a = {.layer = layer, .role = role, .dtype = dt, .scale = s, .x = (void *)x, .rows = rows, .cols = cols, .ld = ld};
    return hk->fn(hk->ctx, &a);
}
/* a hook's error ends the forward (cleanup at `done`) */
#define HOOK(...)                                     \
    do {                                              \
        if (hook(hk, __VA_ARGS__)) goto done;         \
    } while (0)

/* out[M x N] (ld ldo) = epilogue(X W^T): int8 (q) or FP32 (f) */
/* quamba2 W4A8: int4 W (codes one per int8) with a scale per group of columns: exact int32 sums per
 * group, added in FP32 times their scales in group order, v = sum * sx + bias (the 4-bit GEMV's
 * epilogue, ssm/w4_gemv.cu), then q or f as i8ref_epilogue. */
static void linear_w4(const int8_t *X, int ldx, const q_weight *W, int M, float sx, const float *bias, const float *qs,
                      int8_t *q, float *f, int ldo) {
    const int N = W->rows, K = W->cols, G = W->group, ng = K / G;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            const int8_t *x = X + (size_t)m * ldx, *w = W->q + (size_t)n * K;
            float s = 0.f;
            for (int g = 0; g < ng; g++) {
                int32_t acc = 0;
                for (int k = g * G; k < (g + 1) * G; k++) acc += (int32_t)x[k] * w[k];
                s += (float)acc * W->scale[(size_t)n * ng + g];
            }
            const float v = s * sx + (bias ? bias[n] : 0.f);
            if (q) q[(size_t)m * ldo + n] = qr_quant_i8(v, qs[n]);
            if (f) f[(size_t)m * ldo + n] = v;
        }
}

static void linear(const int8_t *X, int ldx, const q_weight *W, int M, float sx, const float *sw, const float *bias,
                   const float *qs, int8_t *q, float *f, int ldo) {
    if (W->bits == 4) {
        linear_w4(X, ldx, W, M, sx, bias, qs, q, f, ldo);
        return;
    }
    const int N = W->rows, K = W->cols;
    int32_t *acc = mq_malloc((size_t)M * N * sizeof(int32_t) + 4);
    i8ref_gemm(acc, X, ldx, W->q, M, N, K);
    int8_t *qt = q ? mq_malloc((size_t)M * N + 1) : NULL;
    float *ft = f ? mq_malloc((size_t)M * N * sizeof(float) + 4) : NULL;
    i8ref_epilogue(acc, M, N, sx, sw, bias, qs, qt, ft);
    for (int m = 0; m < M; m++) {
        if (q) memcpy(q + (size_t)m * ldo, qt + (size_t)m * N, (size_t)N);
        if (f) memcpy(f + (size_t)m * ldo, ft + (size_t)m * N, (size_t)N * sizeof(float));
    }
    free(acc), free(qt), free(ft);
}

void i8ref_linear_xcols(int8_t *out, const int8_t *X, int ldx, const float *sx, const int8_t *W, const float *sw,
                        const float *qs, int M, int N, int K) {
    float *x = deq_cols(X, ldx, M, K, sx), *w = mq_malloc((size_t)N * K * sizeof(float)), *y = mq_malloc((size_t)M * N * 4);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) w[(size_t)n * K + k] = qr_deq_i8(W[(size_t)n * K + k], sw[n]);
    mat_linear(y, x, w, NULL, M, N, K);
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) out[(size_t)m * N + n] = qr_quant_i8(y[(size_t)m * N + n], qs[n]);
    free(x), free(w), free(y);
}

int i8ref_forward(const q_model *qm, const i8ref_plan *p, const int32_t *tokens, int T, const mq_hooks *hk, float *hidden,
                  float *nll) {
    const mq_config *c = &qm->cfg;
    const int D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, V = c->vocab_size;
    const int in = in_dim(c), cd = cfg_conv_dim(c), xw = xp_dim(c), GN = c->n_groups * N, H = c->n_heads;
    for (int t = 0; t < T; t++)
        if (tokens[t] < 0 || tokens[t] >= V) return mq_fail("int8 CPU pass: token %d at %d outside the vocabulary", tokens[t], t);
    const size_t TT = (size_t)T;
    float *resid = mq_malloc(TT * D * 4), *delta = mq_malloc(TT * D * 4), *y = mq_malloc(TT * E * 4);
    float *g = mq_malloc(TT * E * 4);
    int rc = -1;
    int8_t *h8 = mq_malloc(TT * D), *xz8 = mq_malloc(TT * in), *xc8 = mq_malloc(TT * cd), *yq8 = mq_malloc(TT * E);
    int8_t *xdbl8 = mq_malloc(TT * (xw ? xw : 1)), *dt8 = mq_malloc(TT * E);
    for (int t = 0; t < T; t++) memcpy(resid + (size_t)t * D, qm->embed + (size_t)tokens[t] * D, (size_t)D * 4);
    for (int l = 0; l < c->n_layer; l++) {
        const q_layer *Q = &qm->layers[l];
        const i8ref_plan_layer *L = &p->layers[l];
        i8ref_add_rmsnorm(resid, l ? delta : NULL, Q->norm_w, T, D, c->norm_eps, L->s_in, h8, NULL);
        if (l) HOOK(l - 1, MQ_ACT_RESID, resid, MQ_F32, 0, T, D, D);
        HOOK(l, MQ_ACT_IN_PROJ_IN, h8, MQ_I8, L->s_in, T, D, D);
        linear(h8, D, &Q->in_proj, T, L->s_in, L->in_sw, Q->in_proj_b, L->in_qs, xz8, NULL, in);
        const float *ssm_out;
        if (c->arch == MQ_MAMBA1) {
            const int8_t *x8 = xz8, *z8 = xz8 + E;
            const int R = c->dt_rank;
            HOOK(l, MQ_ACT_CONV_IN, x8, MQ_I8, L->s_conv0, T, E, in);
            HOOK(l, MQ_ACT_Z, z8, MQ_I8, L->s_z, T, E, in);
            i8ref_conv1d(xc8, E, x8, in, NULL, Q->conv1d.q, L->conv_sw, L->conv_sin, Q->conv_b, L->conv_sout, T, E, K);
            HOOK(l, MQ_ACT_SSM_X, xc8, MQ_I8, L->s_u, T, E, E);
            if (Q->x_scale) i8ref_linear_xcols(xdbl8, xc8, E, L->conv_sout, Q->x_proj.q, L->xp_sw, L->xp_qs, T, xw, E);
            else linear(xc8, E, &Q->x_proj, T, L->s_u, L->xp_sw, NULL, L->xp_qs, xdbl8, NULL, xw);
            HOOK(l, MQ_ACT_X_PROJ_OUT, xdbl8, MQ_I8, L->s_xp, T, xw, xw);
            linear(xdbl8, xw, &Q->dt_proj, T, L->s_xp, L->dt_sw, NULL, L->dt_qs, dt8, NULL, E);
            HOOK(l, MQ_ACT_DT, dt8, MQ_I8, L->s_dt, T, E, E);
            i8ref_scan_m1v(y, xc8, E, L->conv_sout, dt8, E, L->s_dt, Q->dt_proj_b, xdbl8 + R, xdbl8 + R + N, xw, L->s_B,
                           L->s_C, z8, in, L->s_z, L->A, Q->D, NULL, T, E, N);
            ssm_out = y;
        } else {
            const int8_t *z8 = xz8, *xbc8 = xz8 + E, *dtq = xz8 + E + cd;
            HOOK(l, MQ_ACT_CONV_IN, xbc8, MQ_I8, L->s_conv0, T, cd, in);
            HOOK(l, MQ_ACT_Z, z8, MQ_I8, L->s_z, T, E, in);
            HOOK(l, MQ_ACT_DT, dtq, MQ_I8, L->s_dt, T, H, in);
            i8ref_conv1d(xc8, cd, xbc8, in, NULL, Q->conv1d.q, L->conv_sw, L->conv_sin, Q->conv_b, L->conv_sout, T, cd, K);
            HOOK(l, MQ_ACT_SSM_X, xc8, MQ_I8, L->s_u, T, E, cd);
            HOOK(l, MQ_ACT_B, xc8 + E, MQ_I8, L->s_B, T, GN, cd);
            HOOK(l, MQ_ACT_C, xc8 + E + GN, MQ_I8, L->s_C, T, GN, cd);
            i8ref_scan_m2v(y, xc8, cd, L->conv_sout, dtq, in, L->s_dt, Q->dt_bias, c->dt_limit_min, c->dt_limit_max,
                           xc8 + E, xc8 + E + GN, cd, L->conv_sout + E, L->conv_sout + E + GN, L->A, Q->D, NULL, T, H,
                           c->head_dim, c->n_groups, N);
            i8ref_gated_rmsnorm(g, y, z8, in, L->s_z, Q->gnorm_w, T, E, c->norm_eps, c->norm_before_gate);
            ssm_out = g;
        }
        /* the GPU keeps y in FP16 between the scan (gated norm) and its quantization */
        float *y16 = (float *)ssm_out;
        q_round_f16(y16, TT * E);
        HOOK(l, MQ_ACT_SSM_OUT, y16, MQ_F32, 0, T, E, E);
        if (qm->hadamard_n) had_transform_quant_f32(y16, yq8, T, E, L->s_y);
        else
            for (size_t i = 0; i < TT * E; i++) yq8[i] = qr_quant_i8(y16[i], L->s_y);
        HOOK(l, MQ_ACT_OUT_PROJ_IN, yq8, MQ_I8, L->s_y, T, E, E);
        linear(yq8, E, &Q->out_proj, T, L->s_y, L->out_sw, Q->out_proj_b, NULL, NULL, delta, D);
        q_round_f16(delta, TT * D); /* out_proj writes FP16 */
    }
    op_add_rmsnorm(resid, delta, hidden, qm->norm_f, T, D, c->norm_eps);
    HOOK(c->n_layer - 1, MQ_ACT_RESID, resid, MQ_F32, 0, T, D, D);
    if (nll && T > 1) {
        enum { BLK = 64 };
        float *logits = mq_malloc((size_t)BLK * V * 4), *h16 = mq_malloc((size_t)BLK * D * 4);
        int8_t *hq8 = mq_malloc((size_t)BLK * D);
        const float *lm = qm->lm_head ? qm->lm_head : qm->embed;
        for (int t0 = 0; t0 < T - 1; t0 += BLK) {
            const int n = T - 1 - t0 < BLK ? T - 1 - t0 : BLK;
            const float *ht = hidden + (size_t)t0 * D;
            if (qm->lm_head_q.q) {
                for (size_t k = 0; k < (size_t)n * D; k++) hq8[k] = qr_quant_i8(ht[k], qm->lm_head_in_scale);
                linear(hq8, D, &qm->lm_head_q, n, qm->lm_head_in_scale, p->lm_sw, NULL, NULL, NULL, logits, V);
            } else {
                memcpy(h16, ht, (size_t)n * D * 4);
                q_round_f16(h16, (size_t)n * D); /* lm_head reads the FP16 copy of norm_f's output */
                mat_linear(logits, h16, lm, NULL, n, V, D);
            }
            for (int r = 0; r < n; r++) {
                const float *lr = logits + (size_t)r * V;
                nll[t0 + r] = (float)(op_logsumexp(lr, V) - lr[tokens[t0 + r + 1]]);
            }
        }
        free(logits), free(h16), free(hq8);
    }
    rc = 0;
done:
    free(resid), free(delta), free(y), free(g), free(h8), free(xz8), free(xc8), free(yq8), free(xdbl8), free(dt8);
    return rc;
}
