/* The int8 rule and weight quantization (quantize/q.h): round-trip bound, rounding of ties, clamps,
 * NaN, per-tensor and per-channel weight scales; the recipe table (names, which roles each
 * architecture quantizes, scale names, which statistics variant a recipe reads); the column
 * rotation and the lm_head fusion of the residual rotation against a dense H. */
#include <stdint.h>
#include "core/err.h"
#include "hadamard/had.h"
#include "quantize/q.h"
#include "tests/test.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {  /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 23))) - 1.0f;
}

/* |v - deq(q(v))| <= s/2 for v inside the clip range; outside it, v saturates to +-127 s. */
static void test_roundtrip_bound(void) {
    const float clips[] = {1e-5f, 3e-3f, 0.5f, 1.0f, 7.25f, 300.0f, 6.0e4f};
    for (size_t k = 0; k < sizeof clips / sizeof clips[0]; k++) {
        float clip = clips[k], s = qr_scale(clip);
        T_CHECK(s == clip / 127.0f, "scale of clip %g: %g", (double)clip, (double)s);
        double worst = 0;
        for (int i = 0; i < 200000; i++) {
            float v = clip * frand();
            if (i < 3) v = i == 0 ? clip : i == 1 ? -clip : 0.0f;
            int8_t q = qr_quant_i8(v, s);
            double err = fabs((double)v - (double)qr_deq_i8(q, s));
            if (err > worst) worst = err;
            T_CHECK(q != -128, "q out of range");
        }
        /* s/2 up to the FP32 rounding of v / s and of q * s (a few ulp of the clip) */
        T_CHECK(worst <= s / 2 * (1 + 1e-6) + 4e-7 * clip, "clip %g: max error %.9g > s/2 = %.9g", (double)clip, worst, (double)s / 2);
        /* saturation outside */
        T_CHECK(qr_quant_i8(2 * clip, s) == 127 && qr_quant_i8(-5 * clip, s) == -127, "saturation at clip %g", (double)clip);
        T_CHECK(qr_fake_i8(3 * clip, s) == 127 * s, "fake quant saturates");
    }
    float s = 1.0f;
    T_CHECK(qr_quant_i8(2.5f, s) == 2 && qr_quant_i8(3.5f, s) == 4 && qr_quant_i8(-2.5f, s) == -2 && qr_quant_i8(-0.5f, s) == 0,
            "round half to even");
    T_CHECK(qr_quant_i8(126.5f, s) == 126 && qr_quant_i8(127.5f, s) == 127 && qr_quant_i8(-127.5f, s) == -127, "ties near the clamp");
    T_CHECK(qr_quant_i8(NAN, s) == 0, "NaN -> 0");
    T_CHECK(qr_quant_i8(INFINITY, s) == 127 && qr_quant_i8(-INFINITY, s) == -127, "inf saturates");
    T_CHECK(qr_scale(0) == 1e-5f / 127 && qr_scale(NAN) == 1e-5f / 127, "clip floor");
    /* fake-quant of a strided view touches only the view */
    float x[3 * 5];
    for (int i = 0; i < 15; i++) x[i] = 0.3f * (float)i + 0.01f;
    q_fake_quant_rows(x, 3, 2, 5, 0.5f);
    T_CHECK(x[0] == 0.0f && x[1] == 0.5f && x[2] == 0.3f * 2 + 0.01f && x[5] == 1.5f && x[6] == 2.0f && x[7] == 0.3f * 7 + 0.01f,
            "strided fake quant");
}

static void test_weight_quant(void) {
    int R = 37, C = 53;
    float *W = mq_malloc((size_t)R * C * sizeof *W), *back = mq_malloc((size_t)R * C * sizeof *back);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) W[r * C + c] = (r == 5 ? 0.0f : (float)(r + 1) * 0.1f) * frand();
    W[3 * C + 7] = -4.0f;  /* the tensor's absmax, in row 3 */
    for (int g = 0; g < 2; g++) {
        q_weight w;
        q_weight_quantize(W, R, C, (q_granularity)g, &w);
        T_CHECK(w.nscale == (g ? R : 1), "nscale");
        if (!g) T_CHECK(w.scale[0] == 4.0f / 127, "tensor scale %g", (double)w.scale[0]);
        if (g) T_CHECK(w.scale[3] == 4.0f / 127 && w.scale[5] == 1e-5f / 127, "channel scales");
        T_CHECK(w.q[3 * C + 7] == -127, "absmax maps to -127");
        q_weight_dequantize(&w, back);
        for (int r = 0; r < R; r++) {
            float s = w.scale[g ? r : 0];
            for (int c = 0; c < C; c++)
                if (fabsf(W[r * C + c] - back[r * C + c]) > s / 2 * (1 + 1e-6f)) {
                    T_CHECK(0, "gran %d: element (%d, %d) error above s/2", g, r, c);
                    r = R;
                    break;
                }
        }
        for (int c = 0; c < C; c++) T_CHECK(w.q[5 * C + c] == 0, "zero row stays zero");
        q_weight_free(&w);
    }
    free(W);
    free(back);
}

