/* GPU calibration (calib/gpu.h). Skips without a GPU (and the proxy parts without ../shared).
 *  - exactness: on the same data the GPU statistics equal obs_tensor_observe's bit for bit (per-sample
 *    percentiles, absmax, per-head / per-group maxima, log histogram), for FP16 data (16-bit path),
 *    FP32 data and FP16 data through the two-level path, composite tensors in column parts, odd and
 *    unaligned shapes, ties, zeros, subnormals, values on histogram edges, 1 to 32 percentiles.
 *  - GPU vs CPU calibration on both proxies (4 x 256 tokens): the same names, shapes and metadata
 *    keys; absmax, percentiles, EMA percentiles and group maxima within
 *        |gpu - cpu| <= REL_TOL * |cpu| + ABS_TOL * absmax(cpu, same tensor)
 *    (the FP16 forward's activations differ from the FP32 reference by FP16 rounding of weights
 *    and activations carried through the layers: test_gpu_forward allows 1e-2 relative on the
 *    hidden states); histogram totals equal, and the log histograms close (L1 distance of the
 *    normalized histograms < 0.5, mean bin within 1 bin) except for Mamba1's dt_proj:output: its GPU
 *    values are FP16(dt + bias) - bias, so their error is absolute (half an FP16 ulp of |dt + bias|, up
 *    to 4e-3 with the proxy's biases of -7 .. -2.3) and the log bins of values near zero differ by design.
 *  - transforms: a GPU transform (x2) on out_proj:input gives exactly twice had:input's statistics;
 *    a transform without a GPU version is refused on cuda, and auto then runs on the CPU. */
#define MQ_WANT_CUDA_CHECK
#include "tests/test.h"
#include "tests/test_data.h"
#include "calib/calib.h"
#include "calib/gpu.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/st.h"
#include "ssm/backend.h"
#include <stdint.h>

#define REL_TOL 2e-2
#define ABS_TOL 1e-3
#define MEDIAN_TOL 2e-3  /* the median relative deviation over all values of a kind */

/* ---------------------------------------------------------------- exactness */

static uint64_t rng_s = 0x1234567;
static double urand(void) {
    rng_s ^= rng_s << 13, rng_s ^= rng_s >> 7, rng_s ^= rng_s << 17;
    return (rng_s >> 11) * 0x1p-53;
}
static float round16(float v) { return (float)(_Float16)v; }

/* kind 0: signed log-uniform over 2^-26..2^14 with zeros, a tie pool, FP16 subnormals and values
 * on (and just below) log-histogram edges; kind 1: ties only (5 values and zeros). */
static void fill(float *x, size_t n, int kind) {
    static const float pool[5] = {0.5f, 1.25f, -3.0f, 1e-3f, 7.0f};
    for (size_t i = 0; i < n; i++) {
        double u = urand();
        float v;
        if (kind == 1) v = u < 0.3 ? 0.0f : pool[(int)(u * 1000) % 5];
        else if (u < 0.04) v = 0.0f;
        else if (u < 0.12) v = pool[(int)(u * 1000) % 5];
        else if (u < 0.16) v = (float)(urand() * 6e-5);                     /* FP16 subnormals */
        else if (u < 0.22) {
            float e = obs_hist_edge(1 + (int)(urand() * (OBS_HIST_BINS - 2)));
            v = urand() < 0.5 ? e : nextafterf(e, 0.0f);
        } else v = (float)exp2(-26 + 40 * urand());
        x[i] = urand() < 0.5 ? -v : v;
    }
}

