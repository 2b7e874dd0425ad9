/* ssm/ops: every op against a plain double-precision loop written from the formulas in ops.h, on
 * odd sizes (channel counts not multiples of 8), strided views, and carried state: running a
 * sequence in two pieces must equal running it whole. Also the accuracy of the vector exp/SiLU. */
#include "tests/test.h"
#include "core/err.h"
#include "core/mat.h"
#include "ssm/ops.h"
#include <stdint.h>

static uint64_t g_rng = 0x243F6A8885A308D3ull;
static float frand(void) {
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}
static float *rand_vec(size_t n, float scale) {
    float *v = mq_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = scale * frand();
    return v;
}
static double dsilu(double x) { return x / (1 + exp(-x)); }
static double dsoftplus(double x) { return x > 20 ? x : log1p(exp(x)); }

static double max_rel(const float *a, int lda, const double *b, int rows, int cols) {
    double worst = 0, scale = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) scale = fmax(scale, fabs(b[r * cols + c]));
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double e = fabs(a[(size_t)r * lda + c] - b[r * cols + c]) / (scale + 1e-30);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    return worst;
}

static void test_exp_silu_softplus(void) {
    enum { N = 200003 };
    float *x = mq_malloc(N * sizeof(float)), *y = mq_malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * i / (N - 1);
    op_exp(y, x, N);
    double worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - exp((double)x[i])) / exp((double)x[i]));
    T_CHECK(worst < 2.5e-7, "exp max relative error %.3g over [-87, 88]", worst);
    float edge[4] = {-100.0f, -88.0f, 89.0f, 0.0f};
    op_exp(edge, edge, 4);
    T_CHECK(edge[0] == 0 && edge[1] == 0 && isinf(edge[2]) && edge[3] == 1.0f, "exp edges %g %g %g %g",
            edge[0], edge[1], edge[2], edge[3]);

    for (int i = 0; i < N; i++) y[i] = x[i] = -40.0f + 80.0f * i / (N - 1);
    op_silu(y, N);
    worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - dsilu(x[i])) / fmax(1e-30, fabs(dsilu(x[i]))));
    T_CHECK(worst < 5e-7, "silu max relative error %.3g", worst);

    op_dt_softplus(y, 1, x, 1, NULL, N, 1, 0.0f, INFINITY);
    worst = 0;
    for (int i = 0; i < N; i++) worst = fmax(worst, fabs(y[i] - dsoftplus(x[i])) / dsoftplus(x[i]));
    T_CHECK(worst < 5e-7, "softplus max relative error %.3g", worst);
    free(x); free(y);
}

static void test_dt_softplus_bias_clamp(void) {
    int T = 9, C = 11, ld = 15;
    float *src = rand_vec((size_t)T * ld, 4), *bias = rand_vec(C, 2), *dst = mq_malloc((size_t)T * ld * sizeof(float));
    op_dt_softplus(dst, ld, src, ld, bias, T, C, 0.5f, 2.0f);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            double v = fmin(2.0, fmax(0.5, dsoftplus((double)src[t * ld + c] + bias[c])));
            worst = fmax(worst, fabs(dst[t * ld + c] - v));
        }
    T_CHECK(worst < 1e-6, "dt softplus+bias+clamp max abs error %.3g", worst);
    free(src); free(bias); free(dst);
}

/* Reference conv over the concatenation [history ; x]. */
static void ref_conv(double *y, const float *hist, const float *x, int ldx, const float *w, const float *b,
                     int T, int C, int K, int silu) {
    int H = K - 1;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) {
            double s = b ? b[c] : 0;
            for (int j = 0; j < K; j++) {
                int p = t - H + j;
                s += (double)w[c * K + j] * (p >= 0 ? x[(size_t)p * ldx + c] : hist ? hist[c * H + H + p] : 0);
            }
            y[t * C + c] = silu ? dsilu(s) : s;
        }
}

