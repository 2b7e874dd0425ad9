/* Fusions and simulated quantization on the proxy models (../shared/models):
 *  - the Hadamard fusion (out_proj W H^T, y rotated online) and the RMSNorm fusion leave the FP32
 *    forward unchanged (relative error of the final hidden states < 1e-5, all layers in the path);
 *  - so do all of quamba-rot's fusions together (norm, y, residual stream rotated: embedding,
 *    in_proj, out_proj, norm_f into the untied lm_head): logits within 1e-5, and the final hidden
 *    state is the original one rotated;
 *  - simulating an artifact read back from disk gives bit-identical NLL to simulating the q_model
 *    it was written from;
 *  - quamba's simulated perplexity is finite and clearly below naive's (a few windows).
 * Statistics come from the test's own observers over calibration tokens (absmax and exact
 * percentiles per sample, EMA-aggregated like calib), so this file needs no stats file. Token ids
 * come from the tokenizer fixtures (HF ids of ../shared/datasets files). */
#include <stdint.h>
#include "core/err.h"
#include "export/art.h"
#include "hadamard/had.h"
#include "quantize/q.h"
#include "ssm/model.h"
#include "tests/test.h"
#include "tests/test_data.h"
#include "tests/tstats.h"

#define CAL_SAMPLES 4
#define CAL_LEN 256
#define EVAL_WINDOWS 2
#define EVAL_LEN 512
/* quamba-rot's simulated ppl within this relative distance of FP32 (measured: see sim_compare's line) */
#define ROT_TOL 0.01


static double rel(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / den);
}

static const char *proxy(int arch) { return t_shared(arch == 1 ? "models/mamba1-proxy" : "models/mamba2-proxy"); }

static int32_t *g_cal, *g_val;
static size_t g_ncal, g_nval;
static int load_ids(void) {
    if (!g_cal) g_cal = t_fixture_ids("tests/fixtures/tok/calib.txt.ids.u16.gz", &g_ncal);
    if (!g_val) g_val = t_fixture_ids("tests/fixtures/tok/valid.txt.ids.u16.gz", &g_nval);
    return g_cal && g_val && g_ncal >= CAL_SAMPLES * CAL_LEN && g_nval >= EVAL_WINDOWS * EVAL_LEN;
}

/* ---- fusions ---- */

static void fusion(int arch, int which) {
    const char *dir = proxy(arch);
    if (!dir) T_SKIP("../shared/models not found");
    if (!load_ids()) T_SKIP("token fixtures missing");
    mq_model m, f;
    T_CHECK(ssm_load(dir, &m) == 0, "%s", mq_errmsg());
    T_CHECK(ssm_load(dir, &f) == 0, "%s", mq_errmsg());
    int T = 128, D = m.cfg.d_model;
    float *h0 = mq_malloc((size_t)T * D * sizeof(float)), *h1 = mq_malloc((size_t)T * D * sizeof(float));
    T_CHECK(ssm_forward(&m, g_val, T, NULL, h0) == 0, "%s", mq_errmsg());
    q_rotate_ctx rc = {NULL};
    mq_hooks rot = q_rotate_hooks(&rc);
    if (which == 0) T_CHECK(q_fuse_hadamard(&f) == 0, "%s", mq_errmsg());
    else T_CHECK(q_fuse_norm(&f) == 0, "%s", mq_errmsg());
    /* the fused model is a different function without the online half */
    T_CHECK(ssm_forward(&f, g_val, T, which == 0 ? &rot : NULL, h1) == 0, "%s", mq_errmsg());
    double e = rel(h1, h0, (size_t)T * D);
    printf("    %s %s fusion: relative error %.3g\n", arch == 1 ? "mamba1" : "mamba2", which == 0 ? "Hadamard" : "RMSNorm", e);
    T_CHECK(e < 1e-5, "relative error %.3g >= 1e-5", e);
    if (which == 0) {
        /* and without the online rotation it is not the same model (the rotation matters) */
        T_CHECK(ssm_forward(&f, g_val, T, NULL, h1) == 0, "%s", mq_errmsg());
        T_CHECK(rel(h1, h0, (size_t)T * D) > 1e-2, "out_proj fusion without rotation should change the output");
    }
    free(h0);
    free(h1);
    ssm_free(&m);
    ssm_free(&f);
}