/* One case: the GPU selftest against obs_tensor_observe on the same (rounded) values. */
static void exact_case(const char *label, int mode, int B, int rows, int cols, int nparts, const double *pct, int nq,
                       int ngroup, int gsize, int gaxis, int kind) {
    size_t n = (size_t)B * rows * cols;
    float *x = malloc(n * sizeof *x);
    fill(x, n, kind);
    if (mode != 1)
        for (size_t i = 0; i < n; i++) x[i] = round16(x[i]);
    if (mode == 1)  /* FP32 values between FP16 ones, and ties between neighbours in FP32 */
        for (size_t i = 0; i < n; i += 7) x[i] = nextafterf(x[i], 1e30f);
    float *gp = malloc((size_t)B * nq * sizeof *gp), *ga = malloc(B * sizeof *ga);
    float *gg = malloc((size_t)B * (ngroup ? ngroup : 1) * sizeof *gg);
    int64_t gh[OBS_HIST_BINS], ch[OBS_HIST_BINS];
    memset(ch, 0, sizeof ch);
    int rc = calib_gpu_selftest(x, mode, B, rows, cols, nparts, pct, nq, ngroup, gsize, gaxis, gp, ga, gg, gh);
    T_CHECK(rc == 0, "%s: %s", label, mq_errmsg());
    int bad = 0;
    for (int b = 0; b < B && rc == 0; b++) {
        obs_tensor t;
        obs_tensor_init(&t, label, 0, pct, nq);
        if (ngroup) obs_tensor_set_groups(&t, ngroup, gsize, gaxis, "group");
        T_CHECK(obs_tensor_observe(&t, x + (size_t)b * rows * cols, rows, cols, cols) == 0, "%s", mq_errmsg());
        for (int q = 0; q < nq; q++)
            if (memcmp(&t.plast[q], &gp[b * nq + q], 4) && bad++ < 5)
                printf("    %s sample %d p%g: gpu %.9g cpu %.9g\n", label, b, pct[q], gp[b * nq + q], t.plast[q]);
        if (t.absmax != ga[b] && bad++ < 5) printf("    %s sample %d absmax: gpu %.9g cpu %.9g\n", label, b, ga[b], t.absmax);
        for (int g = 0; g < ngroup; g++)
            if (t.gabsmax[g] != gg[b * ngroup + g] && bad++ < 5)
                printf("    %s sample %d group %d: gpu %.9g cpu %.9g\n", label, b, g, gg[b * ngroup + g], t.gabsmax[g]);
        for (int k = 0; k < OBS_HIST_BINS; k++) ch[k] += t.hist[k];
        obs_tensor_free(&t);
    }
    int hbad = 0;
    for (int k = 0; k < OBS_HIST_BINS && rc == 0; k++)
        if (ch[k] != gh[k] && hbad++ < 3) printf("    %s hist bin %d: gpu %lld cpu %lld\n", label, k, (long long)gh[k], (long long)ch[k]);
    T_CHECK(bad == 0 && hbad == 0, "%s: %d statistics and %d histogram bins differ from obs_tensor_observe", label, bad, hbad);
    free(x), free(gp), free(ga), free(gg);
}