static void test_conv1d(void) {
    int T = 23, C = 37, K = 4, ldx = 41, ldy = 39, H = K - 1;
    float *x = rand_vec((size_t)T * ldx, 2), *w = rand_vec((size_t)C * K, 1), *b = rand_vec(C, 0.5f);
    float *hist = rand_vec((size_t)C * H, 2), *state = mq_malloc((size_t)C * H * sizeof(float));
    float *y = mq_malloc((size_t)T * ldy * sizeof(float));
    double *ref = mq_malloc((size_t)T * C * sizeof(double));
    for (int silu = 0; silu < 2; silu++) {
        ref_conv(ref, NULL, x, ldx, w, b, T, C, K, silu);
        op_conv1d(y, ldy, x, ldx, w, b, NULL, T, C, K, silu);
        T_CHECK(max_rel(y, ldy, ref, T, C) < 1e-6, "zero history, silu %d: %.3g", silu, max_rel(y, ldy, ref, T, C));
    }
    /* With carried history, in pieces of 1, 2 (shorter than the history) and the rest. */
    ref_conv(ref, hist, x, ldx, w, NULL, T, C, K, 1);
    memcpy(state, hist, (size_t)C * H * sizeof(float));
    op_conv1d(y, ldy, x, ldx, w, NULL, state, 1, C, K, 1);
    op_conv1d(y + ldy, ldy, x + ldx, ldx, w, NULL, state, 2, C, K, 1);
    op_conv1d(y + 3 * ldy, ldy, x + 3 * ldx, ldx, w, NULL, state, T - 3, C, K, 1);
    T_CHECK(max_rel(y, ldy, ref, T, C) < 1e-6, "carried history in pieces: %.3g", max_rel(y, ldy, ref, T, C));
    int bad = 0;
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H; i++) bad += state[c * H + i] != x[(size_t)(T - H + i) * ldx + c];
    T_CHECK(bad == 0, "final state must be the last %d inputs (%d differ)", H, bad);
    free(x); free(w); free(b); free(hist); free(state); free(y); free(ref);
}

static void test_scan_m1(void) {
    int T = 29, Di = 19, N = 5, ld = 23;
    float *u = rand_vec((size_t)T * ld, 2), *dl = rand_vec((size_t)T * ld, 1), *z = rand_vec((size_t)T * ld, 3);
    float *A = rand_vec((size_t)Di * N, 1), *B = rand_vec((size_t)T * 2 * N, 1), *C = rand_vec((size_t)T * 2 * N, 1);
    float *D = rand_vec(Di, 1), *s0 = rand_vec((size_t)Di * N, 1);
    for (int i = 0; i < T * ld; i++) dl[i] = (float)dsoftplus(3 * dl[i]);
    for (int i = 0; i < Di * N; i++) A[i] = -expf(2 * A[i]);
    double *ref = mq_malloc((size_t)T * Di * sizeof(double)), *h = mq_malloc((size_t)Di * N * sizeof(double));
    for (int i = 0; i < Di * N; i++) h[i] = s0[i];
    for (int t = 0; t < T; t++)
        for (int d = 0; d < Di; d++) {
            double delta = dl[t * ld + d], x = u[t * ld + d], s = 0;
            for (int n = 0; n < N; n++) {
                h[d * N + n] = exp(delta * A[d * N + n]) * h[d * N + n] + delta * B[t * 2 * N + n] * x;
                s += h[d * N + n] * C[t * 2 * N + n];
            }
            ref[t * Di + d] = (s + D[d] * x) * dsilu(z[t * ld + d]);
        }
    float *y = mq_malloc((size_t)T * ld * sizeof(float)), *st = mq_malloc((size_t)Di * N * sizeof(float));
    memcpy(st, s0, (size_t)Di * N * sizeof(float));
    int T1 = 10;  /* two pieces through the carried state */
    op_scan_m1(y, ld, u, ld, dl, ld, A, B, 2 * N, C, 2 * N, D, z, ld, st, T1, Di, N);
    op_scan_m1(y + T1 * ld, ld, u + T1 * ld, ld, dl + T1 * ld, ld, A, B + T1 * 2 * N, 2 * N, C + T1 * 2 * N,
               2 * N, D, z + T1 * ld, ld, st, T - T1, Di, N);
    double e = max_rel(y, ld, ref, T, Di);
    T_CHECK(e < 2e-6, "y relative error %.3g", e);
    double es = 0;
    for (int i = 0; i < Di * N; i++) es = fmax(es, fabs(st[i] - h[i]));
    T_CHECK(es < 1e-5, "final state max abs error %.3g", es);
    free(u); free(dl); free(z); free(A); free(B); free(C); free(D); free(s0); free(ref); free(h); free(y); free(st);
}

/* --state-format: op_state_round's formats, and the scans rounding every state row after each token,
 * which must equal token-by-token FP32 calls with the rows rounded in between (bit for bit). */