/* quamba-rot's FP32 model: an untied copy with every fusion, y rotated online */
static void fusion_residual(int arch) {
    const char *dir = proxy(arch);
    if (!dir) T_SKIP("../shared/models not found");
    if (!load_ids()) T_SKIP("token fixtures missing");
    mq_model m, f;
    T_CHECK(ssm_load(dir, &m) == 0, "%s", mq_errmsg());
    T_CHECK(q_model_copy(&m, &f, 1) == 0, "%s", mq_errmsg());
    T_CHECK(f.lm_head != f.embed && m.lm_head == m.embed && !f.cfg.tie_embeddings, "untied copy");
    T_CHECK(q_fuse_hadamard(&f) == 0 && q_fuse_residual(&f) == 0, "%s", mq_errmsg());
    int T = 128, D = m.cfg.d_model, V = m.cfg.vocab_size;
    float *h0 = mq_malloc((size_t)T * D * sizeof(float)), *h1 = mq_malloc((size_t)T * D * sizeof(float));
    float *l0 = mq_malloc((size_t)T * V * sizeof(float)), *l1 = mq_malloc((size_t)T * V * sizeof(float));
    q_rotate_ctx rc = {NULL};
    mq_hooks rot = q_rotate_hooks(&rc);
    T_CHECK(ssm_forward(&m, g_val, T, NULL, h0) == 0, "%s", mq_errmsg());
    T_CHECK(ssm_forward(&f, g_val, T, &rot, h1) == 0, "%s", mq_errmsg());
    ssm_logits(&m, h0, T, l0);
    ssm_logits(&f, h1, T, l1);
    double el = rel(l1, l0, (size_t)T * V);
    /* the hidden state comes out as (x / rms(x)) H: rotated back and weighted by norm_f it is the original */
    T_CHECK(had_transform_f32(h1, T, D) == 0, "%s", mq_errmsg());
    for (int t = 0; t < T; t++)
        for (int k = 0; k < D; k++) h1[(size_t)t * D + k] *= m.norm_f[k];
    double eh = rel(h1, h0, (size_t)T * D);
    printf("    %s residual rotation (+ norm and Hadamard fusions): logits relative error %.3g, hidden %.3g\n",
           arch == 1 ? "mamba1" : "mamba2", el, eh);
    T_CHECK(el < 1e-5 && eh < 1e-5, "relative error logits %.3g, hidden %.3g (>= 1e-5)", el, eh);
    /* the source's tied model must refuse the rotation (its lm_head is its embedding) */
    mq_model t;
    T_CHECK(q_model_copy(&m, &t, 0) == 0 && q_fuse_residual(&t) != 0 && strstr(mq_errmsg(), "lm_head"), "tied model rotated: %s",
            mq_errmsg());
    ssm_free(&t);
    free(h0), free(h1), free(l0), free(l1);
    ssm_free(&m);
    ssm_free(&f);
}

static void test_fuse_residual_m1(void) { fusion_residual(1); }
static void test_fuse_residual_m2(void) { fusion_residual(2); }

static void test_fuse_hadamard_m1(void) { fusion(1, 0); }
static void test_fuse_hadamard_m2(void) { fusion(2, 0); }
static void test_fuse_norm_m1(void) { fusion(1, 1); }
static void test_fuse_norm_m2(void) { fusion(2, 1); }

/* ---- statistics from the test's own observers (tests/tstats.h) ---- */

static tstats *collect(int arch, mq_model *m) {
    static const double pct[] = {99.9, 99.95, 99.99};
    return ts_collect(proxy(arch), m, g_cal, CAL_SAMPLES, CAL_LEN, pct, 3);
}

static double sim_ppl(const mq_model *m, const mq_hooks *h) {
    double tot = 0;
    for (int w = 0; w < EVAL_WINDOWS; w++) tot += ssm_nll(m, g_val + (size_t)w * EVAL_LEN, EVAL_LEN, h, NULL);
    return exp(tot / (EVAL_WINDOWS * (EVAL_LEN - 1.0)));
}

