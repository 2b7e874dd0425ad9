/* The int8 GPU pass (ssm/backend.h BE_CUDA_INT8) against the CPU: every kernel against its reference in
 * ssm/int8_ref.h on random, odd-sized inputs with padded row strides (int32 GEMM accumulators bit
 * for bit on every route; int8 outputs within one step with rare flips; FP16/FP32 outputs to their
 * rounding), then the whole int8 model on both proxies against the CPU simulation of the same
 * q_model (quantize/sim.c): per-role activations of the first and last layer, final hidden states,
 * per-token NLL, and decode steps against prefill. The model's statistics come from the test's own
 * observers over calibration tokens (tests/fixtures/tok). The GPU cases skip without a GPU; the CPU
 * mirror cases (i8ref_forward, also of quamba2 W8A8) run anywhere.
 * `test_int8 NAME` runs only the tests whose name contains NAME. With $I8_ART_DIR set, the quamba
 * q_models are also written there as artifacts (art_m1, art_m2) for `mambaq verify`. */
#include <stdint.h>
#include <cjson/cJSON.h>
#include <sys/wait.h>
#include "core/err.h"
#include "core/gpu.h"
#include "core/mat.h"
#include "core/st.h"
#include "export/art.h"
#include "hadamard/had.h"
#include "quantize/q.h"
#include "quantize/check.h"
#include "ssm/backend.h"
#include "ssm/gpu_ops.h"
#include "ssm/int8_ref.h"
#include "ssm/model.h"
#include "ssm/ops.h"
#include "tests/test.h"
#include "tests/test_data.h"
#include "tests/tstats.h"
#include "tests/bench_shapes.h"

#include "tests/test_rand.h"
static float *copy_f(const float *x, size_t n) {
    float *y = mq_malloc((n + 1) * sizeof(float));
    memcpy(y, x, n * sizeof(float));
    return y;
}
static double maxabs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}
/* float outputs: worst |a - b| / (rel * |b| + absol); <= 1 passes */
static double worst(const float *a, const float *b, size_t n, double rel, double absol) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (rel * fabs(b[i]) + absol);
        if (!(e <= w)) w = e; /* NaN counts as worst */
    }
    return w;
}

/* ---------------------------------------------------------------- GEMM routes */

static const char *route_name(int r) {
    return r == 1 ? "cuBLASLt" : r == 2 ? "tiled" : r == 3 ? "GEMV" : r == 4 ? "MMA" : "auto";
}

static void test_gemm_i32(void) {
    NEED_GPU();
    struct { int M, N, K, pad; } sh[] = {{64, 384, 192, 0}, {256, 1024, 768, 4}, {1000, 44, 384, 0},
                                         {37, 50, 67, 3}, {5, 77, 30, 1}, {2048, 768, 1536, 0}};
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        int M = sh[i].M, N = sh[i].N, K = sh[i].K, pad = sh[i].pad;
        int8_t *X = rand_i8((size_t)M * K), *W = rand_i8((size_t)N * K);
        int32_t *ref = mq_malloc((size_t)M * N * 4), *got = mq_malloc((size_t)M * N * 4);
        i8ref_gemm(ref, X, K, W, M, N, K);
        int lt_shape = N % 4 == 0 && K % 4 == 0 && (K + pad) % 4 == 0;
        for (int route = GOP_ROUTE_LT; route <= GOP_ROUTE_TILED; route++) {
            int taken = 0;
            memset(got, 0x55, (size_t)M * N * 4);
            T_CHECK(gop_i8_gemm(got, X, W, M, N, K, pad, route, &taken) == 0, "%s", mq_errmsg());
            size_t bad = 0;
            for (size_t j = 0; j < (size_t)M * N; j++) bad += got[j] != ref[j];
            printf("    %4dx%4dx%4d (ld %d) asked %-8s ran %-8s: %zu of %d accumulators differ\n", M, N, K, K + pad,
                   route_name(route), route_name(taken), bad, M * N);
            T_CHECK(bad == 0, "%zu int32 accumulators differ (route %s)", bad, route_name(taken));
            if (route == GOP_ROUTE_LT && lt_shape)
                T_CHECK(taken == GOP_ROUTE_LT, "cuBLASLt declined %dx%dx%d (ld %d)", M, N, K, K + pad);
        }
        free(X), free(W), free(ref), free(got);
    }
}

static void test_linear_epilogue(void) {
    NEED_GPU();
    struct { int M, N, K, pad, route; } cs[] = {
        {64, 384, 192, 0, GOP_ROUTE_AUTO}, {37, 50, 67, 3, GOP_ROUTE_AUTO}, {300, 200, 96, 0, GOP_ROUTE_TILED},
        {1, 384, 192, 0, GOP_ROUTE_GEMV},  {3, 50, 44, 0, GOP_ROUTE_GEMV},  {8, 1536, 768, 0, GOP_ROUTE_GEMV},
        {4, 384, 12, 32, GOP_ROUTE_GEMV},  {5, 77, 30, 1, GOP_ROUTE_GEMV},  {1, 192, 4096, 0, GOP_ROUTE_GEMV},
        /* the tensor-core route: 16-row blocks cut at N, tokens padded to 8, K tails of 16 / 32 / 48
         * (dt_proj's 48 of mamba-130m, its row stride 80), K split over blocks (x_proj's 192 x 5120) */
        {9, 384, 192, 0, GOP_ROUTE_MMA},   {16, 1546, 768, 0, GOP_ROUTE_MMA}, {24, 77, 48, 32, GOP_ROUTE_MMA},
        {50, 100, 176, 16, GOP_ROUTE_MMA}, {64, 192, 5120, 0, GOP_ROUTE_MMA}, {32, 2570, 1024, 0, GOP_ROUTE_AUTO},
        {1, 300, 320, 0, GOP_ROUTE_MMA},   {64, 640, 2560, 0, GOP_ROUTE_MMA},  {40, 50, 67, 3, GOP_ROUTE_MMA},
        /* 33-64 rows, K a multiple of 64, N > 2048 (H200: 132 SMs): the route's tiled kernel (K split into int32 atomics) */
        {48, 2200, 2560, 0, GOP_ROUTE_MMA}, {33, 2100, 384, 16, GOP_ROUTE_MMA}, {64, 10240, 2560, 0, GOP_ROUTE_MMA}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int M = cs[i].M, N = cs[i].N, K = cs[i].K, pad = cs[i].pad, route = cs[i].route;
        int8_t *X = rand_i8((size_t)M * K), *W = rand_i8((size_t)N * K);
        float base = 1.0f / (73.0f * sqrtf((float)K)), sx = 0.02f;
        float *sw = rand_f(N, 0.5f * base, 1.5f * base), *qs = rand_f(N, 3.0f / 127, 5.0f / 127);
        float *bias = rand_f(N, -0.5f, 0.5f), *ones = rand_f(N, 1, 1);
        int32_t *acc = mq_malloc((size_t)M * N * 4);
        i8ref_gemm(acc, X, K, W, M, N, K);
        int8_t *q_ref = mq_malloc((size_t)M * N), *q_got = mq_malloc((size_t)M * N);
        float *f_ref = mq_malloc((size_t)M * N * 4), *f_got = mq_malloc((size_t)M * N * 4);
        long c0[GOP_NROUTES], c1[GOP_NROUTES];
        gop_i8_route_counts(c0);
        /* int8 output, per-channel weight scales, bias, per-column output scales */
        i8ref_epilogue(acc, M, N, sx, sw, bias, qs, q_ref, NULL);
        T_CHECK(gop_i8_linear(q_got, NULL, 0, X, W, M, N, K, pad, sx, sw, bias, qs, route) == 0, "%s", mq_errmsg());
        int maxd;
        size_t nd;
        cmp_q(q_got, q_ref, (size_t)M * N, &maxd, &nd);
        /* FP16 output */
        i8ref_epilogue(acc, M, N, sx, sw, bias, NULL, NULL, f_ref);
        T_CHECK(gop_i8_linear(NULL, f_got, 1, X, W, M, N, K, pad, sx, sw, bias, NULL, route) == 0, "%s", mq_errmsg());
        double w16 = worst(f_got, f_ref, (size_t)M * N, 6e-4, 1e-6);
        /* FP32 output of unit scales: the accumulators themselves */
        T_CHECK(gop_i8_linear(NULL, f_got, 2, X, W, M, N, K, pad, 1.0f, ones, NULL, NULL, route) == 0, "%s", mq_errmsg());
        size_t bad32 = 0;
        for (size_t j = 0; j < (size_t)M * N; j++) bad32 += f_got[j] != (float)acc[j];
        gop_i8_route_counts(c1);
        const char *ran = c1[3] > c0[3]   ? "GEMV"
                          : c1[4] > c0[4] ? "MMA"
                          : c1[1] > c0[1] ? "cuBLASLt"
                                          : "tiled";
        printf("    %4dx%4dx%4d (ld %d) asked %-8s ran %-8s: int8 %zu of %d one step apart (max %d), fp16 worst %.2f, "
               "fp32 %zu wrong\n", M, N, K, K + pad, route_name(route), ran, nd, M * N, maxd, w16, bad32);
        T_CHECK(maxd <= 1 && nd <= (size_t)(0.002 * M * N) + 2, "int8 epilogue: %zu flips, max %d", nd, maxd);
        T_CHECK(w16 <= 1, "fp16 epilogue worst %.3g", w16);
        T_CHECK(bad32 == 0, "fp32 unit-scale epilogue: %zu wrong", bad32);
        if (route == GOP_ROUTE_GEMV && K % 4 == 0 && (K + pad) % 4 == 0)
            T_CHECK(c1[3] - c0[3] == 3, "the GEMV did not run (%ld calls)", c1[3] - c0[3]);
        /* AUTO takes it for 9..32 rows (MQ_MMA_MAX_M unset) */
        if ((route == GOP_ROUTE_MMA || (route == GOP_ROUTE_AUTO && M > 8 && M <= 32)) && K % 16 == 0 && (K + pad) % 16 == 0)
            T_CHECK(c1[4] - c0[4] == 3, "the MMA route did not run (%ld calls)", c1[4] - c0[4]);
        free(X), free(W), free(sw), free(qs), free(bias), free(ones), free(acc), free(q_ref), free(q_got), free(f_ref),
            free(f_got);
    }
}

