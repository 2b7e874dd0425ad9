/* The quantizer's reading of calib stats files (quantize/cstats.h): a file made from other weights
 * is refused with a message naming both; each (layer, role, segment, variant) reads the calib
 * statistic named in calib/obs.h; calib.transforms decides which variant the file holds and what an
 * extra pass must supply; percentiles come from the EMA aggregation; a missing percentile is a clear
 * error. Stats files are written here with st_writer (no forward pass needed), except in the last
 * test: a short calibration with quamba-rot's transforms gives the same rotated in_proj / lm_head
 * statistics as the extra pass over the same windows (two ways to one number). */
#include <stdint.h>
#include "calib/calib.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/st.h"
#include "quantize/cstats.h"
#include "tests/test.h"

/* Value written for a calib name: a hash of the name, so every mapping is checkable. */
static float value_of(const char *name, int which) {
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    return 1.0f + (float)(h % 1000) / 100.0f + (float)which * 0.001f;
}

static const char *M1_OPS[] = {"in_proj:input", "in_proj:output", "x_proj:input", "x_proj:output", "dt_proj:output",
                               "had:input", "out_proj:input"};
static const char *M2_OPS[] = {"in_proj:input", "z_act:input", "x_conv_in:input", "B_conv_in:input", "C_conv_in:input", "dt_act:input",
                               "x_conv_out:input", "B_conv_out:input", "C_conv_out:input", "had:input", "out_proj:input"};

/* A stats file for a model of `arch` with n_layer layers, claiming weights hash `sha`. */
static const char *write_stats(const char *name, int arch, int n_layer, const char *sha, const char *transforms) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s.safetensors", t_tmpdir(), name);
    st_writer *w = st_writer_new();
    const char **ops = arch == 1 ? M1_OPS : M2_OPS;
    int nops = arch == 1 ? 7 : 11;
    int64_t one = 1, three = 3, nb = OBS_HIST_BINS;
    int64_t *hist = mq_calloc(OBS_HIST_BINS, sizeof(int64_t));
    char tn[200], full[160];
    for (int l = -1; l < n_layer; l++)
        for (int k = 0; k < (l < 0 ? 1 : nops); k++) {
            if (l < 0) snprintf(full, sizeof full, "lm_head:input");
            else snprintf(full, sizeof full, "backbone.layers.%d.mixer.%s", l, ops[k]);
            float a = value_of(full, 0), p[3] = {a * 0.5f, a * 0.6f, a * 0.7f}, e[3] = {a * 0.4f, a * 0.45f, a * 0.55f};
            snprintf(tn, sizeof tn, "%s.absmax", full);
            st_writer_add(w, tn, MQ_F32, 1, &one, &a);
            snprintf(tn, sizeof tn, "%s.percentiles", full);
            st_writer_add(w, tn, MQ_F32, 1, &three, p);
            snprintf(tn, sizeof tn, "%s.ema_percentiles", full);
            st_writer_add(w, tn, MQ_F32, 1, &three, e);
            snprintf(tn, sizeof tn, "%s.hist", full);
            st_writer_add(w, tn, MQ_I64, 1, &nb, hist);
        }
    free(hist);
    st_writer_add_metadata(w, "format", CALIB_FORMAT);
    st_writer_add_metadata(w, "format_version", CALIB_FORMAT_VERSION);
    st_writer_add_metadata(w, "model.path", "somewhere/model");
    st_writer_add_metadata(w, "model.arch", arch == 1 ? "mamba1" : "mamba2");
    st_writer_add_metadata(w, "model.weights_sha256", sha);
    st_writer_add_metadata(w, "calib.percentiles", "99.9,99.95,99.99");
    st_writer_add_metadata(w, "calib.samples", "4");
    st_writer_add_metadata(w, "calib.seqlen", "16");
    st_writer_add_metadata(w, "calib.transforms", transforms);
    if (st_writer_write(w, path)) printf("    cannot write %s: %s\n", path, mq_errmsg());
    st_writer_free(w);
    return path;
}

