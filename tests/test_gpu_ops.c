/* Every CUDA kernel of the FP16 forward against its CPU op in ssm/ops.h, on random inputs of odd
 * sizes, batched, strided (ssm/gpu_ops.h pads rows), with carried state and forced time chunking.
 * Inputs the GPU reads as FP16 are rounded to FP16 first, so both sides compute on equal values;
 * the tolerance is then FP16 rounding of the output (2^-11 relative) plus FP32 reordering:
 * |gpu - cpu| <= rtol |cpu| + atol rms(cpu) per element. Skips without a GPU. */
#include "tests/test.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/mat.h"
#include "core/st.h"
#include "ssm/gpu_ops.h"
#include "ssm/ops.h"
#include <stdint.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform [-1, 1) */
    g_rng ^= g_rng << 13; g_rng ^= g_rng >> 7; g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}
static float r16(float x) { return st_f16_to_f32(st_f32_to_f16(x)); }
/* n values uniform in [lo, hi], rounded to FP16 when f16 */
static float *rvec(size_t n, float lo, float hi, int f16) {
    float *v = mq_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float x = lo + (hi - lo) * 0.5f * (frand() + 1.f);
        v[i] = f16 ? r16(x) : x;
    }
    return v;
}
static float *copyv(const float *v, size_t n) {
    float *c = mq_malloc(n * sizeof(float));
    memcpy(c, v, n * sizeof(float));
    return c;
}

/* Checks |g - c| <= rtol |c| + atol rms(c) everywhere (NaN fails) and prints the worst error. */
static void close_to(const char *what, const float *g, const float *c, size_t n, double rtol, double atol) {
    double ss = 0, worst = 0, worst_abs = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) ss += (double)c[i] * c[i];
    double rms = sqrt(ss / (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)g[i] - c[i]), r = d / (rtol * fabs(c[i]) + atol * rms + 1e-30);
        if (!(r <= worst)) { worst = isnan(r) ? INFINITY : r; worst_abs = d; at = i; }
    }
    printf("    %-34s max err %.3g (%.3g of the bound) at %zu, rms %.3g\n", what, worst_abs, worst, at, rms);
    T_CHECK(worst <= 1, "%s: |%g - %g| at %zu over rtol %g, atol %g * rms %g", what, g[at], c[at], at, rtol,
            atol, rms);
}

static void test_gpu_embed(void) {
    NEED_GPU();
    enum { V = 1001, D = 77, T = 37 };
    float *E = rvec((size_t)V * D, -1, 1, 1), *g = mq_malloc(sizeof(float) * T * D), *c = mq_malloc(sizeof(float) * T * D);
    int32_t tok[T];
    for (int t = 0; t < T; t++) tok[t] = (t * 389 + 7) % V;
    tok[0] = V - 1;
    T_CHECK(op_embed(c, E, tok, T, D, V) == 0, "%s", mq_errmsg());
    T_CHECK(gop_embed(g, E, tok, T, D, V) == 0, "%s", mq_errmsg());
    close_to("embed (exact)", g, c, (size_t)T * D, 0, 0);
    free(E), free(g), free(c);
}

static void test_gpu_add_rmsnorm(void) {
    NEED_GPU();
    enum { T = 33, D = 203 };
    const float eps = 1e-5f;
    for (int with_x = 0; with_x < 2; with_x++) {
        float *resid = rvec((size_t)T * D, -3, 3, 0), *x = with_x ? rvec((size_t)T * D, -2, 2, 1) : NULL;
        float *w = rvec(D, 0.5f, 1.5f, 0), *rc = copyv(resid, (size_t)T * D);
        float *oc = mq_malloc(sizeof(float) * T * D), *o16 = mq_malloc(sizeof(float) * T * D),
              *o32 = mq_malloc(sizeof(float) * T * D);
        op_add_rmsnorm(rc, x, oc, w, T, D, eps);
        T_CHECK(gop_f16_add_rmsnorm(resid, x, o16, o32, w, T, D, eps) == 0, "%s", mq_errmsg());
        close_to(with_x ? "add_rmsnorm residual" : "rmsnorm residual", resid, rc, (size_t)T * D, 1e-7, 0);
        close_to("rmsnorm FP32 out", o32, oc, (size_t)T * D, 2e-6, 1e-7);
        close_to("rmsnorm FP16 out", o16, oc, (size_t)T * D, 1e-3, 1e-4);
        free(resid), free(x), free(w), free(rc), free(oc), free(o16), free(o32);
    }
}