/* Mamba1 x_proj of quamba2's clustered x (k_i8_linear_xcols: FP16 tensor cores on x split into hi +
 * lo) against i8ref_linear_xcols (FP32 on the dequantized values): FP32-level differences, so int8
 * outputs one step apart where a value sits at a rounding tie; rarely. x scales from 16 clusters. */
static void test_linear_xcols(void) {
    NEED_GPU();
    struct { int M, N, K, pad; } cs[] = {{1, 44, 384, 0}, {37, 48, 1536, 3}, {300, 192, 5120, 0}, {64, 80, 2048, 16}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const int M = cs[i].M, N = cs[i].N, K = cs[i].K, pad = cs[i].pad;
        int8_t *X = rand_i8((size_t)M * K), *W = rand_i8((size_t)N * K);
        float *cl = rand_f(16, 0.005f, 0.08f), *sx = mq_malloc(sizeof(float) * K);
        for (int k = 0; k < K; k++) sx[k] = cl[(k * 7 + k / 5) % 16];
        const float base = 1.0f / (73.0f * 0.04f * 73.0f * sqrtf((float)K)); /* outputs of ~unit size */
        float *sw = rand_f(N, 0.5f * base, 1.5f * base), *qs = rand_f(N, 3.0f / 127, 5.0f / 127);
        int8_t *q_ref = mq_malloc((size_t)M * N), *q_got = mq_malloc((size_t)M * N);
        i8ref_linear_xcols(q_ref, X, K, sx, W, sw, qs, M, N, K);
        T_CHECK(gop_i8_linear_xcols(q_got, X, sx, W, sw, qs, M, N, K, pad) == 0, "%s", mq_errmsg());
        int maxd, hist[3] = {0, 0, 0};
        size_t nd;
        cmp_q(q_got, q_ref, (size_t)M * N, &maxd, &nd);
        for (size_t j = 0; j < (size_t)M * N; j++) hist[abs(q_ref[j]) == 127 ? 2 : q_ref[j] == 0 ? 0 : 1]++;
        printf("    x_proj of a clustered x %4dx%4dx%4d (ld %d): int8 %zu of %d one step apart (max %d); codes 0 / "
               "inside / saturated %d / %d / %d\n", M, N, K, K + pad, nd, M * N, maxd, hist[0], hist[1], hist[2]);
        T_CHECK(maxd <= 1 && nd <= (size_t)(0.002 * M * N) + 2, "%zu flips, max %d", nd, maxd);
        T_CHECK(hist[1] > M * N / 2, "the outputs are mostly 0 or saturated: the test scales are off");
        free(X), free(W), free(cl), free(sx), free(sw), free(qs), free(q_ref), free(q_got);
    }
}

/* ---------------------------------------------------------------- norms, conv */

static void test_rmsnorm(void) {
    NEED_GPU();
    struct { int T, D; } cs[] = {{5, 192}, {3, 2560}, {300, 768}, {2, 1000}};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        int T = cs[i].T, D = cs[i].D;
        size_t n = (size_t)T * D;
        float *resid = rand_f(n, -3, 3), *delta = rand_f(n, -2, 2), *w = rand_f(D, 0.2f, 2.0f), s = 4.0f / 127;
        q_round_f16(delta, n); /* the forward adds out_proj's FP16 output */
        float *r_ref = copy_f(resid, n), *r_got = copy_f(resid, n);
        int8_t *q_ref = mq_malloc(n), *q_got = mq_malloc(n);
        i8ref_add_rmsnorm(r_ref, delta, w, T, D, 1e-5f, s, q_ref, NULL);
        T_CHECK(gop_i8_add_rmsnorm(r_got, delta, w, T, D, 1e-5f, s, q_got) == 0, "%s", mq_errmsg());
        int maxd;
        size_t nd;
        cmp_q(q_got, q_ref, n, &maxd, &nd);
        size_t rbad = 0;
        for (size_t j = 0; j < n; j++) rbad += r_got[j] != r_ref[j];
        printf("    add+rmsnorm %dx%d: int8 %zu of %zu one step apart (max %d), residual %zu differ\n", T, D, nd, n, maxd,
               rbad);
        T_CHECK(maxd <= 1 && nd <= n / 1000 + 1, "%zu flips, max %d", nd, maxd);
        T_CHECK(rbad == 0, "%zu residual entries differ", rbad);
        /* without delta (the first layer) */
        T_CHECK(gop_i8_add_rmsnorm(r_got, NULL, w, T, D, 1e-5f, s, q_got) == 0, "%s", mq_errmsg());
        i8ref_add_rmsnorm(r_ref, NULL, w, T, D, 1e-5f, s, q_ref, NULL);
        cmp_q(q_got, q_ref, n, &maxd, &nd);
        T_CHECK(maxd <= 1 && nd <= n / 1000 + 1, "no delta: %zu flips, max %d", nd, maxd);
        free(resid), free(delta), free(w), free(r_ref), free(r_got), free(q_ref), free(q_got);
    }
}

static void conv_case(int B, int T, int C, int K) {
    const int H = K - 1;
    int8_t *x = rand_i8((size_t)B * T * C), *w = rand_i8((size_t)C * K), *st = rand_i8((size_t)B * C * H + 1);
    float *sw = rand_f(C, 0.003f, 0.006f), *si = rand_f(C, 0.02f, 0.04f), *so = rand_f(C, 0.015f, 0.03f);
    float *b = rand_f(C, -0.3f, 0.3f);
    int8_t *q_ref = mq_malloc((size_t)B * T * C), *q_got = mq_malloc((size_t)B * T * C);
    int8_t *s_ref = mq_malloc((size_t)B * C * H + 1), *s_got = mq_malloc((size_t)B * C * H + 1);
    memcpy(s_ref, st, (size_t)B * C * H);
    memcpy(s_got, st, (size_t)B * C * H);
    for (int bb = 0; bb < B; bb++)
        i8ref_conv1d(q_ref + (size_t)bb * T * C, C, x + (size_t)bb * T * C, C, s_ref + (size_t)bb * C * H, w, sw, si, b,
                     so, T, C, K);
    T_CHECK(gop_i8_conv1d(q_got, x, s_got, w, sw, si, b, so, B, T, C, K) == 0, "%s", mq_errmsg());
    int maxd;
    size_t nd;
    cmp_q(q_got, q_ref, (size_t)B * T * C, &maxd, &nd);
    int sbad = memcmp(s_got, s_ref, (size_t)B * C * H) != 0;
    printf("    conv1d B=%d T=%d C=%d K=%d: int8 %zu of %d one step apart (max %d), state %s\n", B, T, C, K, nd, B * T * C,
           maxd, sbad ? "DIFFERS" : "identical");
    T_CHECK(maxd <= 1 && nd <= (size_t)(B * T * C) / 1000 + 1, "%zu flips, max %d", nd, maxd);
    T_CHECK(!sbad, "conv state differs");
    /* without state: zeros before t = 0 */
    for (int bb = 0; bb < B; bb++)
        i8ref_conv1d(q_ref + (size_t)bb * T * C, C, x + (size_t)bb * T * C, C, NULL, w, sw, si, b, so, T, C, K);
    T_CHECK(gop_i8_conv1d(q_got, x, NULL, w, sw, si, b, so, B, T, C, K) == 0, "%s", mq_errmsg());
    cmp_q(q_got, q_ref, (size_t)B * T * C, &maxd, &nd);
    T_CHECK(maxd <= 1 && nd <= (size_t)(B * T * C) / 1000 + 1, "stateless: %zu flips, max %d", nd, maxd);
    /* decode: the first T-3 rows in one call, then three 1-row calls == one call (per sequence) */
    if (B == 1 && T > 4) {
        int8_t *q1 = mq_malloc((size_t)T * C), *s1 = mq_malloc((size_t)C * H + 1), *s2 = mq_malloc((size_t)C * H + 1);
        memcpy(s1, st, (size_t)C * H);
        memcpy(s2, st, (size_t)C * H);
        T_CHECK(gop_i8_conv1d(q_got, x, s1, w, sw, si, b, so, 1, T, C, K) == 0, "%s", mq_errmsg());
        T_CHECK(gop_i8_conv1d(q1, x, s2, w, sw, si, b, so, 1, T - 3, C, K) == 0, "%s", mq_errmsg());
        for (int t = T - 3; t < T; t++)
            T_CHECK(gop_i8_conv1d(q1 + (size_t)t * C, x + (size_t)t * C, s2, w, sw, si, b, so, 1, 1, C, K) == 0, "%s",
                    mq_errmsg());
        T_CHECK(memcmp(q1, q_got, (size_t)T * C) == 0, "steps differ from one call");
        T_CHECK(memcmp(s1, s2, (size_t)C * H) == 0, "states after steps differ from one call");
        free(q1), free(s1), free(s2);
    }
    free(x), free(w), free(st), free(sw), free(si), free(so), free(b), free(q_ref), free(q_got), free(s_ref), free(s_got);
}