static void test_exact(void) {
    NEED_GPU();
    static const double p7[] = {99, 99.9, 99.95, 99.99, 99.995, 99.999, 100};
    static const double p11[] = {0, 25, 50, 75.5, 99, 99.9, 99.95, 99.99, 99.995, 99.999, 100};
    double p32[32];
    for (int i = 0; i < 32; i++) p32[i] = 100.0 * i / 31 - (i % 3 == 1 ? 0.37 : 0);
    p32[31] = 100;
    static const struct {
        const char *label;
        int mode, B, rows, cols, parts, pct, ngroup, gsize, gaxis, kind; /* pct: 7, 11 or 32 percentiles */
    } cases[] = {
        /* label             mode B  rows  cols parts pct ngroup gsize gaxis kind */
        {"f16 plain",          0, 3,  300,  190, 1, 11, 0,  0, 0, 0},
        {"f16 3 parts+heads",  0, 2,  129,  384, 3,  7, 6, 64, 1, 0},
        {"f16 odd/unaligned",  0, 2,   77,   77, 2,  7, 7, 11, 1, 0},
        {"f16 ties",           0, 2,  200,   64, 1, 11, 4, 16, 1, 1},
        {"f16 large",          0, 2, 1024, 2560, 1,  7, 0,  0, 0, 0},
        {"f16 one value",      0, 1,    1,    1, 1, 11, 0,  0, 0, 0},
        {"f32 state rows",     1, 3,  384,   64, 1,  7, 6, 64, 0, 0},
        {"f32 2 parts 32 pct", 1, 2,  512,  384, 2, 32, 0,  0, 0, 0},
        {"f32 ties",           1, 2,  300,   33, 1, 11, 3, 11, 1, 1},
        {"f32 large",          1, 2, 2048, 1280, 1,  7, 0,  0, 0, 0},
        {"f32 one value",      1, 1,    1,    1, 1,  7, 0,  0, 0, 0},
        {"f16 two-level",      2, 2,  256,  100, 1, 11, 0,  0, 0, 0},
        {"f16 two-level parts", 2, 2,   96,   90, 3, 32, 5, 18, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const double *pct = cases[i].pct == 7 ? p7 : cases[i].pct == 11 ? p11 : p32;
        exact_case(cases[i].label, cases[i].mode, cases[i].B, cases[i].rows, cases[i].cols, cases[i].parts, pct,
                   cases[i].pct, cases[i].ngroup, cases[i].gsize, cases[i].gaxis, cases[i].kind);
    }
}

/* ---------------------------------------------------------------- GPU vs CPU on the proxies */

enum { SAMPLES = 4, SEQLEN = 256 };


static int proxy_paths(const char *model_rel, char *model, char *tokp) {
    const char *p = t_shared(model_rel);
    if (!p) return 0;
    snprintf(model, 4096, "%s", p);
    if (!(p = t_shared("models/tokenizer.json"))) return 0;
    snprintf(tokp, 4096, "%s", p);
    return t_small_calib() != NULL;
}

static void base_options(calib_options *o, const char *model, const char *tokp, const char *out) {
    calib_defaults(o);
    o->model_dir = model;
    o->data_path = t_small_calib();
    o->tokenizer_path = tokp;
    o->out_path = out;
    o->samples = SAMPLES;
    o->seqlen = SEQLEN;
    o->quiet = 1;
    o->tool = "test_calib_gpu";
}

static float f32_at(const st_tensor *t, int i) {
    float v;
    memcpy(&v, (const char *)t->data + 4 * (size_t)i, 4);
    return v;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const char *kind;
    double *rel;       /* relative deviations of all values of this kind */
    int n, cap, nbad;
    double worst;      /* largest |gpu-cpu| / (REL_TOL |cpu| + ABS_TOL scale): <= 1 passes */
    char worst_name[200];
    double worst_g, worst_c;
} devs;

static void dev_add(devs *d, const char *name, double g, double c, double scale) {
    if (d->n == d->cap) d->rel = realloc(d->rel, (d->cap = d->cap ? 2 * d->cap : 1024) * sizeof *d->rel);
    double diff = fabs(g - c);
    d->rel[d->n++] = diff / (fabs(c) > 1e-30 ? fabs(c) : 1e-30);
    double ratio = diff / (REL_TOL * fabs(c) + ABS_TOL * scale + 1e-30);
    if (!(ratio <= 1)) d->nbad++;
    if (!(ratio <= d->worst)) {
        d->worst = isnan(ratio) ? INFINITY : ratio;
        snprintf(d->worst_name, sizeof d->worst_name, "%s", name);
        d->worst_g = g, d->worst_c = c;
    }
}

static void dev_report(devs *d, const char *model) {
    if (!d->n) return;
    qsort(d->rel, d->n, sizeof *d->rel, cmp_double);
    double med = d->rel[d->n / 2], p99 = d->rel[(size_t)(0.99 * (d->n - 1))], mx = d->rel[d->n - 1];
    printf("    %s %-16s n=%-5d rel dev: median %.2e, p99 %.2e, max %.2e; worst vs tolerance %.2f (%s: gpu %.6g cpu %.6g)\n",
           model, d->kind, d->n, med, p99, mx, d->worst, d->worst_name, d->worst_g, d->worst_c);
    T_CHECK(d->nbad == 0, "%s %s: %d values outside |gpu-cpu| <= %g |cpu| + %g absmax", model, d->kind, d->nbad, REL_TOL, ABS_TOL);
    T_CHECK(med <= MEDIAN_TOL, "%s %s: median relative deviation %.3g > %g", model, d->kind, med, MEDIAN_TOL);
    free(d->rel);
}

static void gpu_vs_cpu(const char *model_rel, int batch) {
    NEED_GPU();
    char model[4096], tokp[4096], out_c[512], out_g[512];
    if (!proxy_paths(model_rel, model, tokp)) T_SKIP("%s, the tokenizer or datasets/calib.txt not in ../shared", model_rel);
    const char *tag = strstr(model_rel, "mamba2") ? "m2" : "m1";
    snprintf(out_c, sizeof out_c, "%s/cpu_%s.safetensors", t_tmpdir(), tag);
    snprintf(out_g, sizeof out_g, "%s/gpu_%s.safetensors", t_tmpdir(), tag);
    calib_options o;
    calib_result rc_, rg;
    base_options(&o, model, tokp, out_c);
    o.device = "cpu";
    T_CHECK(calib_run(&o, &rc_) == 0, "cpu: %s", mq_errmsg());
    base_options(&o, model, tokp, out_g);
    o.device = "cuda";
    o.batch = batch;
    T_CHECK(calib_run(&o, &rg) == 0, "cuda: %s", mq_errmsg());
    T_CHECK(rg.device && !strcmp(rg.device, "cuda") && rg.batch == batch, "ran on %s, batch %d", rg.device, rg.batch);
    calib_stats *sc = calib_stats_open(out_c, model), *sg = calib_stats_open(out_g, model);
    T_CHECK(sc && sg, "%s", mq_errmsg());
    if (!sc || !sg) { calib_stats_close(sc); calib_stats_close(sg); return; }
    st_file *fc = st_open(out_c), *fg = st_open(out_g);
    T_CHECK(fc && fg, "%s", mq_errmsg());
    /* the same tensors, dtypes and shapes (the per-channel absmax of x, quamba2's clustering, too) */
    int shape_bad = 0, nchan = 0;
    for (int i = 0; i < st_count(fc); i++) nchan += calib_has_suffix(st_get(fc, i)->name, ".absmax_per_channel");
    T_CHECK(st_count(fc) == st_count(fg), "cpu file %d tensors, gpu file %d", st_count(fc), st_count(fg));
    T_CHECK(nchan > 0, "no per-channel absmax in the CPU file");
    for (int i = 0; i < st_count(fc); i++) {
        const st_tensor *a = st_get(fc, i), *b = st_find(fg, a->name);
        if (!b || b->dtype != a->dtype || b->ndim != a->ndim || memcmp(a->shape, b->shape, sizeof a->shape)) {
            if (shape_bad++ < 3) printf("    %s: missing or shaped differently in the GPU file\n", a->name);
        }
    }
    T_CHECK(shape_bad == 0, "%d tensors differ in name, dtype or shape", shape_bad);
    /* metadata: the same except where the device shows */
    static const char *same_keys[] = {"format", "format_version", "model.arch", "model.config", "model.weights_sha256",
                                      "data.sha256", "data.tokens", "tokenizer.sha256", "calib.samples", "calib.seqlen",
                                      "calib.percentiles", "calib.seed", "calib.windows", "calib.ema_alpha", "calib.hist",
                                      "calib.percentile_def", "calib.transforms", NULL};
    for (const char **k = same_keys; *k; k++) {
        const char *a = calib_stats_meta(sc, *k), *b = calib_stats_meta(sg, *k);
        T_CHECK(a && b && !strcmp(a, b), "metadata %s: cpu '%s', gpu '%s'", *k, a ? a : "(none)", b ? b : "(none)");
    }
    T_CHECK(!strcmp(calib_stats_meta(sg, "calib.device"), "cuda") && !strcmp(calib_stats_meta(sc, "calib.device"), "cpu"),
            "calib.device");
    T_CHECK(strcmp(calib_stats_meta(sg, "calib.gpu"), "none") != 0, "calib.gpu names the GPU");
    char b_s[16];
    snprintf(b_s, sizeof b_s, "%d", batch);
    T_CHECK(!strcmp(calib_stats_meta(sg, "calib.batch"), b_s), "calib.batch %s", calib_stats_meta(sg, "calib.batch"));

    devs d_abs = {.kind = "absmax"}, d_pct = {.kind = "percentiles"}, d_ema = {.kind = "ema_percentiles"},
         d_grp = {.kind = "per-head/group"}, d_chan = {.kind = "per-channel"};
    int hist_bad = 0;
    double worst_l1 = 0, worst_shift = 0, dt_l1 = 0, dt_shift = 0;
    char l1_name[160] = "";
    const int npct = calib_stats_npct(sc);
    for (int i = 0; i < calib_stats_count(sc); i++) {
        const char *nm = calib_stats_name(sc, i);
        float ac, ag;
        if (calib_stats_absmax(sc, nm, &ac) || calib_stats_absmax(sg, nm, &ag)) { T_CHECK(0, "%s", mq_errmsg()); continue; }
        char label[200];
        snprintf(label, sizeof label, "%s", nm);
        dev_add(&d_abs, label, ag, ac, ac);
        const char *sfx[2] = {".percentiles", ".ema_percentiles"};
        for (int e = 0; e < 2; e++) {
            const st_tensor *tc = calib_stats_tensor(sc, nm, sfx[e]), *tg = calib_stats_tensor(sg, nm, sfx[e]);
            for (int q = 0; q < npct && tc && tg; q++) {
                snprintf(label, sizeof label, "%s%s[p%g]", nm, sfx[e], calib_stats_pct(sc, q));
                dev_add(e ? &d_ema : &d_pct, label, f32_at(tg, q), f32_at(tc, q), ac);
            }
        }
        const char *gs[3] = {".absmax_per_head", ".absmax_per_group", ".absmax_per_channel"};
        for (int e = 0; e < 3; e++) {
            const st_tensor *tc = calib_stats_tensor(sc, nm, gs[e]), *tg = calib_stats_tensor(sg, nm, gs[e]);
            for (int k = 0; tc && tg && k < tc->numel; k++) {
                snprintf(label, sizeof label, "%s%s[%d]", nm, gs[e], k);
                dev_add(e == 2 ? &d_chan : &d_grp, label, f32_at(tg, k), f32_at(tc, k), ac);
            }
        }
        const st_tensor *hc = calib_stats_tensor(sc, nm, ".hist"), *hg = calib_stats_tensor(sg, nm, ".hist");
        if (!hc || !hg) { hist_bad++; continue; }
        int64_t tc = 0, tg = 0;
        double l1 = 0, mc = 0, mg = 0;
        for (int k = 0; k < OBS_HIST_BINS; k++) {
            int64_t a, b;
            memcpy(&a, (const char *)hc->data + 8 * k, 8);
            memcpy(&b, (const char *)hg->data + 8 * k, 8);
            tc += a, tg += b;
            l1 += fabs((double)a - (double)b);
            mc += (double)k * a, mg += (double)k * b;
        }
        if (tc != tg && hist_bad++ < 3) printf("    %s: histogram total gpu %lld, cpu %lld\n", nm, (long long)tg, (long long)tc);
        l1 /= tc > 0 ? tc : 1;
        double shift = fabs(mg - mc) / (tc > 0 ? tc : 1);
        if (calib_has_suffix(nm, "dt_proj:output")) { /* absolute error near zero: reported, not checked */
            if (l1 > dt_l1) dt_l1 = l1;
            if (shift > dt_shift) dt_shift = shift;
            continue;
        }
        if (l1 > worst_l1) { worst_l1 = l1; snprintf(l1_name, sizeof l1_name, "%s", nm); }
        if (shift > worst_shift) worst_shift = shift;
    }
    printf("    %s: %d activations, %d x %d tokens: cpu %.2f s, gpu %.2f s (batch %d)\n", tag, calib_stats_count(sc),
           SAMPLES, SEQLEN, rc_.seconds, rg.seconds, batch);
    dev_report(&d_abs, tag);
    dev_report(&d_pct, tag);
    dev_report(&d_ema, tag);
    dev_report(&d_grp, tag);
    T_CHECK(d_chan.n > 0, "%s: no per-channel absmax compared", tag);
    dev_report(&d_chan, tag);
    printf("    %s histograms: totals equal in %d of %d; worst L1 distance of the normalized histograms %.3f (%s), "
           "worst shift of the mean bin %.3f bins\n",
           tag, calib_stats_count(sc) - hist_bad, calib_stats_count(sc), worst_l1, l1_name, worst_shift);
    if (dt_l1 > 0)
        printf("    %s dt_proj:output (FP16(dt + bias) - bias on the GPU): worst L1 %.3f, mean-bin shift %.3f bins\n", tag,
               dt_l1, dt_shift);
    T_CHECK(hist_bad == 0, "%d histogram totals differ", hist_bad);
    T_CHECK(worst_l1 < 0.5 && worst_shift < 1.0, "histograms far apart: L1 %.3f, mean-bin shift %.3f", worst_l1, worst_shift);
    st_close(fc), st_close(fg);
    calib_stats_close(sc), calib_stats_close(sg);
}

/* batch 3 over 4 samples: a full batch and a partial one */
static void test_gpu_vs_cpu_mamba1(void) { gpu_vs_cpu("models/mamba1-proxy", 3); }
static void test_gpu_vs_cpu_mamba2(void) { gpu_vs_cpu("models/mamba2-proxy", 4); }

/* ---------------------------------------------------------------- transforms */

static int twice_host(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    (void)ctx, (void)layer, (void)role;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) x[(size_t)r * ld + c] *= 2;
    return 0;
}

