/* CPU calibration end to end on the proxy checkpoints (4 samples x 256 tokens, a few seconds):
 * every Quamba name for every layer is in the stats file, absmax finite and positive, percentiles
 * monotone, and absmax equal to an independent recomputation with a plain max hook over the same
 * windows. Sample windows, and the clear errors: other weights, too-short data, unwritable output. */
#include "tests/test.h"
#include "tests/test_data.h"
#include "calib/calib.h"
#include "core/err.h"
#include "core/gpu.h"
#include "datasets/ds.h"
#include "datasets/tok.h"

enum { SAMPLES = 4, SEQLEN = 256 };

static void test_windows(void) {
    size_t a[8], b[8], c[8];
    T_CHECK(calib_windows(10000, 256, 8, 0, 0, a, "d") == 0, "%s", mq_errmsg());
    for (int i = 0; i < 8; i++) T_CHECK(a[i] == (size_t)i * 256, "consecutive window %d starts at %zu", i, a[i]);
    T_CHECK(calib_windows(10000, 256, 8, 1, 42, b, "d") == 0 && calib_windows(10000, 256, 8, 1, 42, c, "d") == 0, "%s", mq_errmsg());
    T_CHECK(!memcmp(b, c, sizeof b), "the same seed gives the same windows");
    calib_windows(10000, 256, 8, 1, 43, c, "d");
    T_CHECK(memcmp(b, c, sizeof b) != 0, "another seed gives other windows");
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        bad += b[i] % 256 != 0 || b[i] + 256 > 10000;
        for (int j = 0; j < i; j++) bad += b[i] == b[j];
    }
    T_CHECK(bad == 0, "shuffled windows are distinct, aligned and inside the data");
    T_CHECK(calib_windows(1000, 256, 4, 0, 0, a, "short.txt") == -1, "too short must fail");
    T_CHECK(strstr(mq_errmsg(), "short.txt") && strstr(mq_errmsg(), "need 1024 tokens, found 1000"), "message: %s", mq_errmsg());
}

/* The names Quamba's calibration gives these activations (see calib/obs.h). */
static const char *m1_ops[] = {"in_proj:input", "in_proj:output", "x_proj:input", "x_proj:output", "dt_proj:input",
                               "dt_proj:output", "ssm_state_act:input", "had:input", "out_proj:input", NULL};
static const char *m2_ops[] = {"in_proj:input", "in_proj:output", "z_act:input", "x_conv_in:input", "B_conv_in:input",
                               "C_conv_in:input", "dt_act:input", "x_conv_out:input", "B_conv_out:input",
                               "C_conv_out:input", "ssm_state_act:input", "had:input", "out_proj:input", NULL};

/* Independent recomputation: max |v| per (layer, role) with column slices done by hand. */
typedef struct {
    const mq_model *m;
    float amax[64][MQ_ACT_NROLES];
    float dtlow[64];                    /* M1: x_proj out columns [0, dt_rank) */
    float conv_part[64][3];             /* M2: x, B, C parts of conv_in */
} ref_ctx;

static int ref_hook(void *ctx, const mq_act *a) {
    const int rows = a->rows, cols = a->cols, ld = a->ld;
    int layer = a->layer;
    const mq_act_role role = a->role;
    float *x = a->x;
    ref_ctx *r = ctx;
    if (layer < 0) layer = 63;
    const mq_config *c = &r->m->cfg;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float v = x[(size_t)i * ld + j];
            if (role == MQ_ACT_DT && c->arch == MQ_MAMBA1) v -= r->m->layers[layer].dt_proj_b[j];  /* Quamba: no bias */
            v = fabsf(v);
            r->amax[layer][role] = fmaxf(r->amax[layer][role], v);
            if (role == MQ_ACT_X_PROJ_OUT && j < c->dt_rank) r->dtlow[layer] = fmaxf(r->dtlow[layer], v);
            if (role == MQ_ACT_CONV_IN && c->arch == MQ_MAMBA2) {
                int part = j < c->d_inner ? 0 : j < c->d_inner + c->n_groups * c->d_state ? 1 : 2;
                r->conv_part[layer][part] = fmaxf(r->conv_part[layer][part], v);
            }
        }
    return 0;
}