static void test_gpu_conv1d(void) {
    NEED_GPU();
    /* B sequences; a first call of T1 tokens from a random state, then T2 < K-1 tokens continuing */
    enum { B = 3, C = 70, K = 4, T1 = 29, T2 = 2, T3 = 1 };
    float *w = rvec(C * K, -0.7f, 0.7f, 0), *bias = rvec(C, -0.5f, 0.5f, 0);
    float *sg = rvec((size_t)B * C * (K - 1), -2, 2, 1), *sc = copyv(sg, (size_t)B * C * (K - 1));
    const int Ts[3] = {T1, T2, T3};
    static const char *names[3] = {"conv1d+silu from a state", "conv1d+silu (T < K-1, continued)",
                                   "conv1d+silu (T = 1, fused update)"};
    for (int call = 0; call < 3; call++) {
        int T = Ts[call];
        float *x = rvec((size_t)B * T * C, -3, 3, 1);
        float *yg = mq_malloc(sizeof(float) * B * T * C), *yc = mq_malloc(sizeof(float) * B * T * C);
        for (int b = 0; b < B; b++)
            op_conv1d(yc + (size_t)b * T * C, C, x + (size_t)b * T * C, C, w, bias, sc + (size_t)b * C * (K - 1), T, C,
                      K, 1);
        T_CHECK(gop_f16_conv1d_silu(yg, x, w, bias, sg, B, T, C, K) == 0, "%s", mq_errmsg());
        close_to(names[call], yg, yc, (size_t)B * T * C, 1e-3, 1e-4);
        close_to("conv1d state (exact)", sg, sc, (size_t)B * C * (K - 1), 0, 0);
        free(x), free(yg), free(yc);
    }
    /* no state: zero history */
    enum { T = 9 };
    float *x = rvec((size_t)T * C, -3, 3, 1), *yg = mq_malloc(sizeof(float) * T * C), *yc = mq_malloc(sizeof(float) * T * C);
    op_conv1d(yc, C, x, C, w, NULL, NULL, T, C, K, 1);
    T_CHECK(gop_f16_conv1d_silu(yg, x, w, NULL, NULL, 1, T, C, K) == 0, "%s", mq_errmsg());
    close_to("conv1d+silu, no bias, no state", yg, yc, (size_t)T * C, 1e-3, 1e-4);
    free(x), free(yg), free(yc), free(w), free(bias), free(sg), free(sc);
}

/* Mamba1 scan at d_state N with n_chunks chunks, or the kernel parallel over time (par 1: misaligned
 * rows; 2: aligned rows, no separate bias, as in the FP16 pass: its tables); B sequences from a
 * random state. */