#ifdef MQ_CUDA
/* The GPU version through the host (a test needs no kernel of its own): download, double, upload.
 * The upload goes on the hook's stream and is waited for: a plain cudaMemcpy from pageable memory
 * runs on the legacy stream and may return before its DMA lands, which the forward's non-blocking
 * stream does not wait for (a second GPU run of this test saw stale values that way). */
static void twice_gpu(void *ctx, int layer, mq_act_role role, const void *x, int x_f32, int rows, int cols, int ld,
                      float *out, void *stream) {
    (void)ctx, (void)layer, (void)role;
    float *h = malloc((size_t)rows * cols * sizeof *h);
    mq_act a = {.layer = layer, .role = role, .dtype = x_f32 ? MQ_F32 : MQ_F16, .x = (void *)x, .rows = rows,
                .cols = cols, .ld = ld, .device = 1, .stream = stream};
    if (be_act_download(&a, h)) mq_die("%s", mq_errmsg());
    for (size_t i = 0; i < (size_t)rows * cols; i++) h[i] *= 2;
    CUDA_CHECK(cudaMemcpyAsync(out, h, (size_t)rows * cols * sizeof *h, cudaMemcpyHostToDevice, (cudaStream_t)stream));
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    free(h);
}
#else
#define twice_gpu NULL
#endif