static void test_conv1d(void) {
    NEED_GPU();
    conv_case(3, 37, 200, 4);
    conv_case(2, 5, 65, 3);
    conv_case(1, 40, 130, 4);
    conv_case(2, 19, 33, 1);
}

/* ---------------------------------------------------------------- scans, gated norm */

/* vec: u with a scale per channel (quamba2's clustered x) */
static void scan1_case(int B, int T, int Di, int N, int with_z, int with_state, int nc, int par, int vec) {
    size_t R = (size_t)B * T;
    int8_t *u = rand_i8(R * Di), *dt = rand_i8(R * Di), *z = rand_i8(R * Di), *Bm = rand_i8(R * N), *Cm = rand_i8(R * N);
    float *A = rand_f((size_t)Di * N, -8, -0.5f), *D = rand_f(Di, 0.5f, 1.5f), *bias = rand_f(Di, -5, -2);
    const float su = 0.03f, sdt = 0.02f, sb = 0.05f, sc = 0.04f, sz = 0.03f;
    float *suv = vec ? rand_f(Di, 0.01f, 0.06f) : NULL;
    size_t sn = (size_t)B * Di * N;
    float *st0 = rand_f(sn, -1, 1), *s_ref = copy_f(st0, sn), *s_got = copy_f(st0, sn);
    float *y_ref = mq_malloc(R * Di * 4), *y_got = mq_malloc(R * Di * 4);
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * T;
        float *sr = with_state ? s_ref + (size_t)b * Di * N : NULL;
        const int8_t *zb = with_z ? z + o * Di : NULL;
        if (vec)
            i8ref_scan_m1v(y_ref + o * Di, u + o * Di, Di, suv, dt + o * Di, Di, sdt, bias, Bm + o * N, Cm + o * N, N, sb,
                           sc, zb, Di, sz, A, D, sr, T, Di, N);
        else
            i8ref_scan_m1(y_ref + o * Di, u + o * Di, Di, su, dt + o * Di, Di, sdt, bias, Bm + o * N, Cm + o * N, N, sb, sc,
                          zb, Di, sz, A, D, sr, T, Di, N);
    }
    T_CHECK(gop_i8_scan_m1(y_got, u, su, suv, dt, sdt, bias, Bm, Cm, sb, sc, with_z ? z : NULL, sz, A, D,
                           with_state ? s_got : NULL, B, T, Di, N, nc, par) == 0, "%s", mq_errmsg());
    double my = maxabs(y_ref, R * Di), wy = worst(y_got, y_ref, R * Di, 6e-4, 1e-4 * my);
    /* FP32 against FP32 with other exp implementations: slow decays carry an ulp of dA over ~1/(dt |A|)
     * steps, so tolerances of 1e-4, not 1e-6 */
    double ms = maxabs(s_ref, sn), ws = with_state ? worst(s_got, s_ref, sn, 1e-4, 1e-4 * ms) : 0;
    printf("    scan m1 B=%d T=%d Di=%d N=%d%s%s%s, %s: y worst %.3f (max |y| %.3g), state worst %.3f\n", B, T, Di, N,
           with_z ? " z" : "", with_state ? " state" : "", vec ? " u scale per channel" : "",
           par ? "parallel" : nc > 1 ? "chunks" : "one pass", wy, my, ws);
    T_CHECK(wy <= 1, "y worst %.3g", wy);
    T_CHECK(ws <= 1, "state worst %.3g", ws);
    free(u), free(dt), free(z), free(Bm), free(Cm), free(A), free(D), free(bias), free(st0), free(s_ref), free(s_got);
    free(y_ref), free(y_got), free(suv);
}

/* Decode steps (T = 1 calls, the step kernel for N % 4 == 0) against one call over the same T
 * tokens (the general kernel): the same y and states bit for bit, both sum C.h in the same order. */
static void scan1_steps_case(int B, int T, int Di, int N, int with_z, int vec) {
    size_t R = (size_t)B * T, sn = (size_t)B * Di * N;
    int8_t *u = rand_i8(R * Di), *dt = rand_i8(R * Di), *z = rand_i8(R * Di), *Bm = rand_i8(R * N), *Cm = rand_i8(R * N);
    float *A = rand_f((size_t)Di * N, -8, -0.5f), *D = rand_f(Di, 0.5f, 1.5f), *bias = rand_f(Di, -5, -2);
    const float su = 0.03f, sdt = 0.02f, sb = 0.05f, sc = 0.04f, sz = 0.03f;
    float *suv = vec ? rand_f(Di, 0.01f, 0.06f) : NULL;
    float *st0 = rand_f(sn, -1, 1), *s_one = copy_f(st0, sn), *s_step = copy_f(st0, sn);
    float *y_one = mq_malloc(R * Di * 4), *y_step = mq_malloc(R * Di * 4), *y1 = mq_malloc((size_t)B * Di * 4);
    int8_t *u1 = mq_malloc((size_t)B * Di), *dt1 = mq_malloc((size_t)B * Di), *z1 = mq_malloc((size_t)B * Di);
    int8_t *B1 = mq_malloc((size_t)B * N), *C1 = mq_malloc((size_t)B * N);
    T_CHECK(gop_i8_scan_m1(y_one, u, su, suv, dt, sdt, bias, Bm, Cm, sb, sc, with_z ? z : NULL, sz, A, D, s_one, B, T, Di, N,
                           1, 0) == 0, "%s", mq_errmsg());
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) { /* token t of every sequence */
            const size_t r = (size_t)b * T + t;
            memcpy(u1 + (size_t)b * Di, u + r * Di, Di), memcpy(dt1 + (size_t)b * Di, dt + r * Di, Di);
            memcpy(z1 + (size_t)b * Di, z + r * Di, Di);
            memcpy(B1 + (size_t)b * N, Bm + r * N, N), memcpy(C1 + (size_t)b * N, Cm + r * N, N);
        }
        T_CHECK(gop_i8_scan_m1(y1, u1, su, suv, dt1, sdt, bias, B1, C1, sb, sc, with_z ? z1 : NULL, sz, A, D, s_step, B, 1, Di,
                               N, 1, 0) == 0, "%s", mq_errmsg());
        for (int b = 0; b < B; b++) memcpy(y_step + ((size_t)b * T + t) * Di, y1 + (size_t)b * Di, sizeof(float) * Di);
    }
    size_t dy = 0, ds = 0;
    for (size_t i = 0; i < R * Di; i++) dy += y_one[i] != y_step[i];
    for (size_t i = 0; i < sn; i++) ds += s_one[i] != s_step[i];
    printf("    scan m1 B=%d Di=%d N=%d%s%s: %d decode steps vs one call: %zu y and %zu states differ\n", B, Di, N,
           with_z ? " z" : "", vec ? " u scale per channel" : "", T, dy, ds);
    T_CHECK(dy == 0 && ds == 0, "decode steps differ from the one-call scan (%zu y, %zu states)", dy, ds);
    free(u), free(dt), free(z), free(Bm), free(Cm), free(A), free(D), free(bias), free(st0), free(s_one), free(s_step);
    free(y_one), free(y_step), free(y1), free(u1), free(dt1), free(z1), free(B1), free(C1), free(suv);
}

static void test_scan_m1_steps(void) {
    NEED_GPU();
    scan1_steps_case(3, 9, 100, 16, 1, 0);
    scan1_steps_case(2, 5, 45, 32, 1, 0);
    scan1_steps_case(1, 6, 33, 12, 0, 0); /* 3 lanes of a 4-lane channel group live */
    scan1_steps_case(64, 2, 256, 16, 1, 0);
    scan1_steps_case(3, 9, 100, 16, 1, 1);
}

/* The same for Mamba2 (one kernel for both, its decode steps one-token tiles) */
/* vec: scales per column (x per column, B and C per SSD group), as quamba2 */
static float *group_scales(int G, int N, float lo, float hi) {
    float *v = mq_malloc((size_t)G * N * sizeof(float)), *g = rand_f(G, lo, hi);
    for (int i = 0; i < G * N; i++) v[i] = g[i / N];
    free(g);
    return v;
}