static char sha1[HASH_HEX_LEN], sha2[HASH_HEX_LEN];
static const char *m1, *m2;
static int setup(void) {
    static int done, ok;
    if (done) return ok;
    done = 1;
    static char b1[4200], b2[4200];
    const char *p = t_shared("models/mamba1-proxy");
    if (!p) return 0;
    snprintf(b1, sizeof b1, "%s", p);
    p = t_shared("models/mamba2-proxy");
    if (!p) return 0;
    snprintf(b2, sizeof b2, "%s", p);
    m1 = b1;
    m2 = b2;
    ok = !hash_model_weights(m1, sha1) && !hash_model_weights(m2, sha2);
    return ok;
}

static void test_other_model_refused(void) {
    if (!setup()) T_SKIP("../shared/models not found");
    mq_config c1;
    T_CHECK(cfg_load(m1, &c1) == 0, "%s", mq_errmsg());
    /* stats of mamba2-proxy offered for mamba1-proxy */
    const char *st = write_stats("other", 1, c1.n_layer, sha2, "dt=minus_dt_proj_bias");
    q_cstats cs;
    int rc = q_cstats_open(&cs, st, m1, &c1);
    T_CHECK(rc != 0, "stats from another model accepted");
    if (!rc) { q_cstats_close(&cs); return; }
    const char *msg = mq_errmsg();
    printf("    (expected error) %s\n", msg);
    T_CHECK(strstr(msg, st) && strstr(msg, "other weights") && strstr(msg, m1), "message: %s", msg);
    char h1[20], h2[20];
    snprintf(h1, sizeof h1, "%.16s", sha1);
    snprintf(h2, sizeof h2, "%.16s", sha2);
    T_CHECK(strstr(msg, h1) && strstr(msg, h2), "message lacks both hashes: %s", msg);
    /* right weights, wrong architecture in the file */
    st = write_stats("arch", 2, c1.n_layer, sha1, "none");
    T_CHECK(q_cstats_open(&cs, st, m1, &c1) != 0 && strstr(mq_errmsg(), "mamba2"), "arch mismatch: %s", mq_errmsg());
}

static void expect(q_cstats *cs, int layer, mq_act_role role, int part, q_stat_variant var, const char *op) {
    q_stats st = q_cstats_iface(cs);
    float v = -1;
    char full[160];
    snprintf(full, sizeof full, "backbone.layers.%d.mixer.%s", layer, op);
    int rc = st.absmax(st.ctx, layer, role, part, var, &v);
    T_CHECK(rc == 0 && v == value_of(full, 0), "layer %d role %d part %d var %d: expected %s (%g), got %g (%s)", layer, role, part,
            var, op, (double)value_of(full, 0), (double)v, rc ? mq_errmsg() : "ok");
}

/* Which observer of the official Quamba names each (layer, role, part) reads, per architecture. */
static const struct {
    int arch, layer;
    mq_act_role role;
    int part;
    const char *op;
} mapping[] = {
    {1, 3, MQ_ACT_IN_PROJ_IN, 0, "in_proj:input"},     {1, 3, MQ_ACT_CONV_IN, 0, "in_proj:output"},
    {1, 3, MQ_ACT_Z, 0, "in_proj:output"},             {1, 0, MQ_ACT_SSM_X, 0, "x_proj:input"},
    {1, 23, MQ_ACT_X_PROJ_OUT, 0, "x_proj:output"},    {1, 5, MQ_ACT_DT, 0, "dt_proj:output"},
    {1, 5, MQ_ACT_OUT_PROJ_IN, 0, "had:input"},        {2, 7, MQ_ACT_CONV_IN, 0, "x_conv_in:input"},
    {2, 7, MQ_ACT_CONV_IN, 1, "B_conv_in:input"},      {2, 7, MQ_ACT_CONV_IN, 2, "C_conv_in:input"},
    {2, 7, MQ_ACT_Z, 0, "z_act:input"},                {2, 7, MQ_ACT_DT, 0, "dt_act:input"},
    {2, 7, MQ_ACT_SSM_X, 0, "x_conv_out:input"},       {2, 7, MQ_ACT_B, 0, "B_conv_out:input"},
    {2, 7, MQ_ACT_C, 0, "C_conv_out:input"},
};

static void expect_mapping(q_cstats *cs, int arch) {
    for (size_t i = 0; i < sizeof mapping / sizeof mapping[0]; i++)
        if (mapping[i].arch == arch) expect(cs, mapping[i].layer, mapping[i].role, mapping[i].part, Q_STAT_PLAIN, mapping[i].op);
}

