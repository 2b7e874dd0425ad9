/* The CPU references of the int8 kernels (ssm/int8_ref.h) against the CPU simulation's math
 * (quantize/sim.c: FP32 ops on the dequantized int8 values, then quantize -> dequantize with q.h's
 * rule). The int8 references compute the dot products exactly in int32 and apply the scales once,
 * the simulation sums dequantized products in FP32: the two may round a value that sits on a
 * rounding boundary to neighbouring int8 codes, nothing more. Checked: every output within one
 * int8 step, such flips rare (< 0.5%), states identical, and chunked conv == one-shot conv. */
#include <stdint.h>
#include "core/err.h"
#include "core/mat.h"
#include "quantize/q.h"
#include "ssm/int8_ref.h"
#include "ssm/ops.h"
#include "tests/test.h"

#define T_RNG_SEED 0x9E3779B97F4A7C15ull /* the inputs this file was tuned on */
#include "tests/test_rand.h"

static void linear_case(int M, int N, int K, int per_channel, int with_bias) {
    int8_t *X = rand_i8((size_t)M * K), *W = rand_i8((size_t)N * K);
    float sx = 0.02f, base = 1.0f / (73.0f * sqrtf((float)K));
    float *sw = rand_f(N, base, base), *qs = rand_f(N, 3.0f / 127, 5.0f / 127);
    if (per_channel)
        for (int n = 0; n < N; n++) sw[n] = base * (0.5f + 0.5f * (frand() + 1.0f));
    float *bias = with_bias ? rand_f(N, -0.5f, 0.5f) : NULL;
    int32_t *acc = mq_malloc((size_t)M * N * sizeof(int32_t));
    int8_t *q_ref = mq_malloc((size_t)M * N), *q_sim = mq_malloc((size_t)M * N);
    i8ref_gemm(acc, X, K, W, M, N, K);
    i8ref_epilogue(acc, M, N, sx, sw, bias, qs, q_ref, NULL);
    /* the simulation: dequantized X and W, FP32 linear, quantize with the output scale */
    float *Xf = mq_malloc((size_t)M * K * sizeof(float)), *Wf = mq_malloc((size_t)N * K * sizeof(float));
    float *Y = mq_malloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) Xf[i] = qr_deq_i8(X[i], sx);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) Wf[(size_t)n * K + k] = qr_deq_i8(W[(size_t)n * K + k], sw[n]);
    mat_linear(Y, Xf, Wf, bias, M, N, K);
    for (size_t i = 0; i < (size_t)M * N; i++) q_sim[i] = qr_quant_i8(Y[i], qs[i % N]);
    int maxd;
    size_t nd;
    cmp_q(q_ref, q_sim, (size_t)M * N, &maxd, &nd);
    printf("    linear %dx%dx%d%s%s: %zu of %d outputs one step apart (max %d)\n", M, N, K,
           per_channel ? " per-channel" : "", with_bias ? " +bias" : "", nd, M * N, maxd);
    T_CHECK(maxd <= 1, "int8 reference and simulation differ by %d steps", maxd);
    T_CHECK(nd <= (size_t)(0.005 * M * N) + 1, "%zu flips of %d", nd, M * N);
    free(X), free(W), free(sw), free(qs), free(bias), free(acc), free(q_ref), free(q_sim), free(Xf), free(Wf), free(Y);
}

static void test_linear_vs_sim(void) {
    linear_case(64, 384, 192, 0, 0);
    linear_case(37, 50, 67, 1, 1);
    linear_case(3, 768, 1536, 1, 0);
}

static void test_conv_vs_sim(void) {
    const int T = 53, C = 70, K = 4, H = K - 1;
    int8_t *x = rand_i8((size_t)T * C), *w = rand_i8((size_t)C * K), *st = rand_i8((size_t)C * H);
    float *sw = rand_f(C, 0.003f, 0.006f), *si = rand_f(C, 0.02f, 0.04f), *so = rand_f(C, 0.02f, 0.03f);
    float *b = rand_f(C, -0.3f, 0.3f);
    int8_t *q_ref = mq_malloc((size_t)T * C), *q_sim = mq_malloc((size_t)T * C), *st_ref = mq_malloc((size_t)C * H);
    memcpy(st_ref, st, (size_t)C * H);
    i8ref_conv1d(q_ref, C, x, C, st_ref, w, sw, si, b, so, T, C, K);
    /* the simulation: op_conv1d with SiLU on dequantized inputs, weights and state */
    float *xf = mq_malloc((size_t)T * C * sizeof(float)), *wf = mq_malloc((size_t)C * K * sizeof(float));
    float *sf = mq_malloc((size_t)C * H * sizeof(float)), *y = mq_malloc((size_t)T * C * sizeof(float));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) xf[(size_t)t * C + c] = qr_deq_i8(x[(size_t)t * C + c], si[c]);
    for (int c = 0; c < C; c++) {
        for (int j = 0; j < K; j++) wf[(size_t)c * K + j] = qr_deq_i8(w[(size_t)c * K + j], sw[c]);
        for (int j = 0; j < H; j++) sf[(size_t)c * H + j] = qr_deq_i8(st[(size_t)c * H + j], si[c]);
    }
    op_conv1d(y, C, xf, C, wf, b, sf, T, C, K, 1);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++) q_sim[(size_t)t * C + c] = qr_quant_i8(y[(size_t)t * C + c], so[c]);
    int maxd;
    size_t nd;
    cmp_q(q_ref, q_sim, (size_t)T * C, &maxd, &nd);
    printf("    conv1d %dx%d K=%d: %zu of %d outputs one step apart (max %d)\n", T, C, K, nd, T * C, maxd);
    T_CHECK(maxd <= 1, "int8 reference and simulation differ by %d steps", maxd);
    T_CHECK(nd <= (size_t)(0.005 * T * C) + 1, "%zu flips of %d", nd, T * C);
    /* the int8 state holds exactly the simulation's (dequantized) state */
    int bad = 0;
    for (int c = 0; c < C; c++)
        for (int j = 0; j < H; j++)
            if (qr_deq_i8(st_ref[(size_t)c * H + j], si[c]) != sf[(size_t)c * H + j]) bad++;
    T_CHECK(bad == 0, "%d conv state entries differ from the simulation's", bad);
    /* chunked: T1 rows, then 1-row steps, then the rest == one call */
    int8_t *q2 = mq_malloc((size_t)T * C), *st2 = mq_malloc((size_t)C * H);
    memcpy(st2, st, (size_t)C * H);
    int t = 0, cuts[] = {2, 1, 1, 17, 1, T};
    for (int i = 0; t < T; i++) {
        int n = cuts[i] < T - t ? cuts[i] : T - t;
        i8ref_conv1d(q2 + (size_t)t * C, C, x + (size_t)t * C, C, st2, w, sw, si, b, so, n, C, K);
        t += n;
    }
    T_CHECK(memcmp(q2, q_ref, (size_t)T * C) == 0, "chunked conv differs from one call");
    T_CHECK(memcmp(st2, st_ref, (size_t)C * H) == 0, "chunked conv state differs from one call");
    free(x), free(w), free(st), free(sw), free(si), free(so), free(b), free(q_ref), free(q_sim), free(st_ref);
    free(xf), free(wf), free(sf), free(y), free(q2), free(st2);
}