static void scan_m1_case(int B, int T, int Di, int N, int n_chunks, int with_z, int par) {
    const size_t R = (size_t)B * T, S = (size_t)Di * N;
    float *u = rvec(R * Di, -2, 2, 1), *dt = rvec(R * Di, -5, 0.5f, 1), *bias = par == 2 ? NULL : rvec(Di, -1, 1, 0);
    float *A = mq_malloc(sizeof(float) * S), *Bm = rvec(R * N, -1, 1, 1), *Cm = rvec(R * N, -1, 1, 1);
    float *D = rvec(Di, -1, 1, 0), *z = with_z ? rvec(R * Di, -3, 3, 1) : NULL;
    for (size_t i = 0; i < S; i++) A[i] = -(float)(i % N + 1) * (0.75f + 0.25f * frand()); /* S4D-real-like */
    float *sg = rvec((size_t)B * S, -1, 1, 0), *sc = copyv(sg, (size_t)B * S);
    float *yg = mq_malloc(sizeof(float) * R * Di), *yc = mq_malloc(sizeof(float) * R * Di), *delta = mq_malloc(sizeof(float) * R * Di);
    op_dt_softplus(delta, Di, dt, Di, bias, (int)R, Di, 0.f, INFINITY);
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * T;
        op_scan_m1(yc + o * Di, Di, u + o * Di, Di, delta + o * Di, Di, A, Bm + o * N, N, Cm + o * N, N, D,
                   z ? z + o * Di : NULL, Di, sc + (size_t)b * S, T, Di, N);
    }
    T_CHECK(gop_f16_scan_m1(yg, u, dt, bias, A, Bm, Cm, D, z, sg, B, T, Di, N, n_chunks, par) == 0, "%s", mq_errmsg());
    char what[96];
    snprintf(what, sizeof what, "scan_m1 y B=%d T=%d Di=%d N=%d %s%s", B, T, Di, N, par ? "parallel" : "chunks", z ? " gated" : "");
    close_to(what, yg, yc, R * Di, 2e-3, 2e-4);
    snprintf(what, sizeof what, "scan_m1 state B=%d T=%d N=%d %s", B, T, N, par ? "parallel" : "chunks");
    close_to(what, sg, sc, (size_t)B * S, 1e-4, 1e-5);
    free(u), free(dt), free(bias), free(A), free(Bm), free(Cm), free(D), free(z), free(sg), free(sc);
    free(yg), free(yc), free(delta);
}

static void test_gpu_scan_m1(void) {
    NEED_GPU();
    scan_m1_case(2, 77, 45, 16, 1, 1, 0);
    scan_m1_case(2, 77, 45, 16, 4, 1, 0);
    scan_m1_case(3, 130, 131, 16, 5, 0, 0);
    scan_m1_case(1, 41, 20, 7, 3, 1, 0);   /* odd d_state, padded lanes */
    scan_m1_case(2, 23, 33, 40, 2, 1, 0);  /* the wide (<= 64) variant */
    scan_m1_case(4, 1, 45, 16, 1, 1, 0);   /* a decode step */
    /* parallel over time: chunks of 256 tokens, 8 channels per block */
    scan_m1_case(2, 300, 45, 16, 1, 1, 1); /* a partial chunk, a partial block */
    scan_m1_case(3, 64, 131, 16, 1, 0, 1);
    scan_m1_case(1, 777, 20, 7, 1, 1, 1);  /* odd d_state, four chunks */
    scan_m1_case(2, 5, 9, 16, 1, 1, 1);    /* fewer tokens than lanes */
    scan_m1_case(1, 2048, 16, 16, 1, 1, 1);
    scan_m1_case(2, 300, 64, 16, 1, 1, 2); /* aligned: vector loads and stores, the FP16 tables */
    scan_m1_case(1, 513, 44, 16, 1, 0, 2); /* a partial block of 4 channels: scalar in an aligned call */
    scan_m1_case(1, 100, 24, 12, 1, 1, 2); /* d_state 12: B, C loaded per element */
}

