/* The 4-bit weight GEMVs of Quamba2's W4A16 and W4A8 modes (ssm/w4_gemv.cu: the dp4a-layout kernels
 * for 1 to 8 rows, the W4A16 pass's tensor-core kernel for 1 to 16) against a double sum of the
 * dequantized weights (q_weight_quantize_i4 of random rows: codes -7..7, one scale per group) on
 * odd row counts, group sizes from 32 to a whole row, with and without bias, FP32 / FP16 / int8
 * outputs; the prefill's dequantization; quamba2 W4A16 proxies through the GPU pass. Tolerance:
 * FP32 reordering of the K products, 3e-5 of the sum of their magnitudes, plus FP16 rounding of the
 * output (2^-11 relative) where the output is FP16; int8 outputs: at most 1% of the codes one step
 * from the rule applied to the double reference (FP32 against double near a rounding tie; H200:
 * none). Skips without a GPU. */
#include "tests/test.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/qrule.h"
#include "core/st.h"
#include "ssm/backend.h"
#include "ssm/gpu_ops.h"
#include "ssm/qmodel.h"
#include "tests/test_data.h"
#include "tests/tstats.h"
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
        if (!(e <= w)) w = e == e ? e : INFINITY; /* a NaN (an unwritten output) stays the worst */
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
    /* W4A16: FP32 and FP16 outputs, the dp4a-layout GEMV (M <= 8) and the tensor-core one (M <= 16) */
    reference(x, &w, bias, M, ref, mag);
    for (int mma = 0; mma < 2; mma++) {
        if (mma ? M > 16 || K % 64 || group % 64 : M > 8) continue;
        for (int kind = GOP_OUT_F32; kind >= GOP_OUT_F16; kind--) {
            T_CHECK((mma ? gop_w4a16_mma : gop_w4a16_gemv)(y, kind, x, w.q, w.scale, group, bias, M, N, K, 0, NULL) == 0,
                    "%s", mq_errmsg());
            const double wr = worst(y, ref, mag, R, kind == GOP_OUT_F16 ? 1.0 / 2048 : 0);
            snprintf(what, sizeof what, "W4A16%s M=%d N=%d K=%d group=%d%s, %s out", mma ? " mma" : "", M, N, K, group,
                     bias ? " bias" : "", kind == GOP_OUT_F16 ? "FP16" : "FP32");
            printf("    %-56s worst %.3f of the tolerance\n", what, wr);
            T_CHECK(wr <= 1, "%s: worst %.3g", what, wr);
        }
    }
    /* W4A8: y = sum * sx + bias, FP32 out, then int8 codes against the rule applied to the reference;
     * the dp4a GEMV (M <= 8) and the tensor-core kernel (K and group multiples of 64, any M) */
    reference(xq, &w, bias, M, ref, mag);
    float *qs = mq_malloc(sizeof(float) * N);
    for (int n = 0; n < N; n++) qs[n] = 0.02f + 0.01f * (n % 5);
    for (int mma = 0; mma < 2; mma++) {
        if (mma ? K % 64 || group % 64 : M > 8) continue;
        int (*run)(float *, int8_t *, int, const int8_t *, float, const int8_t *, const float *, int, const float *,
                   const float *, int, int, int, int, double *) = mma ? gop_w4a8_mma : gop_w4a8_gemv;
        T_CHECK(run(y, NULL, GOP_OUT_F32, x8, sx, w.q, w.scale, group, bias, NULL, M, N, K, 0, NULL) == 0, "%s", mq_errmsg());
        double wr = worst(y, ref, mag, R, 0);
        snprintf(what, sizeof what, "W4A8%s M=%d N=%d K=%d group=%d%s, FP32 out", mma ? " mma" : "", M, N, K, group,
                 bias ? " bias" : "");
        printf("    %-56s worst %.3f of the tolerance\n", what, wr);
        T_CHECK(wr <= 1, "%s: worst %.3g", what, wr);
        T_CHECK(run(NULL, q8, GOP_OUT_I8, x8, sx, w.q, w.scale, group, bias, qs, M, N, K, 0, NULL) == 0, "%s", mq_errmsg());
        size_t off = 0, far = 0;
        for (size_t i = 0; i < R; i++) {
            const int d = abs((int)q8[i] - (int)qr_quant_i8((float)ref[i], qs[i % N]));
            off += d == 1, far += d > 1;
        }
        printf("    W4A8%s int8 out: %zu of %zu codes one step from the reference's, %zu further\n", mma ? " mma" : "", off,
               R, far);
        T_CHECK(far == 0 && off * 100 <= R, "int8 codes: %zu one step, %zu further", off, far);
    }
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
    /* the tensor-core W4A16 GEMV: its two token tiles, rows not a multiple of 16, a group per row */
    w4_case(16, 50, 2560, 128, 1);
    w4_case(11, 33, 384, 384, 0);
    w4_case(9, 77, 5120, 128, 1);
    w4_case(1, 16, 64, 64, 0);
    /* the tensor-core W4A8 kernel: one and two token tiles, launches of 32 rows, a group per row */
    w4_case(33, 50, 2560, 128, 1);
    w4_case(64, 100, 384, 384, 0);
    w4_case(100, 33, 5120, 128, 1);
    /* the tiled W4A8 kernel (65 rows and more): partial tiles of both, a group per row, many tiles, a
     * group of 16 steps (flushed to FP32 every 8) */
    w4_case(300, 300, 2560, 128, 1);
    w4_case(129, 130, 384, 384, 0);
    w4_case(1024, 64, 5120, 128, 0);
    w4_case(80, 70, 1024, 1024, 1);
    /* 33-64 rows: tiles of 64 rows of X with K split in slices of whole groups (the 33 and 64 rows
     * above too); the most slices, odd slices, one group a row (no split) */
    w4_case(64, 300, 5120, 128, 1);
    w4_case(48, 1000, 2560, 128, 0);
    w4_case(40, 77, 1024, 1024, 1);
}