static void scan2_steps_case(int B, int T, int H, int P, int G, int N, int vec) {
    const size_t R = (size_t)B * T, Di = (size_t)H * P, GN = (size_t)G * N, sn = (size_t)B * Di * N;
    int8_t *x = rand_i8(R * Di), *dt = rand_i8(R * H), *Bm = rand_i8(R * GN), *Cm = rand_i8(R * GN);
    float *A = rand_f(H, -8, -0.5f), *D = rand_f(H, 0.5f, 1.5f), *bias = rand_f(H, -5, -2);
    const float sx = 0.03f, sdt = 0.02f, sb = 0.05f, sc = 0.04f, lo = 0.f, hi = INFINITY;
    float *sxv = vec ? rand_f(Di, 0.01f, 0.06f) : NULL, *sbv = vec ? group_scales(G, N, 0.02f, 0.08f) : NULL;
    float *scv = vec ? group_scales(G, N, 0.02f, 0.08f) : NULL;
    float *st0 = rand_f(sn, -1, 1), *s_one = copy_f(st0, sn), *s_step = copy_f(st0, sn);
    float *y_one = mq_malloc(R * Di * 4), *y_step = mq_malloc(R * Di * 4), *y1 = mq_malloc((size_t)B * Di * 4);
    int8_t *x1 = mq_malloc((size_t)B * Di), *dt1 = mq_malloc((size_t)B * H), *B1 = mq_malloc((size_t)B * GN);
    int8_t *C1 = mq_malloc((size_t)B * GN);
    T_CHECK(gop_i8_scan_m2(y_one, x, sx, sxv, dt, sdt, bias, lo, hi, Bm, Cm, sb, sc, sbv, scv, A, D, s_one, B, T, H, P, G,
                           N, 1, 0) == 0,
            "%s", mq_errmsg());
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < B; b++) {
            const size_t r = (size_t)b * T + t;
            memcpy(x1 + b * Di, x + r * Di, Di), memcpy(dt1 + (size_t)b * H, dt + r * H, H);
            memcpy(B1 + b * GN, Bm + r * GN, GN), memcpy(C1 + b * GN, Cm + r * GN, GN);
        }
        T_CHECK(gop_i8_scan_m2(y1, x1, sx, sxv, dt1, sdt, bias, lo, hi, B1, C1, sb, sc, sbv, scv, A, D, s_step, B, 1, H, P,
                               G, N, 1, 0) == 0,
                "%s", mq_errmsg());
        for (int b = 0; b < B; b++) memcpy(y_step + ((size_t)b * T + t) * Di, y1 + b * Di, sizeof(float) * Di);
    }
    size_t dy = 0, ds = 0;
    for (size_t i = 0; i < R * Di; i++) dy += y_one[i] != y_step[i];
    for (size_t i = 0; i < sn; i++) ds += s_one[i] != s_step[i];
    printf("    scan m2 B=%d H=%d P=%d G=%d N=%d%s: %d decode steps vs one call: %zu y and %zu states differ\n", B, H, P,
           G, N, vec ? " scales per column" : "", T, dy, ds);
    T_CHECK(dy == 0 && ds == 0, "decode steps differ from the one-call scan (%zu y, %zu states)", dy, ds);
    free(x), free(dt), free(Bm), free(Cm), free(A), free(D), free(bias), free(st0), free(s_one), free(s_step);
    free(y_one), free(y_step), free(y1), free(x1), free(dt1), free(B1), free(C1), free(sxv), free(sbv), free(scv);
}

static void test_scan_m2_steps(void) {
    NEED_GPU();
    scan2_steps_case(2, 7, 6, 16, 2, 64, 0);
    scan2_steps_case(3, 5, 4, 33, 1, 128, 0); /* rows of P not a multiple of the block's */
    scan2_steps_case(1, 6, 4, 8, 4, 12, 0);   /* padded lanes */
    scan2_steps_case(16, 2, 8, 64, 1, 128, 0);
    scan2_steps_case(2, 7, 6, 16, 2, 64, 1);
}

/* The decode batches' y rotation + quantize (k_i8_yquant_rows) against the CPU transform of the same
 * FP16-rounded y (had_transform_quant_f32): other FP32 summation orders, so a code may move by one
 * where H y / s sits near a rounding tie; rarely. */
static void test_yquant_rows(void) {
    NEED_GPU();
    const int Es[] = {384, 1536, 4096, 5120, 7168}, rows[] = {1, 16, 64};
    for (size_t i = 0; i < sizeof Es / sizeof Es[0]; i++)
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            const int E = Es[i], R = rows[r];
            const size_t len = (size_t)R * E;
            float *y = rand_f(len, -3, 3);
            for (size_t j = 0; j < len; j++) y[j] = st_f16_to_f32(st_f32_to_f16(y[j])); /* what the GPU reads */
            int8_t *q_ref = mq_malloc(len), *q_got = mq_malloc(len);
            const float s = 3.f / 127; /* |H y| reaches ~4 sigma = 7: the tails saturate */
            T_CHECK(had_transform_quant_f32(y, q_ref, R, E, s) == 0, "%s", mq_errmsg());
            T_CHECK(gop_i8_yquant_rows(q_got, y, R, E, s) == 0, "%s", mq_errmsg());
            int maxd;
            size_t nd;
            cmp_q(q_got, q_ref, len, &maxd, &nd);
            printf("    y rotation + quantize, %d rows of %d: %zu of %zu codes one step apart (max %d)\n", R, E, nd, len,
                   maxd);
            T_CHECK(maxd <= 1 && nd <= 2 + len / 1000, "%zu codes differ, max %d", nd, maxd);
            free(y), free(q_ref), free(q_got);
        }
}

static void test_scan_m1(void) {
    NEED_GPU();
    for (int nc = 1; nc <= 4; nc += 3) {
        scan1_case(2, 70, 100, 16, 1, 1, nc, 0, 0);
        scan1_case(1, 33, 33, 13, 0, 0, nc, 0, 0);
        scan1_case(3, 1, 64, 16, 1, 1, nc, 0, 0);
        scan1_case(1, 300, 40, 32, 1, 1, nc, 0, 0);
    }
    /* the kernel parallel over time (d_state <= 16) */
    scan1_case(2, 70, 100, 16, 1, 1, 1, 1, 0);
    scan1_case(1, 33, 33, 13, 0, 0, 1, 1, 0);
    scan1_case(3, 1, 64, 16, 1, 1, 1, 1, 0);
    scan1_case(1, 600, 40, 16, 1, 1, 1, 1, 0);
    scan1_case(2, 257, 9, 16, 0, 1, 1, 1, 0);
    scan1_case(2, 300, 64, 16, 1, 1, 1, 2, 0); /* aligned rows: vector loads and stores */
    scan1_case(1, 513, 44, 16, 1, 0, 1, 2, 0);
    scan1_case(1, 100, 24, 12, 0, 1, 1, 2, 0);
    /* u with a scale per channel (quamba2): one pass, chunks, parallel */
    scan1_case(2, 70, 100, 16, 1, 1, 1, 0, 1);
    scan1_case(1, 300, 40, 16, 1, 1, 4, 0, 1);
    scan1_case(2, 300, 64, 16, 1, 1, 1, 2, 1);
    scan1_case(1, 100, 24, 12, 0, 1, 1, 1, 1);
}

static void scan2_case(int B, int T, int H, int P, int G, int N, float lo, float hi, int with_state, int nc, int ssd_q,
                       int vec) {
    size_t R = (size_t)B * T;
    int Di = H * P, GN = G * N;
    int8_t *x = rand_i8(R * Di), *dt = rand_i8(R * H), *Bm = rand_i8(R * GN), *Cm = rand_i8(R * GN);
    float *A = rand_f(H, -8, -0.5f), *D = rand_f(H, 0.5f, 1.5f), *bias = rand_f(H, -5, -2);
    const float sx = 0.03f, sdt = 0.02f, sb = 0.05f, sc = 0.04f;
    float *sxv = vec ? rand_f(Di, 0.01f, 0.06f) : NULL, *sbv = vec ? group_scales(G, N, 0.02f, 0.08f) : NULL;
    float *scv = vec ? group_scales(G, N, 0.02f, 0.08f) : NULL;
    size_t sn = (size_t)B * Di * N;
    float *st0 = rand_f(sn, -1, 1), *s_ref = copy_f(st0, sn), *s_got = copy_f(st0, sn);
    float *y_ref = mq_malloc(R * Di * 4), *y_got = mq_malloc(R * Di * 4);
    for (int b = 0; b < B; b++) {
        size_t o = (size_t)b * T;
        float *sr = with_state ? s_ref + (size_t)b * Di * N : NULL;
        if (vec)
            i8ref_scan_m2v(y_ref + o * Di, x + o * Di, Di, sxv, dt + o * H, H, sdt, bias, lo, hi, Bm + o * GN, Cm + o * GN,
                           GN, sbv, scv, A, D, sr, T, H, P, G, N);
        else
            i8ref_scan_m2(y_ref + o * Di, x + o * Di, Di, sx, dt + o * H, H, sdt, bias, lo, hi, Bm + o * GN, Cm + o * GN, GN,
                          sb, sc, A, D, sr, T, H, P, G, N);
    }
    T_CHECK(gop_i8_scan_m2(y_got, x, sx, sxv, dt, sdt, bias, lo, hi, Bm, Cm, sb, sc, sbv, scv, A, D,
                           with_state ? s_got : NULL, B, T, H, P, G, N, nc, ssd_q) == 0, "%s", mq_errmsg());
    double my = maxabs(y_ref, R * Di), wy = worst(y_got, y_ref, R * Di, 2e-4, 1e-4 * my);
    double ms = maxabs(s_ref, sn), ws = with_state ? worst(s_got, s_ref, sn, 1e-4, 1e-4 * ms) : 0;
    printf("    scan m2 B=%d T=%d H=%d P=%d G=%d N=%d dt in [%g, %g]%s%s, %d chunk(s), ssd %d: y worst %.3f (max |y| "
           "%.3g), state worst %.3f\n", B, T, H, P, G, N, lo, hi, with_state ? " state" : "",
           vec ? " scales per column" : "", nc, ssd_q, wy, my, ws);
    T_CHECK(wy <= 1, "y worst %.3g", wy);
    T_CHECK(ws <= 1, "state worst %.3g", ws);
    free(x), free(dt), free(Bm), free(Cm), free(A), free(D), free(bias), free(st0), free(s_ref), free(s_got);
    free(y_ref), free(y_got), free(sxv), free(sbv), free(scv);
}