static void scan_m2_case(int B, int T, int H, int P, int G, int N, int n_chunks, float hi, int ssd_q) {
    const size_t R = (size_t)B * T, E = (size_t)H * P, GN = (size_t)G * N, S = E * N;
    float *x = rvec(R * E, -2, 2, 1), *dt = rvec(R * H, -5, 0.5f, 1), *bias = rvec(H, -1, 1, 0);
    float *A = mq_malloc(sizeof(float) * H), *Bm = rvec(R * GN, -1, 1, 1), *Cm = rvec(R * GN, -1, 1, 1);
    float *D = rvec(H, -1, 1, 0);
    for (int h = 0; h < H; h++) A[h] = -(float)(1 + h % 16) * (0.75f + 0.25f * frand());
    float *sg = rvec((size_t)B * S, -1, 1, 0), *sc = copyv(sg, (size_t)B * S);
    float *yg = mq_malloc(sizeof(float) * R * E), *yc = mq_malloc(sizeof(float) * R * E), *dts = mq_malloc(sizeof(float) * R * H);
    op_dt_softplus(dts, H, dt, H, bias, (int)R, H, 0.f, hi);
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * T;
        op_scan_m2(yc + o * E, (int)E, x + o * E, (int)E, dts + o * H, H, A, Bm + o * GN, (int)GN, Cm + o * GN,
                   (int)GN, D, sc + (size_t)b * S, T, H, P, G, N);
    }
    T_CHECK(gop_f16_scan_m2(yg, x, dt, bias, 0.f, hi, A, Bm, Cm, D, sg, B, T, H, P, G, N, n_chunks, ssd_q) == 0, "%s",
            mq_errmsg());
    char what[96];
    snprintf(what, sizeof what, "scan_m2 y T=%d H=%d P=%d G=%d N=%d chunks=%d ssd=%d", T, H, P, G, N, n_chunks, ssd_q);
    close_to(what, yg, yc, R * E, 2e-3, 2e-4);
    snprintf(what, sizeof what, "scan_m2 state N=%d chunks=%d ssd=%d", N, n_chunks, ssd_q);
    close_to(what, sg, sc, (size_t)B * S, 1e-4, 1e-5);
    free(x), free(dt), free(bias), free(A), free(Bm), free(Cm), free(D), free(sg), free(sc), free(yg), free(yc);
    free(dts);
}

static void test_gpu_scan_m2(void) {
    NEED_GPU();
    scan_m2_case(2, 71, 4, 20, 2, 40, 1, INFINITY, 0);
    scan_m2_case(2, 71, 4, 20, 2, 40, 3, INFINITY, 0);
    scan_m2_case(1, 100, 2, 64, 1, 128, 4, INFINITY, 0); /* mamba2-2.7b's head shape */
    scan_m2_case(3, 37, 6, 64, 1, 64, 2, 0.05f, 0);      /* the proxy's shape, dt clamped above */
    scan_m2_case(2, 19, 3, 5, 3, 9, 1, INFINITY, 0);     /* tiny odd heads, a group per head */
    scan_m2_case(5, 1, 6, 64, 1, 64, 1, INFINITY, 0);    /* a decode step */
}

/* The chunked SSD kernels (ssm/ssd.cuh) against the same reference, same tolerances: partial tiles
 * and chunks, p beyond one 64-column block, odd d_state and head_dim, one token */
static void test_gpu_scan_m2_ssd(void) {
    NEED_GPU();
    scan_m2_case(2, 300, 2, 64, 1, 128, 1, INFINITY, 64);  /* mamba2-2.7b's head shape, 5 chunks */
    scan_m2_case(1, 600, 2, 64, 1, 128, 1, INFINITY, 256); /* 3 chunks of 4 tiles */
    scan_m2_case(3, 130, 6, 64, 1, 64, 1, 0.05f, 256);     /* the proxy's shape, dt clamped above */
    scan_m2_case(2, 71, 4, 80, 2, 40, 1, INFINITY, 64);    /* two p blocks, groups */
    scan_m2_case(2, 97, 3, 5, 3, 9, 1, INFINITY, 128);     /* tiny odd heads, a group per head */
    scan_m2_case(3, 1, 6, 64, 1, 64, 1, INFINITY, 64);     /* one token */
}

static void test_gpu_gated_rmsnorm(void) {
    NEED_GPU();
    enum { T = 19, D = 96 };
    const int groups[2] = {D, D / 3};
    for (int gi = 0; gi < 2; gi++)
        for (int nbg = 0; nbg < 2; nbg++) {
            float *y = rvec((size_t)T * D, -3, 3, 1), *z = rvec((size_t)T * D, -3, 3, 1), *w = rvec(D, 0.5f, 1.5f, 0);
            float *og = mq_malloc(sizeof(float) * T * D), *oc = mq_malloc(sizeof(float) * T * D);
            op_gated_rmsnorm(oc, D, y, D, z, D, w, T, D, groups[gi], 1e-5f, nbg);
            T_CHECK(gop_f16_gated_rmsnorm(og, y, z, w, T, D, groups[gi], 1e-5f, nbg) == 0, "%s", mq_errmsg());
            char what[64];
            snprintf(what, sizeof what, "gated_rmsnorm group=%d nbg=%d", groups[gi], nbg);
            close_to(what, og, oc, (size_t)T * D, 1e-3, 1e-4);
            free(y), free(z), free(w), free(og), free(oc);
        }
}