/* The scans' references are the simulation's ops on dequantized inputs: check the dequantization
 * (dt bias added after dequantizing, as sim.c does for Mamba1's dt_proj output) against a direct
 * call with values built the simulation's way. */
static void test_scan_m1_vs_sim(void) {
    const int T = 20, Di = 24, N = 16;
    int8_t *u = rand_i8((size_t)T * Di), *dt = rand_i8((size_t)T * Di), *z = rand_i8((size_t)T * Di);
    int8_t *bc = rand_i8((size_t)T * 2 * N);
    float *A = rand_f((size_t)Di * N, -8, -0.5f), *D = rand_f(Di, 0.5f, 1.5f), *bias = rand_f(Di, -5, -2);
    float su = 0.03f, sdt = 0.02f, sb = 0.05f, sc = 0.04f, sz = 0.03f;
    float *y = mq_malloc((size_t)T * Di * sizeof(float)), *y2 = mq_malloc((size_t)T * Di * sizeof(float));
    float *s1 = rand_f((size_t)Di * N, -1, 1), *s2 = mq_malloc((size_t)Di * N * sizeof(float));
    memcpy(s2, s1, (size_t)Di * N * sizeof(float));
    i8ref_scan_m1(y, u, Di, su, dt, Di, sdt, bias, bc, bc + N, 2 * N, sb, sc, z, Di, sz, A, D, s1, T, Di, N);
    float *fu = mq_malloc((size_t)T * Di * 4), *fd = mq_malloc((size_t)T * Di * 4), *fz = mq_malloc((size_t)T * Di * 4);
    float *fb = mq_malloc((size_t)T * N * 4), *fc = mq_malloc((size_t)T * N * 4);
    for (int t = 0; t < T; t++) {
        for (int d = 0; d < Di; d++) {
            size_t i = (size_t)t * Di + d;
            fu[i] = qr_deq_i8(u[i], su);
            fd[i] = qr_fake_i8(qr_deq_i8(dt[i], sdt) + bias[d] - bias[d], sdt) + bias[d];
            fz[i] = qr_deq_i8(z[i], sz);
        }
        for (int n = 0; n < N; n++) {
            fb[(size_t)t * N + n] = qr_deq_i8(bc[(size_t)t * 2 * N + n], sb);
            fc[(size_t)t * N + n] = qr_deq_i8(bc[(size_t)t * 2 * N + N + n], sc);
        }
    }
    op_dt_softplus(fd, Di, fd, Di, NULL, T, Di, 0.0f, INFINITY);
    op_scan_m1(y2, Di, fu, Di, fd, Di, A, fb, N, fc, N, D, fz, Di, s2, T, Di, N);
    /* FP32 rounding only (the compilers may contract q*s + bias into an FMA in one and not the other) */
    double md = 0, my = 0;
    for (size_t i = 0; i < (size_t)T * Di; i++) md = fmax(md, fabs(y[i] - y2[i])), my = fmax(my, fabs(y2[i]));
    printf("    scan m1 reference vs simulation: max |dy| %.3g of max |y| %.3g\n", md, my);
    T_CHECK(md <= 1e-5 * my, "max |dy| %.3g, max |y| %.3g", md, my);
    free(u), free(dt), free(z), free(bc), free(A), free(D), free(bias), free(y), free(y2), free(s1), free(s2);
    free(fu), free(fd), free(fz), free(fb), free(fc);
}

int main(void) {
    T_RUN(test_linear_vs_sim);
    T_RUN(test_conv_vs_sim);
    T_RUN(test_scan_m1_vs_sim);
    return t_summary();
}
