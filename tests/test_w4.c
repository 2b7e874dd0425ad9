/* The 4-bit weight GEMVs of Quamba2's W4A16 and W4A8 modes (ssm/w4_gemv.cu) against a double sum of
 * the dequantized weights (q_weight_quantize_i4 of random rows: codes -7..7, one scale per group) on
 * odd row counts, 1 to 8 activation rows, group sizes from 32 to a whole row, with and without bias,
 * FP32 / FP16 / int8 outputs. Tolerance: FP32 reordering of the K products, 3e-5 of the sum of their
 * magnitudes, plus FP16 rounding of the output (2^-11 relative) where the output is FP16; int8
 * outputs: at most 1% of the codes one step from the rule applied to the double reference (FP32
 * against double near a rounding tie; H200: none). Skips without a GPU. */
#include "tests/test.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/qrule.h"
#include "core/st.h"
#include "ssm/gpu_ops.h"
#include "ssm/qmodel.h"
#include <stdint.h>

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static float frand(void) { /* uniform [-1, 1) */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (float)((g_rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* y[m][n] = sum_k x[m][k] q[n][k] s[n][k / g] (+ bias) in double, and the sum of the terms' magnitudes */
static void reference(const float *x, const q_weight *w, const float *bias, int M, double *y, double *mag) {
    const int N = w->rows, K = w->cols;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            double s = 0, a = 0;
            for (int k = 0; k < K; k++) {
                const double t = (double)x[(size_t)m * K + k] * w->q[(size_t)n * K + k] * q_weight_scale_at(w, n, k);
                s += t, a += fabs(t);
            }
            y[(size_t)m * N + n] = s + (bias ? bias[n] : 0);
            mag[(size_t)m * N + n] = a + (bias ? fabs(bias[n]) : 0);
        }
}

/* worst |got - ref| / (3e-5 mag + rel |ref| + 1e-6) over M x N; <= 1 passes */
static double worst(const float *got, const double *ref, const double *mag, size_t n, double rel) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - ref[i]) / (3e-5 * mag[i] + rel * fabs(ref[i]) + 1e-6);
        if (!(e <= w)) w = e;
    }
    return w;
}

static void w4_case(int M, int N, int K, int group, int with_bias) {
    float *Wf = mq_malloc(sizeof(float) * N * K), *bias = NULL;
    for (size_t i = 0; i < (size_t)N * K; i++) Wf[i] = 0.05f * frand() * (1 + (i % 97 == 0) * 6); /* a few outliers */
    if (with_bias) {
        bias = mq_malloc(sizeof(float) * N);
        for (int n = 0; n < N; n++) bias[n] = 0.3f * frand();
    }
    q_weight w;
    q_weight_quantize_i4(Wf, N, K, group, &w);
    const size_t R = (size_t)M * N;
    float *x = mq_malloc(sizeof(float) * M * K), *xq = mq_malloc(sizeof(float) * M * K), *y = mq_malloc(sizeof(float) * R);
    int8_t *x8 = mq_malloc((size_t)M * K), *q8 = mq_malloc(R);
    const float sx = 0.021f;
    for (size_t i = 0; i < (size_t)M * K; i++) {
        x[i] = st_f16_to_f32(st_f32_to_f16(2.f * frand())); /* W4A16 reads FP16 */
        x8[i] = (int8_t)lrintf(127.f * frand());
        xq[i] = x8[i] * sx;
    }
    double *ref = mq_malloc(sizeof(double) * R), *mag = mq_malloc(sizeof(double) * R);
    char what[160];
    /* W4A16: FP32 and FP16 outputs */
    reference(x, &w, bias, M, ref, mag);
    for (int kind = GOP_OUT_F32; kind >= GOP_OUT_F16; kind--) {
        T_CHECK(gop_w4a16_gemv(y, kind, x, w.q, w.scale, group, bias, M, N, K, 0, NULL) == 0, "%s", mq_errmsg());
        const double wr = worst(y, ref, mag, R, kind == GOP_OUT_F16 ? 1.0 / 2048 : 0);
        snprintf(what, sizeof what, "W4A16 M=%d N=%d K=%d group=%d%s, %s out", M, N, K, group, bias ? " bias" : "",
                 kind == GOP_OUT_F16 ? "FP16" : "FP32");
        printf("    %-52s worst %.3f of the tolerance\n", what, wr);
        T_CHECK(wr <= 1, "%s: worst %.3g", what, wr);
    }
    /* W4A8: y = sum * sx + bias, FP32 out, then int8 codes against the rule applied to the reference */
    reference(xq, &w, bias, M, ref, mag);
    T_CHECK(gop_w4a8_gemv(y, NULL, GOP_OUT_F32, x8, sx, w.q, w.scale, group, bias, NULL, M, N, K, 0, NULL) == 0, "%s", mq_errmsg());
    double wr = worst(y, ref, mag, R, 0);
    snprintf(what, sizeof what, "W4A8 M=%d N=%d K=%d group=%d%s, FP32 out", M, N, K, group, bias ? " bias" : "");
    printf("    %-52s worst %.3f of the tolerance\n", what, wr);
    T_CHECK(wr <= 1, "%s: worst %.3g", what, wr);
    float *qs = mq_malloc(sizeof(float) * N);
    for (int n = 0; n < N; n++) qs[n] = 0.02f + 0.01f * (n % 5);
    T_CHECK(gop_w4a8_gemv(NULL, q8, GOP_OUT_I8, x8, sx, w.q, w.scale, group, bias, qs, M, N, K, 0, NULL) == 0, "%s", mq_errmsg());
    size_t off = 0, far = 0;
    for (size_t i = 0; i < R; i++) {
        const int d = abs((int)q8[i] - (int)qr_quant_i8((float)ref[i], qs[i % N]));
        off += d == 1, far += d > 1;
    }
    printf("    W4A8 int8 out: %zu of %zu codes one step from the reference's, %zu further\n", off, R, far);
    T_CHECK(far == 0 && off * 100 <= R, "int8 codes: %zu one step, %zu further", off, far);
    q_weight_free(&w);
    free(Wf), free(bias), free(x), free(xq), free(y), free(x8), free(q8), free(ref), free(mag), free(qs);
}

static void test_w4_gemv(void) {
    NEED_GPU();
    w4_case(1, 77, 256, 128, 1);
    w4_case(3, 130, 384, 384, 0);  /* a group per row */
    w4_case(8, 64, 4096, 128, 1);  /* every row count the kernel has, at the widest */
    w4_case(5, 33, 2560, 64, 0);   /* mamba-2.8b's d_model */
    w4_case(2, 1000, 512, 32, 1);  /* the smallest group: a scale per chunk */
    w4_case(7, 19, 96, 32, 1);     /* fewer chunks than lanes */
}

int main(void) {
    T_RUN(test_w4_gemv);
    return t_summary();
}