static float ref_absmax(const ref_ctx *r, int l, const char *op) {
    const float *a = r->amax[l];
    if (!strcmp(op, "in_proj:input")) return a[MQ_ACT_IN_PROJ_IN];
    if (!strcmp(op, "in_proj:output")) return fmaxf(fmaxf(a[MQ_ACT_CONV_IN], a[MQ_ACT_Z]), r->m->cfg.arch == MQ_MAMBA2 ? a[MQ_ACT_DT] : 0);
    if (!strcmp(op, "x_proj:input") || !strcmp(op, "x_conv_out:input")) return a[MQ_ACT_SSM_X];
    if (!strcmp(op, "x_proj:output")) return a[MQ_ACT_X_PROJ_OUT];
    if (!strcmp(op, "dt_proj:input")) return r->dtlow[l];
    if (!strcmp(op, "dt_proj:output") || !strcmp(op, "dt_act:input")) return a[MQ_ACT_DT];
    if (!strcmp(op, "ssm_state_act:input")) return a[MQ_ACT_SSM_STATE];
    if (!strcmp(op, "had:input")) return a[MQ_ACT_SSM_OUT];
    if (!strcmp(op, "out_proj:input")) return a[MQ_ACT_OUT_PROJ_IN];
    if (!strcmp(op, "z_act:input")) return a[MQ_ACT_Z];
    if (!strcmp(op, "x_conv_in:input")) return r->conv_part[l][0];
    if (!strcmp(op, "B_conv_in:input")) return r->conv_part[l][1];
    if (!strcmp(op, "C_conv_in:input")) return r->conv_part[l][2];
    if (!strcmp(op, "B_conv_out:input")) return a[MQ_ACT_B];
    if (!strcmp(op, "C_conv_out:input")) return a[MQ_ACT_C];
    return -1;
}


static int shared_path(const char *rel, char *buf, size_t n) {
    const char *p = t_shared(rel);
    if (!p) return 0;
    snprintf(buf, n, "%s", p);
    return 1;
}

/* The calibration options of these tests: model, tokenizer, SAMPLES x SEQLEN tokens, quiet. */
static void small_calib(calib_options *o, const char *model, const char *tokp) {
    calib_defaults(o);
    o->model_dir = model;
    o->tokenizer_path = tokp;
    o->samples = SAMPLES;
    o->seqlen = SEQLEN;
    o->quiet = 1;
}

static void run_proxy(const char *model_rel, const char **ops, const char *out_name) {
    char model[4096], tokp[4096], out[512];
    const char *data = t_small_calib();
    if (!shared_path(model_rel, model, sizeof model) || !shared_path("models/tokenizer.json", tokp, sizeof tokp) || !data)
        T_SKIP("%s or the calibration text is not in ../shared", model_rel);
    snprintf(out, sizeof out, "%s/%s", t_tmpdir(), out_name);
    calib_options o;
    small_calib(&o, model, tokp);
    o.data_path = data;
    o.out_path = out;
    o.tool = "test_calib";
    calib_result res;
    T_CHECK(calib_run(&o, &res) == 0, "%s", mq_errmsg());
    calib_stats *st = calib_stats_open(out, model);
    T_CHECK(st != NULL, "%s", mq_errmsg());
    if (!st) return;

    /* independent recomputation over the same windows */
    mq_model m;
    T_CHECK(ssm_load(model, &m) == 0, "%s", mq_errmsg());
    tok_tokenizer *tok = tok_load(tokp);
    int32_t *ids = NULL;
    size_t nids = 0;
    ds_options dopt = {.field = "text"};
    T_CHECK(tok && ds_tokens(data, &dopt, tok, &ids, &nids) == 0, "%s", mq_errmsg());
    ref_ctx *r = calloc(1, sizeof *r);
    r->m = &m;
    mq_hooks h = {ref_hook, r};
    float *hidden = malloc((size_t)SEQLEN * m.cfg.d_model * sizeof *hidden);
    for (int i = 0; i < SAMPLES && ids; i++) T_CHECK(ssm_forward(&m, ids + (size_t)i * SEQLEN, SEQLEN, &h, hidden) == 0, "%s", mq_errmsg());

    int missing = 0, bad_abs = 0, bad_mono = 0, bad_ref = 0, n = 0;
    int npct = calib_stats_npct(st);
    for (int l = 0; l <= m.cfg.n_layer; l++)
        for (const char **op = ops; *op; op++) {
            if (l == m.cfg.n_layer && op != ops) break;
            char name[160];
            if (l == m.cfg.n_layer) snprintf(name, sizeof name, "lm_head:input");
            else snprintf(name, sizeof name, "backbone.layers.%d.mixer.%s", l, *op);
            const st_tensor *p = calib_stats_tensor(st, name, ".percentiles");
            float amax;
            if (!p || calib_stats_absmax(st, name, &amax)) { if (missing++ < 3) printf("    missing %s\n", name); continue; }
            n++;
            bad_abs += !(amax > 0 && isfinite(amax));
            float prev = -1;
            for (int q = 0; q < npct; q++) {   /* the default list is ascending */
                float v;
                memcpy(&v, (const char *)p->data + q * 4, 4);
                bad_mono += !(v >= prev) || v > amax;
                prev = v;
            }
            bad_mono += prev != amax;           /* p100's running max is the absmax */
            float want = l == m.cfg.n_layer ? r->amax[63][MQ_ACT_LM_HEAD_IN] : ref_absmax(r, l, *op);
            if (amax != want && bad_ref++ < 3) printf("    %s: absmax %.9g, recomputed %.9g\n", name, amax, want);
        }
    T_CHECK(missing == 0, "%d expected names missing", missing);
    T_CHECK(calib_stats_count(st) == n, "the file has %d activations, expected exactly %d", calib_stats_count(st), n);
    T_CHECK(bad_abs == 0, "%d absmax not finite and positive", bad_abs);
    T_CHECK(bad_mono == 0, "%d percentile lists not monotone / not ending at absmax", bad_mono);
    T_CHECK(bad_ref == 0, "%d absmax differ from the recomputation", bad_ref);
    T_CHECK(!strcmp(calib_stats_meta(st, "model.weights_sha256"), res.model_sha256), "model hash in metadata");
    T_CHECK(!strcmp(calib_stats_meta(st, "calib.samples"), "4") && !strcmp(calib_stats_meta(st, "calib.seqlen"), "256") &&
            !strcmp(calib_stats_meta(st, "calib.seed"), "none") && calib_stats_meta(st, "data.sha256"), "options in metadata");
    printf("    %s: %d activations, %d x %d tokens in %.2f s\n", model_rel, n, SAMPLES, SEQLEN, res.seconds);
    calib_stats_close(st);
    free(hidden);
    free(r);
    free(ids);
    tok_free(tok);
    ssm_free(&m);
}