/* The dequantization W4A16 prefill hands cuBLAS: q * s rounded to FP16, exactly (one FP32 product,
 * one rounding, on either side). */
static void test_w4_dequant(void) {
    NEED_GPU();
    const int N = 37, K = 384, group = 128; /* N not a multiple of 16: the padded rows are skipped */
    float *Wf = mq_malloc(sizeof(float) * N * K), *got = mq_malloc(sizeof(float) * N * K);
    for (size_t i = 0; i < (size_t)N * K; i++) Wf[i] = 0.05f * frand();
    q_weight w;
    q_weight_quantize_i4(Wf, N, K, group, &w);
    T_CHECK(gop_w4_dequant(got, w.q, w.scale, group, N, K) == 0, "%s", mq_errmsg());
    long bad = 0;
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            const float want = st_f16_to_f32(st_f32_to_f16((float)w.q[(size_t)n * K + k] * q_weight_scale_at(&w, n, k)));
            bad += got[(size_t)n * K + k] != want;
        }
    printf("    dequantized %d x %d (group %d): %ld of %d values differ from q * s in FP16\n", N, K, group, bad, N * K);
    T_CHECK(bad == 0, "%ld values differ", bad);
    q_weight_free(&w);
    free(Wf), free(got);
}

/* ||a - b|| / ||b|| */
static double rel_l2(const float *a, const float *b, size_t n) {
    double d2 = 0, b2 = 0;
    for (size_t i = 0; i < n; i++) d2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), b2 += (double)b[i] * b[i];
    return d2 == d2 ? sqrt(d2 / (b2 > 0 ? b2 : 1)) : INFINITY;
}

/* quamba2 W4A16 of a proxy on the GPU (be_open_qmodel's cuda kind: the FP16 pass with int4 in_proj /
 * out_proj, y rotated) against the CPU simulation of the same q_model (RTN weights: the pass runs any
 * codes alike). One window of 256 tokens of valid.txt: final hidden states, logits and mean NLL; on
 * the GPU, 3 sequences decoded step by step (the 4-bit GEMV) against their batched prefill (the
 * weights dequantized for cuBLAS). No activation is quantized in W4A16, so the differences are the
 * FP16 pass's roundings; bounds as tests/test_gpu_forward.c's FP16-vs-FP32 ones (1e-2, measured
 * ~1e-3 there) and, for decode vs prefill, 5e-3 (FP16 weights q * s in one route, exact ones in
 * the other). */