/* The projections: the decode GEMV (M <= 8, aligned) and cuBLAS, against core/mat.h's mat_linear. */
static void test_gpu_gemm(void) {
    NEED_GPU();
    static const struct { int M, N, K, pad, f32, bias; const char *path; } cs[] = {
        {1, 1001, 392, 8, 0, 0, "gemv"},        {3, 77, 200, 0, 0, 1, "gemv + bias"},
        {8, 50, 64, 16, 1, 0, "gemv, FP32 out"}, {1, 50, 1024, 0, 0, 1, "gemv, 2 warps a row"},
        {3, 13, 2048, 8, 0, 0, "gemv, 4 warps a row"}, {2, 37, 4096, 0, 1, 0, "gemv, 8 warps a row, FP32"},
        {5, 33, 12, 3, 0, 1, "cuBLAS (K % 8) + bias"}, {2, 40, 24, 3, 0, 0, "cuBLAS (stride % 8)"},
        {37, 129, 392, 0, 0, 1, "cuBLAS + bias"}, {64, 1000, 192, 0, 1, 0, "cuBLAS, FP32 out"},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int M = cs[i].M, N = cs[i].N, K = cs[i].K;
        float *X = rvec((size_t)M * K, -2, 2, 1), *W = rvec((size_t)N * K, -1, 1, 1);
        float *bias = cs[i].bias ? rvec(N, -3, 3, 0) : NULL;
        float *yg = mq_malloc(sizeof(float) * M * N), *yc = mq_malloc(sizeof(float) * M * N);
        mat_linear(yc, X, W, bias, M, N, K);
        T_CHECK(gop_f16_gemm(yg, X, W, bias, M, N, K, cs[i].pad, cs[i].f32) == 0, "%s", mq_errmsg());
        char what[80];
        snprintf(what, sizeof what, "gemm %dx%dx%d %s", M, N, K, cs[i].path);
        /* FP32 accumulation in another order: ~1e-6 of the row norm; FP16 output: 2^-11 relative.
         * cuBLAS + bias rounds the product before the bias is added: 2^-11 (2|y| + |bias| <= 3) */
        close_to(what, yg, yc, (size_t)M * N, cs[i].f32 ? 1e-5 : 1.5e-3, cs[i].bias ? 1e-3 : 1e-4);
        free(X), free(W), free(bias), free(yg), free(yc);
    }
}

/* The fused log-sum-exp against op_logsumexp (what ssm_nll scores with). */
static void test_gpu_nll(void) {
    NEED_GPU();
    enum { R = 5, V = 50280 };
    float *l = rvec((size_t)R * V, -8, 8, 0), *ng = mq_malloc(sizeof(float) * R), nc[R];
    int32_t tg[R] = {0, V - 1, 12345, -1, 777};
    l[(size_t)2 * V + 99] = 60.f; /* one dominant logit */
    for (int r = 0; r < R; r++)
        nc[r] = tg[r] < 0 ? 0.f : (float)(op_logsumexp(l + (size_t)r * V, V) - l[(size_t)r * V + tg[r]]);
    T_CHECK(gop_nll(ng, l, tg, R, V) == 0, "%s", mq_errmsg());
    close_to("nll (log-sum-exp)", ng, nc, R, 1e-5, 1e-6);
    free(l), free(ng);
}

int main(void) {
    printf("# GPU: %s\n", gpu_describe());
    T_RUN(test_gpu_embed);
    T_RUN(test_gpu_add_rmsnorm);
    T_RUN(test_gpu_conv1d);
    T_RUN(test_gpu_scan_m1);
    T_RUN(test_gpu_scan_m2);
    T_RUN(test_gpu_scan_m2_ssd);
    T_RUN(test_gpu_gated_rmsnorm);
    T_RUN(test_gpu_gemm);
    T_RUN(test_gpu_nll);
    return t_summary();
}