/* A stats file `name` for proxy arch (its weights hash, calib.transforms `transforms`), opened into cs. */
static void open_stats(q_cstats *cs, int arch, const char *name, const char *transforms) {
    const char *model = arch == 1 ? m1 : m2;
    mq_config c;
    cfg_load(model, &c);
    const char *st = write_stats(name, arch, c.n_layer, arch == 1 ? sha1 : sha2, transforms);
    T_CHECK(q_cstats_open(cs, st, model, &c) == 0, "%s", mq_errmsg());
}

static void test_mapping_m1(void) {
    if (!setup()) T_SKIP("../shared/models not found");
    q_cstats cs;
    open_stats(&cs, 1, "m1plain", "dt=minus_dt_proj_bias");
    expect_mapping(&cs, 1);
    /* percentile: EMA of the per-sample values, at exactly a calibrated percentile */
    q_stats qs = q_cstats_iface(&cs);
    float v;
    T_CHECK(qs.percentile(qs.ctx, 2, MQ_ACT_SSM_X, 0, Q_STAT_PLAIN, 99.95, &v) == 0 &&
            v == value_of("backbone.layers.2.mixer.x_proj:input", 0) * 0.45f, "ema percentile %g", (double)v);
    T_CHECK(qs.percentile(qs.ctx, 2, MQ_ACT_SSM_X, 0, Q_STAT_PLAIN, 99.999, &v) != 0 && strstr(mq_errmsg(), "99.9,99.95,99.99"),
            "missing percentile: %s", mq_errmsg());
    /* this file holds the plain variants: naive needs nothing more, quamba needs both fused ones */
    q_options o;
    q_options_default(&o);
    o.method = Q_NAIVE;
    T_CHECK(q_cstats_missing(&cs, &o) == 0, "naive");
    o.method = Q_QUAMBA;
    T_CHECK(q_cstats_missing(&cs, &o) == 3, "quamba: %d", q_cstats_missing(&cs, &o));
    o.method = Q_HADAMARD_ONLY;
    T_CHECK(q_cstats_missing(&cs, &o) == 2, "hadamard-only");
    T_CHECK(qs.absmax(qs.ctx, 1, MQ_ACT_OUT_PROJ_IN, 0, Q_STAT_FUSED, &v) != 0, "rotated statistics invented");
    q_cstats_close(&cs);

    /* calib ran with the quamba transforms: in_proj:input is x/rms(x), out_proj:input is H y */
    open_stats(&cs, 1, "m1fused", "in_proj_in=rmsnorm_unweighted,dt=minus_dt_proj_bias,out_proj_in=hadamard");
    o.method = Q_QUAMBA;
    T_CHECK(q_cstats_missing(&cs, &o) == 0, "quamba with transforms");
    o.method = Q_NAIVE;
    T_CHECK(q_cstats_missing(&cs, &o) == 1, "naive needs the weighted in_proj input");
    expect(&cs, 4, MQ_ACT_IN_PROJ_IN, 0, Q_STAT_FUSED, "in_proj:input");
    expect(&cs, 4, MQ_ACT_OUT_PROJ_IN, 0, Q_STAT_FUSED, "out_proj:input");
    expect(&cs, 4, MQ_ACT_OUT_PROJ_IN, 0, Q_STAT_PLAIN, "had:input");
    o.method = Q_QUAMBA_ROT;
    T_CHECK(q_cstats_missing(&cs, &o) == 1, "quamba-rot needs the rotated in_proj input: %d", q_cstats_missing(&cs, &o));
    o.quantize_head = 1;
    T_CHECK(q_cstats_missing(&cs, &o) == 5, "... and the rotated lm_head input: %d", q_cstats_missing(&cs, &o));
    o.quantize_head = 0;
    q_cstats_close(&cs);

    /* calib ran with the quamba-rot transforms: in_proj:input and lm_head:input are rotated */
    open_stats(&cs, 1, "m1rot",
               "in_proj_in=rmsnorm_unweighted_hadamard,dt=minus_dt_proj_bias,out_proj_in=hadamard,lm_head_in=norm_f_unweighted_hadamard");
    T_CHECK(cs.in_var == Q_STAT_ROTATED && cs.head_var == Q_STAT_ROTATED, "variants %d %d (a transform name is not a prefix match)",
            cs.in_var, cs.head_var);
    o.method = Q_QUAMBA_ROT;
    o.quantize_head = 1;
    T_CHECK(q_cstats_missing(&cs, &o) == 0, "quamba-rot with transforms: %d", q_cstats_missing(&cs, &o));
    o.method = Q_QUAMBA;
    T_CHECK(q_cstats_missing(&cs, &o) == 5, "quamba (head) on rotated statistics: %d", q_cstats_missing(&cs, &o));
    expect(&cs, 2, MQ_ACT_IN_PROJ_IN, 0, Q_STAT_ROTATED, "in_proj:input");
    qs = q_cstats_iface(&cs);
    T_CHECK(qs.absmax(qs.ctx, 2, MQ_ACT_IN_PROJ_IN, 0, Q_STAT_FUSED, &v) != 0, "unrotated in_proj statistics invented");
    T_CHECK(qs.absmax(qs.ctx, -1, MQ_ACT_LM_HEAD_IN, 0, Q_STAT_ROTATED, &v) == 0 && v == value_of("lm_head:input", 0), "rotated lm_head");
    T_CHECK(qs.absmax(qs.ctx, -1, MQ_ACT_LM_HEAD_IN, 0, Q_STAT_PLAIN, &v) != 0, "plain lm_head statistics invented");
    q_cstats_close(&cs);
}