static void test_scan_m2(void) {
    NEED_GPU();
    for (int nc = 1; nc <= 4; nc += 3) {
        scan2_case(2, 70, 6, 20, 2, 64, 0, INFINITY, 1, nc, 0, 0);
        scan2_case(1, 40, 4, 16, 1, 16, 0, INFINITY, 0, nc, 0, 0);
        scan2_case(2, 25, 2, 8, 1, 128, 0.001f, 0.1f, 1, nc, 0, 0);
        scan2_case(3, 1, 6, 64, 3, 32, 0, INFINITY, 1, nc, 0, 0);
    }
    /* the chunked SSD kernels (ssm/ssd.cuh), same tolerances */
    scan2_case(2, 300, 2, 64, 1, 128, 0, INFINITY, 1, 1, 64, 0);
    scan2_case(1, 530, 3, 64, 1, 128, 0.001f, 0.1f, 1, 1, 256, 0);
    scan2_case(2, 70, 6, 20, 2, 64, 0, INFINITY, 0, 1, 64, 0);
    scan2_case(2, 150, 4, 72, 2, 13, 0, INFINITY, 1, 1, 128, 0);
    /* scales per column (quamba2: x clustered, B / C per SSD group): general kernel, chunks, SSD */
    scan2_case(2, 70, 6, 20, 2, 64, 0, INFINITY, 1, 1, 0, 1);
    scan2_case(2, 70, 6, 20, 2, 64, 0, INFINITY, 1, 4, 0, 1);
    scan2_case(2, 300, 4, 64, 2, 128, 0, INFINITY, 1, 1, 64, 1);
    scan2_case(2, 150, 4, 72, 2, 13, 0, INFINITY, 1, 1, 128, 1);
}

static void test_gated_rmsnorm(void) {
    NEED_GPU();
    for (int nbg = 0; nbg < 2; nbg++) {
        int T = 7, D = 384;
        float *y = rand_f((size_t)T * D, -3, 3), *w = rand_f(D, 0.5f, 1.5f), sz = 0.04f;
        int8_t *z = rand_i8((size_t)T * D);
        float *o_ref = mq_malloc((size_t)T * D * 4), *o_got = mq_malloc((size_t)T * D * 4);
        i8ref_gated_rmsnorm(o_ref, y, z, D, sz, w, T, D, 1e-5f, nbg);
        T_CHECK(gop_i8_gated_rmsnorm(o_got, y, z, sz, w, T, D, 1e-5f, nbg) == 0, "%s", mq_errmsg());
        double wo = worst(o_got, o_ref, (size_t)T * D, 6e-4, 1e-6 * maxabs(o_ref, (size_t)T * D));
        printf("    gated rmsnorm %dx%d norm_before_gate=%d: worst %.3f\n", T, D, nbg, wo);
        T_CHECK(wo <= 1, "worst %.3g", wo);
        free(y), free(w), free(z), free(o_ref), free(o_got);
    }
}

/* ---------------------------------------------------------------- whole model vs the simulation */

#define CAL_SAMPLES 4
#define CAL_LEN 256


/* The calibration and validation token fixtures (HF ids of ../shared/datasets files): 1 when both
 * hold enough tokens (CAL_SAMPLES x CAL_LEN, 1024). */
static int token_fixtures(int32_t **cal, int32_t **val) {
    size_t ncal = 0, nval = 0;
    *cal = t_fixture_ids("tests/fixtures/tok/calib.txt.ids.u16.gz", &ncal);
    *val = t_fixture_ids("tests/fixtures/tok/valid.txt.ids.u16.gz", &nval);
    return *cal && *val && ncal >= CAL_SAMPLES * CAL_LEN && nval >= 1024;
}

/* The proxy in dir quantized by recipe o from this file's own statistics of the calibration
 * fixture cal (tests/tstats.h, percentile 99.95): *m loaded, *ts collected, *qm made. 0, or -1 after
 * a failed check (then nothing is held). The caller frees *qm, *m and *ts (tstats_free). */
static int quantize_proxy(const char *dir, const int32_t *cal, const q_options *o, mq_model *m, tstats **ts,
                          q_model *qm) {
    const int failed0 = t_checks_failed;
    T_CHECK(ssm_load(dir, m) == 0, "%s", mq_errmsg());
    if (t_checks_failed > failed0) return -1;
    *ts = ts_collect(dir, m, cal, CAL_SAMPLES, CAL_LEN, (const double[]){99.95}, 1);
    q_stats st = ts_iface(*ts);
    T_CHECK(q_quantize(m, &st, o, qm) == 0, "%s", mq_errmsg());
    if (t_checks_failed > failed0) {
        tstats_free(*ts);
        ssm_free(m);
        return -1;
    }
    return 0;
}