static void test_state_format(void) {
    float r[2] = {1.00390625f, 1.01171875f}; /* bf16: ties to even, down and up */
    op_state_round(r, 2, OP_STATE_BF16);
    T_CHECK(r[0] == 1.0f && r[1] == 1.015625f, "bf16 rounding: %.9g %.9g", r[0], r[1]);
    float f[3] = {1.0f + 1.0f / 4096, 5.0e-8f, 1.0e6f}; /* a tie to even, the smallest subnormal 2^-24, overflow */
    op_state_round(f, 3, OP_STATE_F16);
    T_CHECK(f[0] == 1.0f && f[1] == 5.96046448e-08f && isinf(f[2]), "fp16 rounding: %.9g %.9g %.9g", f[0], f[1], f[2]);
    float q[5] = {2.54f, -1.0f, 0.011f, 0.009f, 0.0f}, s = 2.54f / 127;
    op_state_round(q, 5, OP_STATE_I8);
    T_CHECK(fabsf(q[0] - 2.54f) <= 1e-6f && fabsf(q[1] + 1.0f) <= s / 2 && q[2] == s && q[3] == 0.0f && q[4] == 0.0f,
            "int8 rounding: %.9g %.9g %.9g %.9g", q[0], q[1], q[2], q[3]);
    /* int8g16: a scale per 16 states, so small values beside a large group keep their precision */
    float gq[20], gs = 0.02f / 127;
    for (int i = 0; i < 20; i++) gq[i] = i < 16 ? 2.54f : (i == 16 ? 0.02f : 0.011f);
    op_state_round(gq, 20, OP_STATE_I8G);
    T_CHECK(gq[0] == 2.54f / 127 * 127 && fabsf(gq[16] - 0.02f) <= 1e-9f && fabsf(gq[17] - rintf(0.011f / gs) * gs) <= 1e-9f,
            "int8g16 rounding: %.9g %.9g %.9g", gq[0], gq[16], gq[17]);
    T_CHECK(op_state_format_parse("int8") == OP_STATE_I8 && op_state_format_parse("int8g16") == OP_STATE_I8G &&
            op_state_format_parse("fp8") == -1, "format names");
    const int T = 7, Di = 11, N = 6, H = 3, P = 5, G = 1;
    for (int fmt = OP_STATE_F16; fmt < OP_STATE_NFMT; fmt++) {
        /* Mamba1 */
        float *u = rand_vec((size_t)T * Di, 2), *dl = rand_vec((size_t)T * Di, 1), *A = rand_vec((size_t)Di * N, 1);
        float *B = rand_vec((size_t)T * N, 1), *C = rand_vec((size_t)T * N, 1), *D = rand_vec(Di, 1);
        float *s1 = rand_vec((size_t)Di * N, 1), *s2 = mq_malloc(sizeof(float) * Di * N);
        for (int i = 0; i < T * Di; i++) dl[i] = (float)dsoftplus(3 * dl[i]);
        for (int i = 0; i < Di * N; i++) A[i] = -expf(2 * A[i]);
        memcpy(s2, s1, sizeof(float) * Di * N);
        float *y1 = mq_malloc(sizeof(float) * T * Di), *y2 = mq_malloc(sizeof(float) * T * Di);
        op_set_state_format(fmt);
        op_scan_m1(y1, Di, u, Di, dl, Di, A, B, N, C, N, D, NULL, 0, s1, T, Di, N);
        op_set_state_format(OP_STATE_F32);
        for (int t = 0; t < T; t++) {
            op_scan_m1(y2 + t * Di, Di, u + t * Di, Di, dl + t * Di, Di, A, B + t * N, N, C + t * N, N, D, NULL, 0, s2, 1,
                       Di, N);
            for (int d = 0; d < Di; d++) op_state_round(s2 + d * N, N, fmt);
        }
        T_CHECK(!memcmp(y1, y2, sizeof(float) * T * Di) && !memcmp(s1, s2, sizeof(float) * Di * N),
                "scan_m1 with the %s state differs from rounded steps", op_state_format_name(fmt));
        free(u), free(dl), free(A), free(B), free(C), free(D), free(s1), free(s2), free(y1), free(y2);
        /* Mamba2 */
        float *x = rand_vec((size_t)T * H * P, 2), *dt = rand_vec((size_t)T * H, 1), *A2 = rand_vec(H, 1);
        float *B2 = rand_vec((size_t)T * G * N, 1), *C2 = rand_vec((size_t)T * G * N, 1), *D2 = rand_vec(H, 1);
        float *h1 = rand_vec((size_t)H * P * N, 1), *h2 = mq_malloc(sizeof(float) * H * P * N);
        for (int i = 0; i < T * H; i++) dt[i] = (float)dsoftplus(dt[i]);
        for (int i = 0; i < H; i++) A2[i] = -expf(A2[i]);
        memcpy(h2, h1, sizeof(float) * H * P * N);
        float *z1 = mq_malloc(sizeof(float) * T * H * P), *z2 = mq_malloc(sizeof(float) * T * H * P);
        op_set_state_format(fmt);
        op_scan_m2(z1, H * P, x, H * P, dt, H, A2, B2, G * N, C2, G * N, D2, h1, T, H, P, G, N);
        op_set_state_format(OP_STATE_F32);
        for (int t = 0; t < T; t++) {
            op_scan_m2(z2 + t * H * P, H * P, x + t * H * P, H * P, dt + t * H, H, A2, B2 + t * G * N, G * N,
                       C2 + t * G * N, G * N, D2, h2, 1, H, P, G, N);
            for (int r = 0; r < H * P; r++) op_state_round(h2 + r * N, N, fmt);
        }
        T_CHECK(!memcmp(z1, z2, sizeof(float) * T * H * P) && !memcmp(h1, h2, sizeof(float) * H * P * N),
                "scan_m2 with the %s state differs from rounded steps", op_state_format_name(fmt));
        free(x), free(dt), free(A2), free(B2), free(C2), free(D2), free(h1), free(h2), free(z1), free(z2);
    }
}