static void test_mapping_m2(void) {
    if (!setup()) T_SKIP("../shared/models not found");
    q_cstats cs;
    open_stats(&cs, 2, "m2", "none");
    expect_mapping(&cs, 2);
    q_cstats_close(&cs);
}

static void test_transforms(void) {
    q_options o;
    q_options_default(&o);
    calib_transform t[3];
    mq_model m = {0};
    T_CHECK(q_cstats_transforms(&m, &o, t) == 2 && t[0].role == MQ_ACT_IN_PROJ_IN && !strcmp(t[0].name, "rmsnorm_unweighted") &&
            t[1].role == MQ_ACT_OUT_PROJ_IN && !strcmp(t[1].name, "hadamard"), "quamba transforms");
    o.method = Q_NAIVE;
    T_CHECK(q_cstats_transforms(&m, &o, t) == 0, "naive has none");
    /* the unweighting divides by the norm weight (0 for a zero weight) */
    float w[4] = {2, -0.5f, 0, 1}, x[2 * 4] = {4, 1, 3, 7, -2, 2, 5, 0};
    mq_layer L = {0};
    L.norm_w = w;
    m.cfg.n_layer = 1;
    m.layers = &L;
    o.method = Q_QUAMBA;
    q_cstats_transforms(&m, &o, t);
    t[0].fn(t[0].ctx, 0, MQ_ACT_IN_PROJ_IN, x, 2, 4, 4);
    T_CHECK(x[0] == 2 && x[1] == -2 && x[2] == 0 && x[3] == 7 && x[4] == -1 && x[5] == -4 && x[6] == 0, "unweight");
    /* quamba-rot: unweight then rotate (H of order 4 = S_4 / 2), for in_proj and for the lm_head (norm_f) */
    o.method = Q_QUAMBA_ROT;
    T_CHECK(q_cstats_transforms(&m, &o, t) == 3 && t[0].role == MQ_ACT_IN_PROJ_IN && !strcmp(t[0].name, "rmsnorm_unweighted_hadamard") &&
            t[1].role == MQ_ACT_OUT_PROJ_IN && t[2].role == MQ_ACT_LM_HEAD_IN && !strcmp(t[2].name, "norm_f_unweighted_hadamard"),
            "quamba-rot transforms");
    float y[4] = {4, 1, 3, 7}, nf[4] = {1, 1, 1, 0.5f};
    m.norm_f = nf;
    t[0].fn(t[0].ctx, 0, MQ_ACT_IN_PROJ_IN, y, 1, 4, 4);       /* (2, -2, 0, 7) H */
    T_CHECK(y[0] == 3.5f && y[1] == -1.5f && y[2] == -3.5f && y[3] == 5.5f, "unweight + rotate: %g %g %g %g", y[0], y[1], y[2], y[3]);
    float zz[4] = {4, 1, 3, 7};
    t[2].fn(t[2].ctx, 1, MQ_ACT_LM_HEAD_IN, zz, 1, 4, 4);      /* (4, 1, 3, 14) H */
    T_CHECK(zz[0] == 11 && zz[1] == -4 && zz[2] == -6 && zz[3] == 7, "lm_head: %g %g %g %g", zz[0], zz[1], zz[2], zz[3]);
}

