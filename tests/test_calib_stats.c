/* Stats files without a model: observers fed by hand are written with calib_write_stats and read
 * back with calib_stats_open (values bit-exact, metadata, per-head tensors, ":output" aliases),
 * and the reader refuses other weights, other formats and uncalibrated percentiles clearly. */
#include "tests/test.h"
#include "calib/calib.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/st.h"
#include "core/qrule.h"
#include "export/art.h"

static mq_config cfg_m2(void) {
    mq_config c = {0};
    c.arch = MQ_MAMBA2; c.d_model = 8; c.n_layer = 2; c.d_inner = 16; c.d_state = 4; c.d_conv = 4; c.vocab_size = 32;
    c.n_heads = 4; c.head_dim = 4; c.n_groups = 2; c.chunk_size = 8;
    return c;
}

/* Feeds every role of every layer with values i * 0.01 * (role + 1) for `samples` samples. */
static obs_set *fed_set(const mq_config *c, int samples) {
    static const double pct[] = {50, 99.95, 99.999, 100};
    obs_set *s = obs_set_new(c, pct, 4);
    mq_hooks h = obs_set_hooks(s);
    int cd = c->d_inner + 2 * c->n_groups * c->d_state, GN = c->n_groups * c->d_state;
    struct { mq_act_role role; int rows, cols; } acts[] = {
        {MQ_ACT_IN_PROJ_IN, 6, 8}, {MQ_ACT_Z, 6, 16}, {MQ_ACT_CONV_IN, 6, cd}, {MQ_ACT_DT, 6, 4}, {MQ_ACT_SSM_X, 6, 16},
        {MQ_ACT_B, 6, GN}, {MQ_ACT_C, 6, GN}, {MQ_ACT_SSM_STATE, 16, 4}, {MQ_ACT_SSM_OUT, 6, 16}, {MQ_ACT_OUT_PROJ_IN, 6, 16}};
    float x[6 * 64];
    for (int k = 0; k < samples; k++) {
        obs_begin_sample(s);
        for (int l = 0; l < c->n_layer; l++)
            for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
                int n = acts[a].rows * acts[a].cols;
                for (int i = 0; i < n; i++) x[i] = (i % 2 ? -1 : 1) * i * 0.01f * (a + 1) * (k + 1) * (l + 1);
                ssm_hook_f32(&h, l, acts[a].role, x, acts[a].rows, acts[a].cols, acts[a].cols);
            }
        for (int i = 0; i < 48; i++) x[i] = i * 0.5f;
        ssm_hook_f32(&h, -1, MQ_ACT_LM_HEAD_IN, x, 6, 8, 8);
        T_CHECK(obs_end_sample(s) == 0, "%s", mq_errmsg());
    }
    return s;
}

static void write_tiny_model(const char *path, float v) {
    float w[2] = {v, 2};
    int64_t sh[1] = {2};
    st_writer *wr = st_writer_new();
    st_writer_add(wr, "backbone.norm_f.weight", MQ_F32, 1, sh, w);
    T_CHECK(st_writer_write(wr, path) == 0, "%s", mq_errmsg());
    st_writer_free(wr);
}