static void test_methods(void) {
    const char *names[] = {"naive", "quamba", "percentile-only", "hadamard-only", "quamba-rot", "quamba2"};
    for (int i = 0; i < Q_NMETHODS; i++) {
        q_method m;
        T_CHECK(q_method_from_name(names[i], &m) == 0 && (int)m == i && !strcmp(q_method_name(m), names[i]), "%s", names[i]);
    }
    q_method m;
    T_CHECK(q_method_from_name("smoothquant", &m) != 0 && strstr(mq_errmsg(), "smoothquant"), "unknown method");
    T_CHECK(!q_method_uses_percentile(Q_NAIVE) && !q_method_uses_hadamard(Q_NAIVE) && !q_method_fuses_norm(Q_NAIVE), "naive");
    T_CHECK(q_method_uses_percentile(Q_QUAMBA) && q_method_uses_hadamard(Q_QUAMBA) && q_method_fuses_norm(Q_QUAMBA), "quamba");
    T_CHECK(q_method_uses_percentile(Q_PERCENTILE_ONLY) && !q_method_uses_hadamard(Q_PERCENTILE_ONLY), "percentile-only");
    T_CHECK(!q_method_uses_percentile(Q_HADAMARD_ONLY) && q_method_uses_hadamard(Q_HADAMARD_ONLY), "hadamard-only");
    T_CHECK(q_method_uses_percentile(Q_QUAMBA_ROT) && q_method_uses_hadamard(Q_QUAMBA_ROT) && q_method_fuses_norm(Q_QUAMBA_ROT) &&
            q_method_rotates_residual(Q_QUAMBA_ROT), "quamba-rot");
    for (int i = 0; i < Q_NMETHODS; i++)
        T_CHECK(q_method_rotates_residual((q_method)i) == (i == Q_QUAMBA_ROT), "only quamba-rot rotates the residual");
    T_CHECK(q_method_from_name("rot", &m) != 0 && strstr(mq_errmsg(), "quamba-rot"), "the error lists quamba-rot");
    mq_config c = {0};
    c.tie_embeddings = 1;
    T_CHECK(!q_head_untied(&c, Q_QUAMBA) && q_head_untied(&c, Q_QUAMBA_ROT), "tied source: untied by the rotation only");
    c.tie_embeddings = 0;
    T_CHECK(q_head_untied(&c, Q_NAIVE) && q_head_untied(&c, Q_QUAMBA_ROT), "untied source");
    q_granularity g;
    T_CHECK(q_gran_from_name("channel", &g) == 0 && g == Q_GRAN_CHANNEL && q_gran_from_name("row", &g) != 0, "granularity");
}