/* calib with the quamba-rot transforms vs the extra pass on the same windows */
static void rot_agree(int arch) {
    if (!setup()) T_SKIP("../shared/models not found");
    const char *data = t_shared("datasets/calib.txt");
    static char datab[4200], tokb[4200];
    if (!data) T_SKIP("../shared/datasets/calib.txt not found");
    snprintf(datab, sizeof datab, "%s", data);
    const char *tj = t_shared("models/tokenizer.json");
    if (!tj) T_SKIP("tokenizer.json not found");
    snprintf(tokb, sizeof tokb, "%s", tj);
    const char *dir = arch == 1 ? m1 : m2;
    mq_model m;
    T_CHECK(ssm_load(dir, &m) == 0, "%s", mq_errmsg());
    q_options o;
    q_options_default(&o);
    o.method = Q_QUAMBA_ROT;
    o.quantize_head = 1;
    calib_options co;
    calib_defaults(&co);
    char out[600];
    snprintf(out, sizeof out, "%s/rot_m%d.safetensors", t_tmpdir(), arch);
    co.model_dir = dir, co.data_path = datab, co.tokenizer_path = tokb, co.out_path = out;
    co.samples = 2, co.seqlen = 64, co.quiet = 1;
    co.ntransforms = q_cstats_transforms(&m, &o, co.transforms);
    calib_result cr;
    T_CHECK(calib_run(&co, &cr) == 0, "%s", mq_errmsg());
    q_cstats cs;
    T_CHECK(q_cstats_open(&cs, out, dir, &m.cfg) == 0, "%s", mq_errmsg());
    snprintf(cs.data, sizeof cs.data, "%s", datab);   /* the caller names the data (data.path is its name only) */
    T_CHECK(cs.in_var == Q_STAT_ROTATED && cs.head_var == Q_STAT_ROTATED && q_cstats_missing(&cs, &o) == 0, "file variants");
    q_stats qs = q_cstats_iface(&cs);
    float file_in[64], file_head;
    int L = m.cfg.n_layer;
    for (int l = 0; l < L; l++) T_CHECK(qs.absmax(qs.ctx, l, MQ_ACT_IN_PROJ_IN, 0, Q_STAT_ROTATED, &file_in[l]) == 0, "%s", mq_errmsg());
    T_CHECK(qs.absmax(qs.ctx, -1, MQ_ACT_LM_HEAD_IN, 0, Q_STAT_ROTATED, &file_head) == 0, "%s", mq_errmsg());
    T_CHECK(q_cstats_fused_pass(&cs, &m, tokb, 0) == 0, "%s", mq_errmsg());
    double worst = 0;
    for (int l = 0; l < L; l++) worst = fmax(worst, fabs(cs.pass_in[Q_STAT_ROTATED][l] / file_in[l] - 1));
    double head = fabs(cs.pass_head[Q_STAT_ROTATED] / file_head - 1);
    printf("    mamba%d rotated in_proj input absmax, calib transform vs extra pass: max relative difference %.2g (lm_head %.2g)\n", arch,
           worst, head);
    /* the transform divides the weighted output by the weight, the pass runs the fused model: rounding apart */
    T_CHECK(worst < 1e-4 && head < 1e-4, "in_proj %.3g, lm_head %.3g", worst, head);
    q_cstats_close(&cs);
    ssm_free(&m);
}
static void test_rot_agree_m1(void) { rot_agree(1); }
static void test_rot_agree_m2(void) { rot_agree(2); }

int main(void) {
    T_RUN(test_other_model_refused);
    T_RUN(test_mapping_m1);
    T_RUN(test_mapping_m2);
    T_RUN(test_transforms);
    T_RUN(test_rot_agree_m1);
    T_RUN(test_rot_agree_m2);
    return t_summary();
}