static void test_transforms(void) {
    NEED_GPU();
    char model[4096], tokp[4096], out[512];
    if (!proxy_paths("models/mamba2-proxy", model, tokp)) T_SKIP("mamba2-proxy or calib data not in ../shared");
    snprintf(out, sizeof out, "%s/xf.safetensors", t_tmpdir());
    calib_options o;
    calib_result r;
    base_options(&o, model, tokp, out);
    o.transforms[0] = (calib_transform){MQ_ACT_OUT_PROJ_IN, twice_host, NULL, "twice"};
    o.ntransforms = 1;
    o.samples = 2;
    o.device = "cuda";
    T_CHECK(calib_run(&o, &r) == -1 && strstr(mq_errmsg(), "'twice'") && strstr(mq_errmsg(), "no GPU version"),
            "a transform without a GPU version must be refused on cuda: %s", mq_errmsg());
    o.device = "auto";
    T_CHECK(calib_run(&o, &r) == 0 && !strcmp(r.device, "cpu"), "auto with a host-only transform: %s (%s)",
            r.device ? r.device : "-", mq_errmsg());
    o.gpu_transforms[0] = twice_gpu;
    o.device = "cuda";
    T_CHECK(calib_run(&o, &r) == 0 && !strcmp(r.device, "cuda"), "%s", mq_errmsg());
    calib_stats *s = calib_stats_open(out, NULL);
    T_CHECK(s != NULL, "%s", mq_errmsg());
    if (!s) return;
    T_CHECK(strstr(calib_stats_meta(s, "calib.transforms"), "out_proj_in=twice") != NULL, "transforms metadata: %s",
            calib_stats_meta(s, "calib.transforms"));
    /* out_proj:input = 2 x had:input through the two-level FP32 path vs the 16-bit path: exactly twice */
    int bad = 0, n = 0;
    for (int l = 0; ; l++) {
        char a[160], b[160];
        snprintf(a, sizeof a, "backbone.layers.%d.mixer.had:input", l);
        snprintf(b, sizeof b, "backbone.layers.%d.mixer.out_proj:input", l);
        const char *sfx[3] = {".absmax", ".percentiles", ".ema_percentiles"};
        if (!calib_stats_tensor(s, a, ".absmax")) break;
        n++;
        for (int e = 0; e < 3; e++) {
            const st_tensor *ta = calib_stats_tensor(s, a, sfx[e]), *tb = calib_stats_tensor(s, b, sfx[e]);
            for (int k = 0; ta && tb && k < ta->numel; k++)
                if (2 * f32_at(ta, k) != f32_at(tb, k) && bad++ < 3)
                    printf("    layer %d %s[%d]: had %.9g, out_proj %.9g\n", l, sfx[e], k, f32_at(ta, k), f32_at(tb, k));
        }
        const st_tensor *ha = calib_stats_tensor(s, a, ".hist"), *hb = calib_stats_tensor(s, b, ".hist");
        for (int k = 1; ha && hb && k + 64 < OBS_HIST_BINS - 1; k++) {
            int64_t x, y;
            memcpy(&x, (const char *)ha->data + 8 * k, 8);
            memcpy(&y, (const char *)hb->data + 8 * (k + 64), 8);
            if (x != y && bad++ < 3) printf("    layer %d hist bin %d: had %lld, out_proj bin %d %lld\n", l, k, (long long)x, k + 64, (long long)y);
        }
    }
    T_CHECK(n > 0 && bad == 0, "%d of the doubled statistics are not exactly twice had:input's (%d layers)", bad, n);
    calib_stats_close(s);
}

int main(int argc, char **argv) {
    /* an argument runs only the tests whose names contain it (e.g. "exact" under compute-sanitizer) */
    const char *only = argc > 1 ? argv[1] : "";
#define RUN_IF(fn) if (strstr(#fn, only)) T_RUN(fn)
    RUN_IF(test_exact);
    RUN_IF(test_gpu_vs_cpu_mamba1);
    RUN_IF(test_gpu_vs_cpu_mamba2);
    RUN_IF(test_transforms);
    return t_summary();
}