static void sim_compare(int arch) {
    static char dir[4096];   /* t_shared's buffer is reused by the next call */
    if (!proxy(arch)) T_SKIP("../shared/models not found");
    snprintf(dir, sizeof dir, "%s", proxy(arch));
    if (!load_ids()) T_SKIP("token fixtures missing");
    mq_model m;
    T_CHECK(ssm_load(dir, &m) == 0, "%s", mq_errmsg());
    tstats *ts = collect(arch, &m);
    q_stats st = ts_iface(ts);
    double fp = sim_ppl(&m, NULL), ppl[Q_NMETHODS] = {0};
    /* CI-sized: naive, quamba and quamba-rot (the ablations are in docs/results.md) */
    for (int meth = 0; meth < Q_NMETHODS; meth++) {
        if (meth != Q_NAIVE && meth != Q_QUAMBA && meth != Q_QUAMBA_ROT) continue;
        q_options o;
        q_options_default(&o);
        o.method = (q_method)meth;
        o.percentile = 99.95;
        q_model qm;
        T_CHECK(q_quantize(&m, &st, &o, &qm) == 0, "%s", mq_errmsg());
        mq_model sm;
        q_sim_build(&qm, &sm);
        q_sim_ctx sc;
        mq_hooks h = q_sim_hooks(&sc, &qm);
        ppl[meth] = sim_ppl(&sm, &h);
        if (meth != Q_NAIVE) {
            /* written, read back and simulated again: bit-identical */
            char out[512];
            snprintf(out, sizeof out, "%s/art_m%d_%s", t_tmpdir(), arch, q_method_name(o.method));
            art_provenance pv = {0};
            char cj[4200];
            if ((size_t)snprintf(cj, sizeof cj, "%s/config.json", dir) >= sizeof cj) cj[0] = 0;
            const char *tj = t_shared("models/tokenizer.json");
            T_CHECK(tj && art_write(out, &qm, &pv, cj, tj, 1) == 0, "%s", mq_errmsg());
            art_artifact a;
            T_CHECK(art_open(out, &a) == 0, "%s", mq_errmsg());
            mq_model sm2;
            q_sim_build(&a.qm, &sm2);
            q_sim_ctx sc2;
            mq_hooks h2 = q_sim_hooks(&sc2, &a.qm);
            double n1 = ssm_nll(&sm, g_val, 64, &h, NULL), n2 = ssm_nll(&sm2, g_val, 64, &h2, NULL);
            T_CHECK(n1 == n2, "%s: artifact simulation %.17g != in-memory %.17g", q_method_name(o.method), n2, n1);
            if (meth == Q_QUAMBA_ROT) {
                /* the residual rotation unties the proxies' tied lm_head: its own tensor, read back as such */
                T_CHECK(qm.resid_n == m.cfg.d_model && a.qm.resid_n == m.cfg.d_model && a.qm.lm_head && sm2.lm_head != sm2.embed &&
                            !sm2.cfg.tie_embeddings && a.qm.cfg.tie_embeddings == m.cfg.tie_embeddings,
                        "quamba-rot artifact: order %d, lm_head %p", a.qm.resid_n, (void *)a.qm.lm_head);
                for (int k = 0; k < m.cfg.d_model; k++) T_CHECK(a.qm.norm_f[k] == 1.0f, "norm_f[%d] = %g", k, (double)a.qm.norm_f[k]);
            }
            ssm_free(&sm2);
            art_close(&a);
        }
        ssm_free(&sm);
        q_model_free(&qm);
    }
    printf("    %s ppl (%d x %d tokens): fp32 %.3f naive %.3f quamba %.3f quamba-rot %.3f\n", arch == 1 ? "mamba1" : "mamba2",
           EVAL_WINDOWS, EVAL_LEN, fp, ppl[Q_NAIVE], ppl[Q_QUAMBA], ppl[Q_QUAMBA_ROT]);
    T_CHECK(isfinite(ppl[Q_NAIVE]) && isfinite(ppl[Q_QUAMBA]) && ppl[Q_QUAMBA] > 1, "ppl not finite");
    /* clearly below: quamba's loss against FP32 is less than half of naive's */
    T_CHECK(ppl[Q_QUAMBA] < ppl[Q_NAIVE] && ppl[Q_QUAMBA] - fp < 0.5 * (ppl[Q_NAIVE] - fp),
            "quamba %.4f is not clearly below naive %.4f (fp32 %.4f)", ppl[Q_QUAMBA], ppl[Q_NAIVE], fp);
    T_CHECK(ppl[Q_QUAMBA] > fp * 0.99, "quamba %.4f below fp32 %.4f by more than noise", ppl[Q_QUAMBA], fp);
    T_CHECK(isfinite(ppl[Q_QUAMBA_ROT]) && fabs(ppl[Q_QUAMBA_ROT] / fp - 1) < ROT_TOL, "quamba-rot %.4f vs fp32 %.4f: beyond %g",
            ppl[Q_QUAMBA_ROT], fp, ROT_TOL);
    tstats_free(ts);
    ssm_free(&m);
}

static void test_sim_m1(void) { sim_compare(1); }
static void test_sim_m2(void) { sim_compare(2); }

int main(void) {
    T_RUN(test_fuse_residual_m1);
    T_RUN(test_fuse_residual_m2);
    T_RUN(test_fuse_hadamard_m1);
    T_RUN(test_fuse_hadamard_m2);
    T_RUN(test_fuse_norm_m1);
    T_RUN(test_fuse_norm_m2);
    T_RUN(test_sim_m1);
    T_RUN(test_sim_m2);
    return t_summary();
}