static void test_calib_mamba1(void) { run_proxy("models/mamba1-proxy", m1_ops, "stats_m1.safetensors"); }
static void test_calib_mamba2(void) { run_proxy("models/mamba2-proxy", m2_ops, "stats_m2.safetensors"); }

static void test_errors(void) {
    char m1[4096], m2[4096], tokp[4096], stats[512], tiny[512], out[512];
    const char *data = t_small_calib();
    if (!shared_path("models/mamba1-proxy", m1, sizeof m1) || !shared_path("models/mamba2-proxy", m2, sizeof m2) ||
        !shared_path("models/tokenizer.json", tokp, sizeof tokp) || !data)
        T_SKIP("proxy models not in ../shared");
    /* stats of mamba1-proxy (written by test_calib_mamba1) refused for mamba2-proxy */
    snprintf(stats, sizeof stats, "%s/stats_m1.safetensors", t_tmpdir());
    if (access(stats, F_OK) == 0) {
        T_CHECK(calib_stats_open(stats, m2) == NULL, "other weights must be refused");
        T_CHECK(strstr(mq_errmsg(), "calibrated on other weights") && strstr(mq_errmsg(), "mamba2-proxy") &&
                strstr(mq_errmsg(), "mamba1-proxy"), "message: %s", mq_errmsg());
    }
    calib_options o;
    small_calib(&o, m1, tokp);
    calib_result res;
    /* too short: a sentence is far from 4 x 256 tokens */
    snprintf(tiny, sizeof tiny, "%s/tiny.txt", t_tmpdir());
    const char *txt = "It was a bright cold day in April, and the clocks were striking thirteen.\n";
    mq_write_file_atomic(tiny, txt, strlen(txt));
    snprintf(out, sizeof out, "%s/never.safetensors", t_tmpdir());
    o.data_path = tiny;
    o.out_path = out;
    T_CHECK(calib_run(&o, &res) == -1, "too-short data must fail");
    T_CHECK(strstr(mq_errmsg(), "tiny.txt: too short") && strstr(mq_errmsg(), "need 1024 tokens, found"), "message: %s", mq_errmsg());
    T_CHECK(access(out, F_OK) != 0, "no output file after a failure");
    /* unwritable output: refused before any compute */
    o.data_path = data;
    o.out_path = "/nonexistent-dir/stats.safetensors";
    T_CHECK(calib_run(&o, &res) == -1, "unwritable output must fail");
    T_CHECK(strstr(mq_errmsg(), "/nonexistent-dir/stats.safetensors: cannot write"), "message: %s", mq_errmsg());
    /* --device cuda without a usable GPU is refused (with one, tests/test_calib_gpu.c runs it) */
    o.out_path = out;
    o.device = "cuda";
    if (!gpu_available(NULL))
        T_CHECK(calib_run(&o, &res) == -1 && strstr(mq_errmsg(), "not available"), "device: %s", mq_errmsg());
}

int main(void) {
    T_RUN(test_windows);
    T_RUN(test_calib_mamba1);
    T_RUN(test_calib_mamba2);
    T_RUN(test_errors);
    return t_summary();
}