static double rel_rms(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

/* per-token NLL of tokens[1..T-1] from logits [T x V]; returns the sum */
static double nll_from_logits(const float *logits, const int32_t *tokens, int T, int V, float *nll) {
    double s = 0;
    for (int t = 0; t < T - 1; t++) {
        const float *l = logits + (size_t)t * V;
        nll[t] = (float)(op_logsumexp(l, V) - l[tokens[t + 1]]);
        s += nll[t];
    }
    return s;
}

static int nop_hook(void *ctx, const mq_act *a) {
    (void)ctx, (void)a;
    return 0;
}

/* The int8 pass (on the GPU, or its CPU mirror i8ref_forward) against the simulation of the same
 * q_model: teacher-forced (quantize/check.h: every op of the simulation from the pass's own int8
 * inputs; flips and FP16-level differences only) and free-running (perplexities agree). On the GPU
 * also: a batch of two windows against one at a time, and decode steps against prefill. */
/* wbits 4: quamba2 W4A8 (int4 in_proj / out_proj, round to nearest: the test's statistics carry no
 * Hessians) */
static void model_case_bits(int arch, q_method method, q_granularity gran, int head, int gpu, int wbits) {
    static char dir[4096];
    const char *d = t_shared(arch == 1 ? "models/mamba1-proxy" : "models/mamba2-proxy");
    if (!d) T_SKIP("proxy models not found under ../shared (or $MQ_SHARED)");
    snprintf(dir, sizeof dir, "%s", d);
    int32_t *cal, *val;
    if (!token_fixtures(&cal, &val)) T_SKIP("token fixtures missing");
    q_options o;
    q_options_default(&o);
    o.method = method, o.weight_gran = gran, o.quantize_head = head >= 1, o.quantize_embedding = head == 2;
    if (wbits == 4) o.wbits = 4, o.gptq = 0;
    mq_model m;
    tstats *ts;
    q_model qm;
    if (quantize_proxy(dir, cal, &o, &m, &ts, &qm)) return;
    const int failed0 = t_checks_failed;
    mq_model sm;
    T_CHECK(q_sim_build(&qm, &sm) == 0, "%s", mq_errmsg());
    q_sim_ctx sc;
    mq_hooks sh = q_sim_hooks(&sc, &qm);
    const mq_config *c = &m.cfg;
    const int D = c->d_model, V = c->vocab_size;
    printf("    %s %s%s, weights per %s%s, %s\n", arch == 1 ? "mamba1" : "mamba2", q_method_name(method),
           wbits == 4 ? " W4A8" : "", q_gran_name(gran),
           head == 2 ? ", int8 embedding and lm_head" : head ? ", int8 lm_head" : "", gpu ? "GPU" : "CPU mirror of the GPU pass");
    be *g = NULL;
    i8ref_plan plan;
    memset(&plan, 0, sizeof plan);
    if (gpu) {
        g = be_open_qmodel(&qm, BE_CUDA_INT8, 2, 512);
        T_CHECK(g != NULL, "upload: %s", mq_errmsg());
    } else {
        T_CHECK(i8ref_plan_build(&qm, &plan) == 0, "%s", mq_errmsg());
    }
    if (t_checks_failed > failed0) return;

    /* 1. one window, teacher-forced and free-running */
    const int T = gpu ? 512 : 256; /* the mirror runs on the CPU */
    float *hp = mq_malloc((size_t)T * D * 4), *hs = mq_malloc((size_t)T * D * 4);
    float *lp = mq_malloc((size_t)T * V * 4), *ls = mq_malloc((size_t)T * V * 4);
    float *np = mq_malloc((size_t)T * 4), *nf = mq_malloc((size_t)T * 4), *nsf = mq_malloc((size_t)T * 4);
    float *ns = mq_malloc((size_t)T * 4);
    qchk *chk = qchk_new(&qm, T);
    mq_hooks ph = qchk_pass_hooks(chk);
    mq_hooks fh = qchk_sim_hooks(chk);
    double sum_p;
    if (gpu) {
        T_CHECK(be_prefill(g, val, 1, T, NULL, &ph, hp) == 0, "%s", mq_errmsg());
        T_CHECK(be_logits(g, 0, T, lp) == 0, "%s", mq_errmsg());
        sum_p = nll_from_logits(lp, val, T, V, np);
    } else {
        T_CHECK(i8ref_forward(&qm, &plan, val, T, &ph, hp, np) == 0, "%s", mq_errmsg());
        sum_p = 0;
        for (int t = 0; t < T - 1; t++) sum_p += np[t];
    }
    T_CHECK(ssm_forward(&sm, val, T, &fh, hs) == 0, "%s", mq_errmsg()); /* forced */
    ssm_logits(&sm, hs, T, ls);
    double sum_sf = nll_from_logits(ls, val, T, V, nsf);
    char rep[4096];
    qchk_format(chk, rep, sizeof rep);
    printf("    teacher-forced simulation vs the int8 pass, per role over all layers:\n%s", rep);
    const qchk_role *rs = qchk_stats(chk);
    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        if (!rs[r].n) continue;
        const char *nm = ssm_act_role_name((mq_act_role)r);
        if (rs[r].is_int8) {
            T_CHECK(rs[r].max_steps <= 1.001, "%s: %.3g steps apart (layer %d)", nm, rs[r].max_steps, rs[r].worst_layer);
            T_CHECK(rs[r].flips <= 0.01 * rs[r].n, "%s: %.3g%% one code apart", nm, 100.0 * rs[r].flips / rs[r].n);
        } else {
            T_CHECK(rs[r].max_rel <= 5e-3, "%s: max |diff| %.3g of max |value| (layer %d)", nm, rs[r].max_rel,
                    rs[r].worst_layer);
        }
    }
    if (gpu) T_CHECK(rs[MQ_ACT_OUT_PROJ_IN].n > 0 && rs[MQ_ACT_IN_PROJ_IN].n > 0, "the check saw nothing");
    double eh = rel_rms(hp, hs, (size_t)T * D), ml = maxabs(ls, (size_t)T * V), dl = 0, dn = 0;
    for (size_t i = 0; i < (size_t)T * V && gpu; i++) dl = fmax(dl, fabs((double)lp[i] - ls[i]));
    for (int t = 0; t < T - 1; t++) dn = fmax(dn, fabs((double)np[t] - nsf[t]));
    printf("    forced: final hidden relative rms %.3g, max |logit diff| %.3g (max |logit| %.3g), max per-token |NLL diff| "
           "%.3g\n", eh, dl, ml, dn);
    /* (with an int8 lm_head the simulation's hidden state comes back quantized: compare the logits) */
    if (!head) T_CHECK(eh < 2e-3, "forced final hidden differ by %.3g (relative rms)", eh);
    T_CHECK(dl <= 5e-3 * ml, "forced logits differ by %.3g", dl);
    T_CHECK(dn < 0.02, "forced per-token NLL differ by %.3g", dn);
    /* free-running */
    double sum_s = ssm_nll(&sm, val, T, &sh, ns), sum_f = ssm_nll(&m, val, T, NULL, nf), n1 = T - 1.0;
    double pp = exp(sum_p / n1), ps = exp(sum_s / n1), pf = exp(sum_f / n1), pfs = exp(sum_sf / n1);
    double mps = 0, msf = 0;
    for (int t = 0; t < T - 1; t++) mps += fabs((double)np[t] - ns[t]) / n1, msf += fabs((double)ns[t] - nf[t]) / n1;
    printf("    ppl (%d tokens): FP32 %.4f, simulation %.4f, int8 pass %.4f (forced simulation %.4f); free-running "
           "per-token |NLL pass - sim| mean %.3g, |NLL sim - FP32| mean %.3g\n", T, pf, ps, pp, pfs, mps, msf);
    T_CHECK(isfinite(pp) && pp > 1, "int8 ppl %g", pp);
    T_CHECK(fabs(pp / ps - 1) < 0.01, "int8 ppl %.4f vs simulation %.4f", pp, ps);

    if (gpu) {
        /* 2. two windows in one batch == one at a time (window 0 is the one above) */
        float *nb = mq_malloc((size_t)2 * (T - 1) * 4);
        double sb = 0;
        T_CHECK(be_nll(g, val, 2, T, NULL, nb, &sb) == 0, "%s", mq_errmsg());
        double db = 0;
        for (int t = 0; t < T - 1; t++) db = fmax(db, fabs((double)nb[t] - np[t]));
        printf("    batch of 2 windows: window 0 per-token NLL within %.3g of the single run; ppl of both %.4f\n", db,
               exp(sb / (2.0 * (T - 1))));
        T_CHECK(db < 1e-3, "batched NLL differs by %.3g", db);
        free(nb);

        /* 3. decode: prefill P tokens into a state, then steps, against one prefill of all of them. Fewer
         * than 64 tokens, so that the prefills scan in one pass of the sequential kernel as the steps
         * do: chunked scans (and Mamba2's SSD form from 64 tokens on) compose the decays in another
         * FP32 order, and a few requantization flips then spread (the chunks and the SSD form are
         * checked on their own in test_scan_*, the SSD prefill against steps in test_gpu_forward). The steps run as CUDA graphs through the
         * fused batch-1 kernels; with a hook they run op by op through the general kernels. */
        const int P = 57, K = 6;
        be *g1 = be_open_qmodel(&qm, BE_CUDA_INT8, 1, 256);
        be_state *s = g1 ? be_state_new(g1, 1) : NULL;
        float *lstep = mq_malloc((size_t)V * 4), *lfull = mq_malloc((size_t)V * 4), *lgen = mq_malloc((size_t)V * 4);
        T_CHECK(g1 && s && be_prefill(g1, val, 1, P, s, NULL, NULL) == 0, "%s", mq_errmsg());
        for (int k = 0; k < K && s; k++) T_CHECK(be_step(g1, s, val + P + k, NULL, NULL, lstep) == 0, "%s", mq_errmsg());
        T_CHECK(g1 && be_prefill(g1, val, 1, P + K, NULL, NULL, NULL) == 0, "%s", mq_errmsg());
        T_CHECK(g1 && be_logits(g1, P + K - 1, 1, lfull) == 0, "%s", mq_errmsg());
        double dsf = 0, mlf = maxabs(lfull, V);
        for (int v = 0; v < V; v++) dsf = fmax(dsf, fabs((double)lstep[v] - lfull[v]));
        printf("    decode: %d steps after a %d-token prefill, max |logit step - prefill| %.3g (max |logit| %.3g)\n", K, P,
               dsf, mlf);
        /* 5e-3: the fused step sums C h over its lanes in another order than the general scan, so y
         * can land an ulp apart and, rarely, one y code a step apart after the Hadamard quantize: on
         * the H200 (commit 3ee872f) 7 of 8 cases gave 0 and mamba1 quamba-rot 0.0284 (3.3e-3 of the
         * largest logit) from such a flip. A wrong state or kernel gives O(1) differences. */
        T_CHECK(dsf <= 5e-3 * mlf, "decode vs prefill logits differ by %.3g", dsf);
        /* the same steps op by op (a hook turns the graph and the fused kernels off) */
        be_state *s2 = g1 ? be_state_new(g1, 1) : NULL;
        mq_hooks nop = {nop_hook, NULL};
        long c0[GOP_NROUTES], c1[GOP_NROUTES];
        T_CHECK(s2 && be_prefill(g1, val, 1, P, s2, NULL, NULL) == 0, "%s", mq_errmsg());
        gop_i8_route_counts(c0);
        for (int k = 0; k < K && s2; k++) T_CHECK(be_step(g1, s2, val + P + k, &nop, NULL, lfull) == 0, "%s", mq_errmsg());
        gop_i8_route_counts(c1);
        double df = 0;
        for (int v = 0; v < V; v++) df = fmax(df, fabs((double)lstep[v] - lfull[v]));
        printf("    fused decode kernels (graph) vs the general ones (op by op): max |logit diff| %.3g\n", df);
        /* (W4A8's in_proj / out_proj take the 4-bit GEMV, and Mamba2 has no other int8 GEMM) */
        if (wbits == 8 || arch == 1) T_CHECK(c1[3] > c0[3], "the general decode path did not run");
        T_CHECK(df <= 5e-3 * mlf, "fused decode steps differ by %.3g", df); /* as above */
        /* the general kernels through the CUDA graph: the same logits as op by op */
        gop_i8_set_decode_fused(0);
        be_state *s3 = g1 ? be_state_new(g1, 1) : NULL;
        T_CHECK(s3 && be_prefill(g1, val, 1, P, s3, NULL, NULL) == 0, "%s", mq_errmsg());
        for (int k = 0; k < K && s3; k++) T_CHECK(be_step(g1, s3, val + P + k, NULL, NULL, lgen) == 0, "%s", mq_errmsg());
        gop_i8_set_decode_fused(1);
        double dg = 0;
        for (int v = 0; v < V; v++) dg = fmax(dg, fabs((double)lgen[v] - lfull[v]));
        printf("    decode through the CUDA graph: max |logit diff| to op-by-op steps %.3g\n", dg);
        T_CHECK(dg <= 1e-5 * mlf, "graph steps differ by %.3g", dg);
        /* 4. a batch of BS sequences decoded together against each alone (BS = 40: W4A8's GEMMs then
         * take the tiled kernel with K split, the int8 ones cuBLASLt); sequence i is val[24 i ..), a
         * 6-token prefill (240 rows of the batch: the block-per-row y rotation that one sequence
         * takes too) and 2 steps. Each alone runs twice: through the fused step kernels and through
         * the general ones (as the batch). int32 sums are exact in every route, so what can differ is
         * an FP32 order: the fused Mamba1 step's C h (the comment of 3. above), W4A8's K-split
         * slices, Mamba1 quamba2's x_proj in FP16 through cuBLAS; the y rotation turns an ulp of y into
         * one-code flips, and 8 free-running tokens carry them to the logits. On the H200 (47ec534,
         * fused singles): Mamba2 W8A8 and the naive models equal (measured: 0), Mamba1 Hadamard models
         * and W4A8 0.06-0.18 of a max |logit| of 12, on a few sequences. Hence: Mamba2 W8A8 exact,
         * the rest within 5% of the largest logit (a wrong state or row moves logits by whole units). */
        enum { BS = 40, BP = 6, BK = 2 };
        be *gb = be_open_qmodel(&qm, BE_CUDA_INT8, BS, BP);
        be_state *sbat = gb ? be_state_new(gb, BS) : NULL;
        int32_t *tb = mq_malloc(sizeof(int32_t) * BS * BP), *tk = mq_malloc(sizeof(int32_t) * BS);
        float *lb = mq_malloc(sizeof(float) * (size_t)BS * V);
        for (int i = 0; i < BS; i++) memcpy(tb + (size_t)i * BP, val + 24 * i, sizeof(int32_t) * BP);
        T_CHECK(sbat && be_prefill(gb, tb, BS, BP, sbat, NULL, NULL) == 0, "%s", mq_errmsg());
        for (int k = 0; k < BK && sbat; k++) {
            for (int i = 0; i < BS; i++) tk[i] = val[24 * i + BP + k];
            T_CHECK(be_step(gb, sbat, tk, NULL, NULL, lb) == 0, "%s", mq_errmsg());
        }
        for (int fused = 1; fused >= 0 && sbat; fused--) {
            double dbat = 0, mlb = 0;
            int ndiff = 0;
            gop_i8_set_decode_fused(fused);
            for (int i = 0; i < BS; i++) { /* the same sequence alone, its last step's logits */
                be_state *sone = be_state_new(g1, 1);
                T_CHECK(sone && be_prefill(g1, val + 24 * i, 1, BP, sone, NULL, NULL) == 0, "%s", mq_errmsg());
                for (int k = 0; k < BK && sone; k++)
                    T_CHECK(be_step(g1, sone, val + 24 * i + BP + k, NULL, NULL, lstep) == 0, "%s", mq_errmsg());
                double di = 0;
                for (int v = 0; v < V; v++) di = fmax(di, fabs((double)lstep[v] - lb[(size_t)i * V + v]));
                dbat = fmax(dbat, di), ndiff += di > 0;
                mlb = fmax(mlb, maxabs(lstep, V));
                be_state_free(sone);
            }
            gop_i8_set_decode_fused(1);
            printf("    decode of %d sequences at once vs each alone (%d-token prefill, %d steps, %s kernels alone): "
                   "max |logit diff| %.3g (max |logit| %.3g), %d sequences not equal\n", BS, BP, BK,
                   fused ? "fused" : "general", dbat, mlb, ndiff);
            if (arch == 2 && wbits == 8)
                T_CHECK(dbat == 0, "batched Mamba2 decode differs from single sequences by %.3g", dbat);
            T_CHECK(dbat <= 0.05 * mlb, "batched decode differs from single sequences by %.3g", dbat);
        }
        free(tb), free(tk), free(lb);
        be_state_free(sbat);
        be_free(gb);
        free(lstep), free(lfull), free(lgen);
        be_state_free(s), be_state_free(s2), be_state_free(s3);
        be_free(g1);
    }

    /* the artifact for `mambaq verify` */
    const char *ad = getenv("I8_ART_DIR");
    if (gpu && ad && *ad && method == Q_QUAMBA && gran == Q_GRAN_TENSOR && !head) {
        char out[4200], cj[4200];
        snprintf(out, sizeof out, "%s/art_m%d", ad, arch);
        snprintf(cj, sizeof cj, "%s/config.json", dir);
        const char *tj = t_shared("models/tokenizer.json");
        art_provenance pv;
        memset(&pv, 0, sizeof pv);
        snprintf(pv.source_model, sizeof pv.source_model, "%.1000s", dir);
        snprintf(pv.tool_version, sizeof pv.tool_version, "test_int8");
        T_CHECK(tj && art_write(out, &qm, &pv, cj, tj, 1) == 0, "artifact: %s", tj ? mq_errmsg() : "no tokenizer.json");
        printf("    wrote %s\n", out);
    }

    free(hp), free(hs), free(lp), free(ls), free(np), free(nf), free(nsf), free(ns);
    qchk_free(chk);
    be_free(g);
    i8ref_plan_free(&plan);
    q_sim_free(&sm);
    q_model_free(&qm);
    ssm_free(&m);
    tstats_free(ts), free(cal), free(val);
}