static void test_round_trip(void) {
    mq_config c = cfg_m2();
    obs_set *s = fed_set(&c, 3);
    char model_a[512], model_b[512], path[512], ha[HASH_HEX_LEN], hb[HASH_HEX_LEN];
    snprintf(model_a, sizeof model_a, "%s/model_a.safetensors", t_tmpdir());
    snprintf(model_b, sizeof model_b, "%s/model_b.safetensors", t_tmpdir());
    snprintf(path, sizeof path, "%s/stats.safetensors", t_tmpdir());
    write_tiny_model(model_a, 1);
    write_tiny_model(model_b, 1.5f);
    T_CHECK(hash_model_weights(model_a, ha) == 0 && hash_model_weights(model_b, hb) == 0, "%s", mq_errmsg());
    const char *kv[] = {"format", CALIB_FORMAT, "format_version", CALIB_FORMAT_VERSION, "model.path", model_a,
                        "model.weights_sha256", ha, "calib.percentiles", "50,99.95,99.999,100", "calib.samples", "3"};
    T_CHECK(calib_write_stats(s, path, kv, 6) == 0, "%s", mq_errmsg());

    calib_stats *st = calib_stats_open(path, model_a);
    T_CHECK(st != NULL, "%s", mq_errmsg());
    if (!st) { obs_set_free(s); return; }
    T_CHECK(calib_stats_count(st) == obs_count(s), "%d names vs %d observers", calib_stats_count(st), obs_count(s));
    T_CHECK(calib_stats_npct(st) == 4 && calib_stats_pct(st, 1) == 99.95, "percentile list");
    T_CHECK(!strcmp(calib_stats_meta(st, "calib.samples"), "3"), "metadata");
    int bad = 0;
    for (int i = 0; i < obs_count(s); i++) {
        obs_tensor *t = obs_get(s, i);
        T_CHECK(!strcmp(calib_stats_name(st, i), t->name), "order: %s vs %s", calib_stats_name(st, i), t->name);
        float v;
        bad += calib_stats_absmax(st, t->name, &v) || v != t->absmax;
        for (int q = 0; q < 4; q++) {
            bad += calib_stats_percentile(st, t->name, t->pct[q], 0, &v) || v != t->pmax[q];
            bad += calib_stats_percentile(st, t->name, t->pct[q], 1, &v) || v != t->pema[q];
        }
        const st_tensor *h = calib_stats_tensor(st, t->name, ".hist");
        bad += !h || h->dtype != MQ_I64 || h->numel != OBS_HIST_BINS || memcmp(h->data, t->hist, OBS_HIST_BINS * 8);
        if (t->ngroup) {
            char suf[32];
            snprintf(suf, sizeof suf, ".absmax_per_%s", t->gkind);
            const st_tensor *g = calib_stats_tensor(st, t->name, suf);
            bad += !g || g->numel != t->ngroup || memcmp(g->data, t->gabsmax, t->ngroup * 4);
        }
    }
    T_CHECK(bad == 0, "%d values differ after the round trip", bad);
    T_CHECK(calib_stats_tensor(st, "backbone.layers.1.mixer.x_conv_out:input", ".absmax_per_head") != NULL, "per-head x");
    T_CHECK(calib_stats_tensor(st, "backbone.layers.1.mixer.B_conv_out:input", ".absmax_per_group") != NULL, "per-group B");
    /* Quamba's dt_act:output / ssm_state_act:output are the :input tensors */
    T_CHECK(calib_stats_tensor(st, "backbone.layers.0.mixer.dt_act:output", ".absmax") ==
            calib_stats_tensor(st, "backbone.layers.0.mixer.dt_act:input", ".absmax"), "ActIdentity :output alias");
    T_CHECK(calib_stats_tensor(st, "backbone.layers.0.mixer.out_proj:output", ".absmax") == NULL, "no alias for Linear outputs");
    float v;
    T_CHECK(calib_stats_percentile(st, "backbone.layers.0.mixer.z_act:input", 99.9, 0, &v) == -1 &&
            strstr(mq_errmsg(), "99.9 was not calibrated") && strstr(mq_errmsg(), "50,99.95,99.999,100"), "%s", mq_errmsg());
    calib_stats_close(st);

    /* other weights: refused, naming both */
    st = calib_stats_open(path, model_b);
    T_CHECK(st == NULL, "stats of model_a must be refused for model_b");
    T_CHECK(strstr(mq_errmsg(), "calibrated on other weights") && strstr(mq_errmsg(), model_a) && strstr(mq_errmsg(), model_b),
            "message: %s", mq_errmsg());
    calib_stats_close(st);
    /* a model file that is not a stats file */
    T_CHECK(calib_stats_open(model_a, NULL) == NULL && strstr(mq_errmsg(), "not a calibration stats file"), "%s", mq_errmsg());
    obs_set_free(s);
}

/* An output path that cannot be created leaves nothing behind and says why. */
static void test_unwritable(void) {
    mq_config c = cfg_m2();
    obs_set *s = fed_set(&c, 1);
    const char *kv[] = {"format", CALIB_FORMAT};
    T_CHECK(calib_write_stats(s, "/nonexistent-dir/stats.safetensors", kv, 1) == -1, "must fail");
    T_CHECK(strstr(mq_errmsg(), "/nonexistent-dir/stats.safetensors"), "names the path: %s", mq_errmsg());
    obs_set_free(s);
    /* a set that never saw a sample cannot be written */
    s = obs_set_new(&c, obs_default_pct, obs_default_npct);
    char path[512];
    snprintf(path, sizeof path, "%s/empty.safetensors", t_tmpdir());
    T_CHECK(calib_write_stats(s, path, kv, 1) == -1 && strstr(mq_errmsg(), "no calibration sample"), "%s", mq_errmsg());
    T_CHECK(access(path, F_OK) != 0, "no partial file");
    obs_set_free(s);
}

/* calib/stats.c's bound on statistics is the clip of the largest scale an artifact may hold (a
 * test, not a _Static_assert: float comparisons are no integer constant expression for clang) */
static void test_stat_bound(void) {
    T_CHECK(CALIB_STAT_MAX == ART_SCALE_MAX * QR_QMAX, "CALIB_STAT_MAX %g is not ART_SCALE_MAX %g * %d", (double)CALIB_STAT_MAX,
            (double)ART_SCALE_MAX, QR_QMAX);
}

int main(void) {
    T_RUN(test_stat_bound);
    T_RUN(test_round_trip);
    T_RUN(test_unwritable);
    return t_summary();
}