/* the Mamba2 recurrence in double from the state h [H x P x N] (updated): ref [T x H*P] */
static void ref_scan_m2(double *ref, double *h, const float *x, int ldx, const float *dt, const float *A,
                        const float *B, const float *C, int ldbc, const float *D, int T, int H, int P, int G, int N) {
    for (int t = 0; t < T; t++)
        for (int hd = 0; hd < H; hd++) {
            int g = hd / (H / G);
            double dA = exp((double)dt[t * H + hd] * A[hd]);
            for (int p = 0; p < P; p++) {
                double xv = x[t * ldx + hd * P + p], s = 0;
                for (int n = 0; n < N; n++) {
                    double *hh = &h[(hd * P + p) * N + n];
                    *hh = dA * *hh + xv * dt[t * H + hd] * B[t * ldbc + g * N + n];
                    s += *hh * C[t * ldbc + g * N + n];
                }
                ref[t * H * P + hd * P + p] = s + D[hd] * xv;
            }
        }
}

static void test_scan_m2(void) {
    int T = 21, H = 6, P = 13, G = 2, N = 11, ldx = H * P + 3, ldbc = G * N + 1;
    float *x = rand_vec((size_t)T * ldx, 2), *dt = rand_vec((size_t)T * H, 1), *A = rand_vec(H, 1);
    float *B = rand_vec((size_t)T * ldbc, 1), *C = rand_vec((size_t)T * ldbc, 1), *D = rand_vec(H, 1);
    float *s0 = rand_vec((size_t)H * P * N, 1);
    for (int i = 0; i < T * H; i++) dt[i] = (float)dsoftplus(2 * dt[i]);
    for (int i = 0; i < H; i++) A[i] = -expf(2 * A[i]);
    double *ref = mq_malloc((size_t)T * H * P * sizeof(double)), *h = mq_malloc((size_t)H * P * N * sizeof(double));
    for (int i = 0; i < H * P * N; i++) h[i] = s0[i];
    ref_scan_m2(ref, h, x, ldx, dt, A, B, C, ldbc, D, T, H, P, G, N);
    float *y = mq_malloc((size_t)T * ldx * sizeof(float)), *st = mq_malloc((size_t)H * P * N * sizeof(float));
    memcpy(st, s0, (size_t)H * P * N * sizeof(float));
    for (int t = 0; t < T; t++)  /* one step at a time, as decode does */
        op_scan_m2(y + t * ldx, ldx, x + t * ldx, ldx, dt + t * H, H, A, B + t * ldbc, ldbc, C + t * ldbc, ldbc,
                   D, st, 1, H, P, G, N);
    double e = max_rel(y, ldx, ref, T, H * P);
    T_CHECK(e < 2e-6, "stepwise y relative error %.3g", e);
    op_scan_m2(y, ldx, x, ldx, dt, H, A, B, ldbc, C, ldbc, D, NULL, T, H, P, G, N);
    /* from zero state the reference differs only by the decayed s0 term; recompute it */
    for (int i = 0; i < H * P * N; i++) h[i] = 0;
    ref_scan_m2(ref, h, x, ldx, dt, A, B, C, ldbc, D, T, H, P, G, N);
    e = max_rel(y, ldx, ref, T, H * P);
    T_CHECK(e < 2e-6, "prefill y relative error %.3g", e);
    free(x); free(dt); free(A); free(B); free(C); free(D); free(s0); free(ref); free(h); free(y); free(st);
}