static void model_case(int arch, q_method method, q_granularity gran, int head, int gpu) {
    model_case_bits(arch, method, gran, head, gpu, 8);
}

/* Fused batch-1 decode (ssm/i8_decode.cu) against the general kernels on random int8 models of
 * real widths (two layers): mamba-130m (Hadamard 1536 = 12 * 128), mamba-1.4b (4096 = 2^12),
 * mamba-2.8b (5120 = 20 * 256) and mamba2-2.7b, 12 steps each, and also without the rotation. The
 * same kernels' arithmetic up to FP32 summation order: the norm, scan and Hadamard sums may flip a
 * requantization by one code now and then, so hidden states agree to a small relative RMS. */
static void test_decode_fused_shapes(void) {
    NEED_GPU();
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int had = 2; had >= 0; had--) { /* 2: quamba2's scales per column (and the rotation) */
            if ((!had && i != 0 && i != 3) || (had == 2 && i != 0 && i != 2 && i != 3)) continue;
            mq_config c = make_cfg(&shapes[i]);
            c.n_layer = 2;
            be *g = had == 2 ? be_open_random_q2(&c, 0, 7, 1, 4) : be_open_random(&c, BE_CUDA_INT8, had, 7, 1, 4);
            T_CHECK(g != NULL, "%s", mq_errmsg());
            if (!g) continue;
            const int D = c.d_model, K = 12;
            be_state *sa = be_state_new(g, 1), *sb = be_state_new(g, 1);
            float *ha = mq_malloc(sizeof(float) * D), *hb = mq_malloc(sizeof(float) * D);
            double worst = 0;
            long c0[GOP_NROUTES], c1[GOP_NROUTES];
            for (int k = 0; k < K; k++) {
                int32_t tok = (int32_t)((k * 7919u + 13) % (unsigned)c.vocab_size);
                gop_i8_route_counts(c0);
                T_CHECK(be_step(g, sa, &tok, NULL, ha, NULL) == 0, "%s", mq_errmsg());
                gop_i8_route_counts(c1);
                T_CHECK(c1[1] == c0[1] && c1[2] == c0[2] && c1[3] == c0[3] && c1[4] == c0[4], "the fused path did not run");
                gop_i8_set_decode_fused(0);
                T_CHECK(be_step(g, sb, &tok, NULL, hb, NULL) == 0, "%s", mq_errmsg());
                gop_i8_set_decode_fused(1);
                worst = fmax(worst, rel_rms(ha, hb, D));
            }
            printf("    %s%s, 2 layers: %d steps, fused vs general final hidden relative rms <= %.3g\n",
                   shapes[i].name, had == 2 ? " (quamba2 scales per column)" : had ? "" : " (no rotation)", K, worst);
            T_CHECK(worst < 5e-3, "%s: fused decode differs by %.3g", shapes[i].name, worst);
            free(ha), free(hb);
            be_state_free(sa), be_state_free(sb);
            be_free(g);
        }
}

static void test_cpu_mirror_m1(void) { model_case(1, Q_QUAMBA, Q_GRAN_TENSOR, 0, 0); }
static void test_cpu_mirror_m2(void) { model_case(2, Q_QUAMBA, Q_GRAN_TENSOR, 0, 0); }
static void test_model_m1_quamba(void) { NEED_GPU(); model_case(1, Q_QUAMBA, Q_GRAN_TENSOR, 0, 1); }
static void test_model_m2_quamba(void) { NEED_GPU(); model_case(2, Q_QUAMBA, Q_GRAN_TENSOR, 0, 1); }
static void test_model_m1_naive_channel_head(void) { NEED_GPU(); model_case(1, Q_NAIVE, Q_GRAN_CHANNEL, 1, 1); }
static void test_model_m2_naive_channel_head(void) { NEED_GPU(); model_case(2, Q_NAIVE, Q_GRAN_CHANNEL, 1, 1); }
/* quamba-rot: rotated embedding, untied FP16 lm_head with norm_f in it (norm_f ones), or int8 lm_head */
/* quamba2 W8A8 (clustered x; Mamba2 B / C per SSD group) */
static void test_cpu_mirror_m1_quamba2(void) { model_case(1, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 0); }
static void test_cpu_mirror_m2_quamba2(void) { model_case(2, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 0); }
static void test_cpu_mirror_m1_quamba2_w4a8(void) { model_case_bits(1, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 0, 4); }
static void test_cpu_mirror_m2_quamba2_w4a8(void) { model_case_bits(2, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 0, 4); }
static void test_model_m1_quamba2_w4a8(void) { NEED_GPU(); model_case_bits(1, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 1, 4); }
static void test_model_m2_quamba2_w4a8(void) { NEED_GPU(); model_case_bits(2, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 1, 4); }
static void test_model_m1_quamba2(void) { NEED_GPU(); model_case(1, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 1); }
static void test_model_m2_quamba2(void) { NEED_GPU(); model_case(2, Q_QUAMBA2, Q_GRAN_TENSOR, 0, 1); }
static void test_cpu_mirror_m1_rot(void) { model_case(1, Q_QUAMBA_ROT, Q_GRAN_TENSOR, 0, 0); }
static void test_cpu_mirror_m2_rot(void) { model_case(2, Q_QUAMBA_ROT, Q_GRAN_TENSOR, 0, 0); }
static void test_model_m1_quamba_rot(void) { NEED_GPU(); model_case(1, Q_QUAMBA_ROT, Q_GRAN_TENSOR, 0, 1); }
static void test_model_m2_quamba_rot_channel_head(void) { NEED_GPU(); model_case(2, Q_QUAMBA_ROT, Q_GRAN_CHANNEL, 1, 1); }
/* --quantize-embedding (head 2): the pass uploads the dequantized FP16 table; tied lm_head = the int8 embedding */
static void test_cpu_mirror_m1_embedding(void) { model_case(1, Q_QUAMBA, Q_GRAN_TENSOR, 2, 0); }
static void test_model_m1_quamba_embedding(void) { NEED_GPU(); model_case(1, Q_QUAMBA, Q_GRAN_TENSOR, 2, 1); }
static void test_model_m2_quamba_rot_embedding(void) { NEED_GPU(); model_case(2, Q_QUAMBA_ROT, Q_GRAN_CHANNEL, 2, 1); }

/* `mambaq verify` end to end on an artifact written here: exit 0 with a GPU (the check against the
 * simulation passed), 3 without one (the CPU simulation stood in); 1 for an invalid artifact. */