static void w4a16_model(int arch) {
    const char *dir = t_shared(arch == 1 ? "models/mamba1-proxy" : "models/mamba2-proxy");
    if (!dir) T_SKIP("proxy models not found under ../shared (or $MQ_SHARED)");
    size_t ncal = 0, nval = 0;
    int32_t *cal = t_fixture_ids("tests/fixtures/tok/calib.txt.ids.u16.gz", &ncal);
    int32_t *val = t_fixture_ids("tests/fixtures/tok/valid.txt.ids.u16.gz", &nval);
    if (!cal || !val || ncal < 1024 || nval < 1024) T_SKIP("token fixtures missing");
    const int failed0 = t_checks_failed;
    mq_model m;
    T_CHECK(ssm_load(dir, &m) == 0, "%s", mq_errmsg());
    if (t_checks_failed > failed0) return;
    tstats *ts = ts_collect(dir, &m, cal, 2, 256, (const double[]){99.95}, 1);
    q_stats st = ts_iface(ts);
    q_options o;
    q_options_default(&o);
    o.method = Q_QUAMBA2, o.wbits = 4, o.abits = 16, o.gptq = 0, o.cluster = 0, o.state_groups = 0;
    q_model qm;
    T_CHECK(q_quantize(&m, &st, &o, &qm) == 0, "%s", mq_errmsg());
    if (t_checks_failed > failed0) return;
    enum { T = 256, B = 12, TD = 16 }; /* 12 decode rows: both token tiles of the tensor-core GEMV */
    const int D = m.cfg.d_model, V = m.cfg.vocab_size;
    be *g = be_open_qmodel(&qm, BE_CUDA_INT8, B, T), *c = be_open_qmodel(&qm, BE_CPU_SIM, 1, T);
    T_CHECK(g && c, "open: %s", mq_errmsg());
    if (!g || !c) return;
    float *hg = mq_malloc(sizeof(float) * T * D), *hc = mq_malloc(sizeof(float) * T * D);
    float *lg = mq_malloc(sizeof(float) * 8 * V), *lc = mq_malloc(sizeof(float) * 8 * V);
    double sg = 0, sc = 0;
    T_CHECK(be_prefill(g, val, 1, T, NULL, NULL, hg) == 0 && be_logits(g, T - 8, 8, lg) == 0, "%s", mq_errmsg());
    T_CHECK(be_prefill(c, val, 1, T, NULL, NULL, hc) == 0 && be_logits(c, T - 8, 8, lc) == 0, "%s", mq_errmsg());
    T_CHECK(be_nll(g, val, 1, T, NULL, NULL, &sg) == 0 && be_nll(c, val, 1, T, NULL, NULL, &sc) == 0, "%s", mq_errmsg());
    const double eh = rel_l2(hg, hc, (size_t)T * D), el = rel_l2(lg, lc, (size_t)8 * V);
    printf("    mamba%d quamba2 W4A16, GPU vs CPU simulation: hidden rel L2 %.2e, logits[-8:] rel L2 %.2e, mean NLL "
           "%.5f vs %.5f\n", arch, eh, el, sg / (T - 1), sc / (T - 1));
    T_CHECK(eh < 1e-2 && el < 1e-2, "hidden %.3g, logits %.3g", eh, el);
    T_CHECK(fabs(sg - sc) / (T - 1) < 5e-3, "mean NLL %.5f vs %.5f", sg / (T - 1), sc / (T - 1));
    /* decode (B rows: the GEMV) against prefill (B x TD rows: dequantized for cuBLAS) */
    float *hp = mq_malloc(sizeof(float) * B * TD * D), *hd = mq_malloc(sizeof(float) * B * TD * D);
    float *row = mq_malloc(sizeof(float) * B * D);
    be_state *s = be_state_new(g, B);
    T_CHECK(s && be_prefill(g, val + 300, B, TD, NULL, NULL, hp) == 0, "%s", mq_errmsg());
    for (int t = 0; s && t < TD; t++) {
        int32_t tok[B];
        for (int b = 0; b < B; b++) tok[b] = val[300 + b * TD + t];
        T_CHECK(be_step(g, s, tok, NULL, row, NULL) == 0, "%s", mq_errmsg());
        for (int b = 0; b < B; b++) memcpy(hd + ((size_t)b * TD + t) * D, row + (size_t)b * D, sizeof(float) * D);
    }
    const double ed = rel_l2(hd, hp, (size_t)B * TD * D);
    printf("    mamba%d W4A16 decode (4-bit GEMV) vs prefill (dequantized, cuBLAS), %d x %d tokens: rel L2 %.2e\n",
           arch, B, TD, ed);
    T_CHECK(ed < 5e-3, "decode vs prefill %.3g", ed);
    be_state_free(s);
    be_free(g), be_free(c);
    free(hg), free(hc), free(lg), free(lc), free(hp), free(hd), free(row), free(cal), free(val);
    q_model_free(&qm);
    tstats_free(ts);
    ssm_free(&m);
}

static void test_w4a16_mamba1(void) {
    NEED_GPU();
    w4a16_model(1);
}
static void test_w4a16_mamba2(void) {
    NEED_GPU();
    w4a16_model(2);
}

int main(void) {
    T_RUN(test_w4_gemv);
    T_RUN(test_w4_dequant);
    T_RUN(test_w4a16_mamba1);
    T_RUN(test_w4a16_mamba2);
    return t_summary();
}