static void test_gated_rmsnorm(void) {
    int T = 7, Dm = 36, ld = 40;
    float *y = rand_vec((size_t)T * ld, 2), *z = rand_vec((size_t)T * ld, 3), *w = rand_vec(Dm, 1);
    float *out = mq_malloc((size_t)T * ld * sizeof(float));
    double *ref = mq_malloc((size_t)T * Dm * sizeof(double));
    for (int nbg = 0; nbg < 2; nbg++)
        for (int group = Dm; group >= Dm / 3; group -= 2 * Dm / 3) {  /* whole row, then 3 groups of 12 */
            for (int t = 0; t < T; t++)
                for (int g0 = 0; g0 < Dm; g0 += group) {
                    double ss = 0;
                    for (int c = g0; c < g0 + group; c++) {
                        double v = y[t * ld + c] * (nbg ? 1 : dsilu(z[t * ld + c]));
                        ss += v * v;
                    }
                    double r = 1 / sqrt(ss / group + 1e-5);
                    for (int c = g0; c < g0 + group; c++)
                        ref[t * Dm + c] = w[c] * y[t * ld + c] * dsilu(z[t * ld + c]) * r;
                }
            op_gated_rmsnorm(out, ld, y, ld, z, ld, w, T, Dm, group, 1e-5f, nbg);
            double e = max_rel(out, ld, ref, T, Dm);
            T_CHECK(e < 1e-6, "norm_before_gate %d group %d: relative error %.3g", nbg, group, e);
        }
    free(y); free(z); free(w); free(out); free(ref);
}

static void test_logsumexp(void) {
    int sizes[] = {1, 7, 8, 513, 50280};
    for (int i = 0; i < 5; i++) {
        int n = sizes[i];
        float *x = rand_vec(n, 12);
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < n; j++) mx = fmax(mx, x[j]);
        for (int j = 0; j < n; j++) s += exp(x[j] - mx);
        T_NEAR(op_logsumexp(x, n), mx + log(s), 2e-6 * fmax(1, fabs(mx)), "logsumexp");
        free(x);
    }
}

static void test_embed_add_rmsnorm(void) {
    int V = 10, Dm = 13, T = 4;
    float *E = rand_vec((size_t)V * Dm, 1), *out = mq_malloc((size_t)T * Dm * sizeof(float));
    int32_t ok[4] = {0, 9, 3, 3}, bad[2] = {1, 10};
    T_CHECK(op_embed(out, E, ok, T, Dm, V) == 0, "%s", mq_errmsg());
    T_CHECK(!memcmp(out + 3 * Dm, E + 3 * Dm, Dm * sizeof(float)) && !memcmp(out + Dm, E + 9 * Dm, Dm * sizeof(float)),
            "rows gathered");
    T_CHECK(op_embed(out, E, bad, 2, Dm, V) == -1 && strstr(mq_errmsg(), "position 1"), "bad id: %s", mq_errmsg());

    float *resid = rand_vec((size_t)T * Dm, 1), *x = rand_vec((size_t)T * Dm, 1), *w = rand_vec(Dm, 1);
    float *sum = mq_malloc((size_t)T * Dm * sizeof(float)), *ref = mq_malloc((size_t)T * Dm * sizeof(float));
    for (int i = 0; i < T * Dm; i++) sum[i] = resid[i] + x[i];
    mat_rmsnorm(ref, sum, w, T, Dm, 1e-5f);
    op_add_rmsnorm(resid, x, out, w, T, Dm, 1e-5f);
    T_CHECK(!memcmp(resid, sum, T * Dm * sizeof(float)) && !memcmp(out, ref, T * Dm * sizeof(float)), "add + norm");
    free(E); free(out); free(resid); free(x); free(w); free(sum); free(ref);
}

int main(void) {
    T_RUN(test_exp_silu_softplus);
    T_RUN(test_dt_softplus_bias_clamp);
    T_RUN(test_conv1d);
    T_RUN(test_scan_m1);
    T_RUN(test_scan_m2);
    T_RUN(test_state_format);
    T_RUN(test_gated_rmsnorm);
    T_RUN(test_logsumexp);
    T_RUN(test_embed_add_rmsnorm);
    return t_summary();
}