static void verify_case(int arch, q_method method) {
    struct stat sb;
    if (stat("bin/mambaq", &sb) != 0) T_SKIP("bin/mambaq not built");
    static char dir[4096];
    const char *d = t_shared(arch == 1 ? "models/mamba1-proxy" : "models/mamba2-proxy");
    if (!d) T_SKIP("proxy models not found");
    snprintf(dir, sizeof dir, "%s", d);
    const char *tj = t_shared("models/tokenizer.json");
    if (!tj) T_SKIP("models/tokenizer.json not found");
    static char tjs[4096];
    snprintf(tjs, sizeof tjs, "%s", tj);
    int32_t *cal, *val;
    if (!token_fixtures(&cal, &val)) T_SKIP("token fixtures missing");
    q_options o;
    q_options_default(&o);
    o.method = method;
    mq_model m;
    tstats *ts;
    q_model qm;
    if (quantize_proxy(dir, cal, &o, &m, &ts, &qm)) return;
    char art[512], bad[600], data[512], cj[4200], cmd[4096], out[600];
    snprintf(art, sizeof art, "%s/vart_m%d_%s", t_tmpdir(), arch, q_method_name(method));
    snprintf(bad, sizeof bad, "%s.bad", art);
    snprintf(data, sizeof data, "%s/valid.bin", t_tmpdir());
    snprintf(out, sizeof out, "%s/verify_m%d.json", t_tmpdir(), arch);
    snprintf(cj, sizeof cj, "%s/config.json", dir);
    art_provenance pv;
    memset(&pv, 0, sizeof pv);
    snprintf(pv.source_model, sizeof pv.source_model, "%.1000s", dir);
    T_CHECK(art_write(art, &qm, &pv, cj, tjs, 1) == 0, "%s", mq_errmsg());
    FILE *f = fopen(data, "wb");
    T_CHECK(f && fwrite(val, 4, 1024, f) == 1024 && fclose(f) == 0, "writing %s", data);
    snprintf(cmd, sizeof cmd, "bin/mambaq verify --artifact '%s' --data '%s' --window 256 --windows 4 --json > '%s' 2>/dev/null", art,
             data, out);
    int rc = system(cmd), code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    const int gpu = gpu_available(NULL);
    T_CHECK(code == (gpu ? 0 : 3), "verify exit status %d, expected %d", code, gpu ? 0 : 3);
    char *js = mq_read_file(out, NULL);
    cJSON *j = js ? cJSON_Parse(js) : NULL;
    T_CHECK(j != NULL, "verify printed no JSON");
    if (j) {
        double p8 = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ppl_int8"));
        double pf = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "ppl_float"));
        double top1 = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "top1_agreement"));
        double kl = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "kl_mean"));
        const cJSON *cosv = cJSON_GetObjectItem(j, "layer_cosine");
        int ncos = cJSON_GetArraySize(cosv);
        double cmin = 1;
        for (int i = 0; i < ncos; i++) cmin = fmin(cmin, cJSON_GetNumberValue(cJSON_GetArrayItem(cosv, i)));
        printf("    verify %s %s (%s): ppl float %.3f int8 %.3f, top-1 %.2f%%, KL %.4g, min layer cosine %.4f\n",
               arch == 1 ? "mamba1" : "mamba2", q_method_name(method), gpu ? "GPU" : "no GPU: simulation", pf, p8, 100 * top1, kl, cmin);
        T_CHECK(isfinite(p8) && fabs(p8 / pf - 1) < 0.05, "int8 ppl %g vs float %g", p8, pf);
        T_CHECK(top1 > 0.8 && kl < 0.05, "top-1 %.3f, KL %.3g", top1, kl);
        T_CHECK(ncos == m.cfg.n_layer && cmin > 0.95, "%d layer cosines, min %.4f", ncos, cmin);
        if (gpu) {
            const cJSON *sc = cJSON_GetObjectItem(j, "simulation_check");
            T_CHECK(sc && cJSON_IsTrue(cJSON_GetObjectItem(sc, "ok")), "simulation check not ok");
        }
        cJSON_Delete(j);
    }
    free(js);
    /* mambaq generate from the same artifact: greedy on the CPU simulation and (with a GPU) the int8 pass */
    for (int dev = 0; dev < 1 + gpu; dev++) {
        char gout[700];
        snprintf(gout, sizeof gout, "%s/gen_m%d_%d.txt", t_tmpdir(), arch, dev);
        snprintf(cmd, sizeof cmd, "bin/mambaq generate --artifact '%s' --prompt 'The old man walked into the' --max-tokens 16 "
                 "--device %s > '%s' 2>&1", art, dev ? "cuda" : "cpu", gout);
        rc = system(cmd);
        char *txt = mq_read_file(gout, NULL);
        T_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0 && txt && strlen(txt) > 30, "generate (%s) exit %d: %s",
                dev ? "cuda" : "cpu", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, txt ? txt : "");
        if (txt) {
            for (char *q = txt; *q; q++) if (*q == '\n') *q = ' ';
            printf("    generate (%s): %s\n", dev ? "int8 GPU" : "CPU simulation", txt);
        }
        free(txt);
    }
    /* an artifact that fails validation: exit 1 with the validator's message */
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && rm '%s/model.safetensors'", bad, art, bad, bad);
    T_CHECK(system(cmd) == 0, "%s", cmd);
    snprintf(cmd, sizeof cmd, "bin/mambaq verify --artifact '%s' --data '%s' --window 256 --windows 1 2> '%s.err' >/dev/null",
             bad, data, bad);
    rc = system(cmd);
    snprintf(cmd, sizeof cmd, "%s.err", bad);
    char *err = mq_read_file(cmd, NULL);
    T_CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1 && err && strstr(err, "failed validation"),
            "invalid artifact: exit %d, message '%s'", WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, err ? err : "");
    free(err);
    q_model_free(&qm);
    ssm_free(&m);
    tstats_free(ts), free(cal), free(val);
}
static void test_verify_m1(void) { verify_case(1, Q_QUAMBA); }
static void test_verify_m2(void) { verify_case(2, Q_QUAMBA); }
/* the block cosines compare the rotated residual stream rotated back */
static void test_verify_m1_rot(void) { verify_case(1, Q_QUAMBA_ROT); }
static void test_verify_m2_rot(void) { verify_case(2, Q_QUAMBA_ROT); }

/* an upload that must be refused: a quantized role without a scale (checked before the GPU is asked) */
static void test_upload_refuses(void) {
#ifndef MQ_CUDA
    T_SKIP("built without CUDA");
#endif
    const char *d = t_shared("models/mamba1-proxy");
    if (!d) T_SKIP("proxy models not found");
    mq_model m;
    if (ssm_load(d, &m) != 0) {
        T_CHECK(0, "%s", mq_errmsg());
        return;
    }
    tstats *ts = mq_calloc(1, sizeof *ts);
    for (int l = 0; l < 64; l++)
        for (int r = 0; r <= MQ_ACT_NROLES; r++)
            for (int p = 0; p < Q_MAX_PARTS; p++) ts->amax[l][r][p][0] = ts->amax[l][r][p][1] = 1.0f;
    ts->npct = 1;
    ts->pct[0] = 99.95;
    for (int l = 0; l < 64; l++) ts->pema[l][0] = 1.0f;
    q_stats st = ts_iface(ts);
    q_options o;
    q_options_default(&o);
    q_model qm;
    T_CHECK(q_quantize(&m, &st, &o, &qm) == 0, "%s", mq_errmsg());
    qm.layers[3].act_scale[MQ_ACT_Z][0] = 0;
    be *g = be_open_qmodel(&qm, BE_CUDA_INT8, 1, 8);
    T_CHECK(g == NULL && strstr(mq_errmsg(), "layer 3") && strstr(mq_errmsg(), "z"), "upload accepted a missing z scale (%s)",
            mq_errmsg());
    be_free(g);
    q_model_free(&qm);
    ssm_free(&m);
    free(ts);
}

int main(int argc, char **argv) {
    const char *only = argc > 1 ? argv[1] : NULL;
#define RUN(fn) \
    if (!only || strstr(#fn, only)) T_RUN(fn)
    RUN(test_gemm_i32);
    RUN(test_linear_epilogue);
    RUN(test_linear_xcols);
    RUN(test_rmsnorm);
    RUN(test_conv1d);
    RUN(test_scan_m1);
    RUN(test_scan_m1_steps);
    RUN(test_scan_m2_steps);
    RUN(test_yquant_rows);
    RUN(test_scan_m2);
    RUN(test_gated_rmsnorm);
    RUN(test_upload_refuses);
    RUN(test_cpu_mirror_m1);
    RUN(test_cpu_mirror_m2);
    RUN(test_cpu_mirror_m1_quamba2);
    RUN(test_cpu_mirror_m2_quamba2);
    RUN(test_cpu_mirror_m1_quamba2_w4a8);
    RUN(test_cpu_mirror_m2_quamba2_w4a8);
    RUN(test_model_m1_quamba2);
    RUN(test_model_m1_quamba2_w4a8);
    RUN(test_model_m2_quamba2_w4a8);
    RUN(test_model_m2_quamba2);
    RUN(test_cpu_mirror_m1_rot);
    RUN(test_cpu_mirror_m2_rot);
    RUN(test_cpu_mirror_m1_embedding);
    RUN(test_verify_m1);
    RUN(test_verify_m2);
    RUN(test_verify_m1_rot);
    RUN(test_verify_m2_rot);
    RUN(test_decode_fused_shapes);
    RUN(test_model_m1_quamba);
    RUN(test_model_m2_quamba);
    RUN(test_model_m1_naive_channel_head);
    RUN(test_model_m2_naive_channel_head);
    RUN(test_model_m1_quamba_rot);
    RUN(test_model_m2_quamba_rot_channel_head);
    RUN(test_model_m1_quamba_embedding);
    RUN(test_model_m2_quamba_rot_embedding);
    return t_summary();
}