static void test_roles(void) {
    q_options o;
    q_options_default(&o);
    T_CHECK(o.method == Q_QUAMBA && o.percentile == 99.95 && o.weight_gran == Q_GRAN_TENSOR && !o.quantize_head, "defaults");
    mq_act_role m1[] = {MQ_ACT_IN_PROJ_IN, MQ_ACT_CONV_IN, MQ_ACT_Z, MQ_ACT_SSM_X, MQ_ACT_X_PROJ_OUT, MQ_ACT_DT, MQ_ACT_OUT_PROJ_IN};
    mq_act_role m2[] = {MQ_ACT_IN_PROJ_IN, MQ_ACT_CONV_IN, MQ_ACT_Z, MQ_ACT_SSM_X, MQ_ACT_DT, MQ_ACT_B, MQ_ACT_C, MQ_ACT_OUT_PROJ_IN};
    int n1 = 0, n2 = 0;
    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        n1 += q_role_quantized(MQ_MAMBA1, &o, (mq_act_role)r);
        n2 += q_role_quantized(MQ_MAMBA2, &o, (mq_act_role)r);
    }
    T_CHECK(n1 == 7 && n2 == 8, "role counts %d %d", n1, n2);
    for (size_t i = 0; i < 7; i++) T_CHECK(q_role_quantized(MQ_MAMBA1, &o, m1[i]), "m1 role %d", (int)m1[i]);
    for (size_t i = 0; i < 8; i++) T_CHECK(q_role_quantized(MQ_MAMBA2, &o, m2[i]), "m2 role %d", (int)m2[i]);
    T_CHECK(!q_role_quantized(MQ_MAMBA1, &o, MQ_ACT_SSM_OUT) && !q_role_quantized(MQ_MAMBA1, &o, MQ_ACT_SSM_STATE) &&
            !q_role_quantized(MQ_MAMBA1, &o, MQ_ACT_LM_HEAD_IN), "not quantized");
    o.quantize_head = 1;
    T_CHECK(q_role_quantized(MQ_MAMBA2, &o, MQ_ACT_LM_HEAD_IN), "head");
    char b[160];
    T_CHECK(!strcmp(q_scale_name(MQ_MAMBA1, 3, MQ_ACT_SSM_X, b, sizeof b), "backbone.layers.3.mixer.x_proj.input_scale"), "%s", b);
    T_CHECK(!strcmp(q_scale_name(MQ_MAMBA2, 0, MQ_ACT_SSM_X, b, sizeof b), "backbone.layers.0.mixer.x_scale"), "%s", b);
    T_CHECK(!strcmp(q_scale_name(MQ_MAMBA1, 11, MQ_ACT_OUT_PROJ_IN, b, sizeof b), "backbone.layers.11.mixer.out_proj.input_scale"), "%s", b);
    T_CHECK(!strcmp(q_scale_name(MQ_MAMBA1, -1, MQ_ACT_LM_HEAD_IN, b, sizeof b), "lm_head.input_scale"), "%s", b);
    /* statistics variants */
    o.method = Q_NAIVE;
    T_CHECK(q_role_variant(&o, MQ_ACT_IN_PROJ_IN) == Q_STAT_PLAIN && q_role_variant(&o, MQ_ACT_OUT_PROJ_IN) == Q_STAT_PLAIN, "naive variants");
    o.method = Q_HADAMARD_ONLY;
    T_CHECK(q_role_variant(&o, MQ_ACT_IN_PROJ_IN) == Q_STAT_PLAIN && q_role_variant(&o, MQ_ACT_OUT_PROJ_IN) == Q_STAT_FUSED, "had variants");
    o.method = Q_QUAMBA;
    T_CHECK(q_role_variant(&o, MQ_ACT_IN_PROJ_IN) == Q_STAT_FUSED && q_role_variant(&o, MQ_ACT_SSM_X) == Q_STAT_PLAIN &&
            q_role_variant(&o, MQ_ACT_LM_HEAD_IN) == Q_STAT_PLAIN, "quamba variants");
    o.method = Q_QUAMBA_ROT;
    T_CHECK(q_role_variant(&o, MQ_ACT_IN_PROJ_IN) == Q_STAT_ROTATED && q_role_variant(&o, MQ_ACT_LM_HEAD_IN) == Q_STAT_ROTATED &&
            q_role_variant(&o, MQ_ACT_OUT_PROJ_IN) == Q_STAT_FUSED && q_role_variant(&o, MQ_ACT_Z) == Q_STAT_PLAIN, "quamba-rot variants");
}

/* q_rotate_cols (W <- H W) and q_rotate_head (L <- (L diag(norm_f)) H) against the dense matrix */
static void test_rotation_steps(void) {
    int R = 24, C = 7;
    float *H = had_dense(R), *W = mq_malloc((size_t)R * C * sizeof *W), *W0 = mq_malloc((size_t)R * C * sizeof *W0);
    for (int i = 0; i < R * C; i++) W0[i] = W[i] = frand();
    T_CHECK(H && q_rotate_cols(W, R, C) == 0, "%s", mq_errmsg());
    double worst = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            double v = 0;
            for (int k = 0; k < R; k++) v += (double)H[r * R + k] * W0[k * C + c];
            worst = fmax(worst, fabs(v - W[r * C + c]));
        }
    T_CHECK(worst < 1e-6, "H W: max error %.3g", worst);
    /* lm_head: V rows of width R */
    int V = 5;
    float *L = mq_malloc((size_t)V * R * sizeof *L), *L0 = mq_malloc((size_t)V * R * sizeof *L0), nf[24];
    for (int i = 0; i < V * R; i++) L0[i] = L[i] = frand();
    for (int k = 0; k < R; k++) nf[k] = 0.5f + 0.1f * (float)k;
    T_CHECK(q_rotate_head(L, nf, V, R) == 0, "%s", mq_errmsg());
    worst = 0;
    for (int v = 0; v < V; v++)
        for (int j = 0; j < R; j++) {
            double x = 0;
            for (int k = 0; k < R; k++) x += (double)L0[v * R + k] * nf[k] * H[k * R + j];
            worst = fmax(worst, fabs(x - L[v * R + j]));
        }
    T_CHECK(worst < 1e-6, "(L diag(norm_f)) H: max error %.3g", worst);
    T_CHECK(q_rotate_cols(W, 36, 4) != 0 && strstr(mq_errmsg(), "36"), "unsupported order accepted");
    free(H), free(W), free(W0), free(L), free(L0);
}

int main(void) {
    T_RUN(test_roundtrip_bound);
    T_RUN(test_weight_quant);
    T_RUN(test_methods);
    T_RUN(test_roles);
    T_RUN(test_rotation_steps);
    return t_summary();
}
