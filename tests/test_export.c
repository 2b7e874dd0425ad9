/* Artifact writer / reader / validator on small synthetic Mamba1 and Mamba2 models: written then
 * read back equals what was written; every kind of corruption (missing tensor or scale, scale <= 0
 * or NaN, wrong shape or dtype, unknown format version or method, extra tensor) gets an error naming
 * the file and the tensor; a quamba-rot artifact carries its untied lm_head and its residual
 * rotation, and one whose quant_config.json disagrees with its method, config.json or tensors (a
 * stale or edited one) is refused naming the field; an interrupted write (injected failure, or the writing process killed
 * midway) leaves nothing under the final name, and --force replacement keeps the old artifact when
 * the new one fails. */
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <cjson/cJSON.h>
#include "core/err.h"
#include "core/st.h"
#include "export/art.h"
#include "quantize/q.h"
#include "tests/test.h"

static const char *M1_CONFIG =
    "{\"model_type\": \"mamba\", \"hidden_size\": 32, \"num_hidden_layers\": 2, \"vocab_size\": 80,"
    " \"state_size\": 8, \"conv_kernel\": 4, \"expand\": 2, \"intermediate_size\": 64, \"time_step_rank\": 4,"
    " \"use_conv_bias\": true, \"use_bias\": false, \"tie_word_embeddings\": true, \"layer_norm_epsilon\": 1e-5}";
static const char *M2_CONFIG =
    "{\"model_type\": \"mamba2\", \"hidden_size\": 32, \"num_hidden_layers\": 2, \"vocab_size\": 80,"
    " \"num_heads\": 4, \"head_dim\": 16, \"n_groups\": 1, \"state_size\": 8, \"expand\": 2, \"chunk_size\": 16,"
    " \"conv_kernel\": 4, \"use_conv_bias\": true, \"use_bias\": false, \"tie_word_embeddings\": false,"
    " \"layer_norm_epsilon\": 1e-5, \"norm_before_gate\": false, \"rms_norm\": true}";

static uint64_t rng = 88172645463325252ull;
static float frand(void) {  /* uniform in [-1, 1) */
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / (1ull << 23))) - 1.0f;
}

static float *rnd(size_t n, float scale) {
    float *x = mq_malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = scale * frand();
    return x;
}

/* A random FP32 model of configuration c (every array separately malloc'ed). */
static void random_model(const mq_config *c, mq_model *m) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    size_t D = c->d_model, E = c->d_inner, N = cfg_in_proj_dim(c), CD = cfg_conv_dim(c), V = c->vocab_size;
    m->layers = mq_calloc((size_t)c->n_layer, sizeof *m->layers);
    for (int l = 0; l < c->n_layer; l++) {
        mq_layer *L = &m->layers[l];
        L->norm_w = rnd(D, 1);
        L->in_proj = rnd(N * D, 0.2f);
        L->conv_w = rnd(CD * c->d_conv, 0.5f);
        L->conv_b = rnd(CD, 0.1f);
        L->out_proj = rnd(D * E, 0.2f);
        size_t nA = c->arch == MQ_MAMBA1 ? E * c->d_state : (size_t)c->n_heads;
        L->A_log = rnd(nA, 1);
        L->A = rnd(nA, 1);
        L->D = rnd(c->arch == MQ_MAMBA1 ? E : (size_t)c->n_heads, 1);
        if (c->arch == MQ_MAMBA1) {
            L->x_proj = rnd((size_t)(c->dt_rank + 2 * c->d_state) * E, 0.2f);
            L->dt_proj = rnd(E * c->dt_rank, 0.3f);
            L->dt_proj_b = rnd(E, 1);
        } else {
            L->dt_bias = rnd((size_t)c->n_heads, 1);
            L->gnorm_w = rnd(E, 1);
        }
    }
    m->embed = rnd(V * D, 1);
    m->norm_f = rnd(D, 1);
    m->lm_head = c->tie_embeddings ? m->embed : rnd(V * D, 1);
}

static void free_random_model(mq_model *m) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        mq_layer *L = &m->layers[l];
        float *f[] = {L->norm_w, L->in_proj, L->conv_w, L->conv_b, L->out_proj, L->A_log, L->A, L->D,
                      L->x_proj, L->dt_proj, L->dt_proj_b, L->dt_bias, L->gnorm_w};
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]);
    }
    if (m->lm_head != m->embed) free(m->lm_head);
    free(m->embed);
    free(m->norm_f);
    free(m->layers);
}

/* Statistics stub: distinct, deterministic values per layer, role and variant. */
static int stub_absmax(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, float *v) {
    *v = 1.0f + 0.25f * (float)(layer + 1) + 0.125f * (float)role + 0.0625f * (float)part + (var == Q_STAT_FUSED ? 0.5f : 0.0f);
    return 0;
}
static int stub_pct(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, double p, float *v) {
    stub_absmax(ctx, layer, role, part, var, v);
    *v *= (float)(p / 100.0) * 0.5f;
    return 0;
}
static const q_stats STUB = {.absmax = stub_absmax, .percentile = stub_pct};

static int write_text(const char *path, const char *text) { return mq_write_file_atomic(path, text, strlen(text)); }

/* A source "model directory" with config.json and tokenizer.json; returns its path. */
static const char *make_src(const char *name, const char *config) {
    static char dir[512];
    char p[600];
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), name);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, config);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    write_text(p, "{\"model\": {\"type\": \"BPE\"}}");
    return dir;
}

static void prov(art_provenance *p) {
    memset(p, 0, sizeof *p);
    snprintf(p->source_model, sizeof p->source_model, "synthetic");
    snprintf(p->source_hash, sizeof p->source_hash, "0123abcd");
    snprintf(p->stats_file, sizeof p->stats_file, "stub");
    p->calib_samples = 3;
    p->calib_tokens = 300;
    snprintf(p->tool_version, sizeof p->tool_version, "test");
}

static int weq(const q_weight *a, const q_weight *b) {
    if (!a->q && !b->q) return 1;
    if (!a->q || !b->q || a->rows != b->rows || a->cols != b->cols || a->nscale != b->nscale) return 0;
    return !memcmp(a->q, b->q, (size_t)a->rows * a->cols) && !memcmp(a->scale, b->scale, (size_t)a->nscale * 4);
}
static int feq(const float *a, const float *b, size_t n) {
    if (!a && !b) return 1;
    return a && b && !memcmp(a, b, n * sizeof *a);
}

/* Every field of two q_models equal, bit for bit. */
static void check_same(const q_model *a, const q_model *b) {
    const mq_config *c = &a->cfg;
    size_t D = c->d_model, E = c->d_inner, N = cfg_in_proj_dim(c), CD = cfg_conv_dim(c), V = c->vocab_size;
    size_t nA = c->arch == MQ_MAMBA1 ? E * c->d_state : (size_t)c->n_heads, nD = c->arch == MQ_MAMBA1 ? E : (size_t)c->n_heads;
    T_CHECK(a->opt.method == b->opt.method && a->opt.weight_gran == b->opt.weight_gran &&
            a->opt.quantize_head == b->opt.quantize_head && a->opt.quantize_embedding == b->opt.quantize_embedding, "options differ");
    T_CHECK(a->hadamard_n == b->hadamard_n && a->hadamard_m == b->hadamard_m && a->hadamard_k == b->hadamard_k, "hadamard differs");
    T_CHECK(a->resid_n == b->resid_n && a->resid_m == b->resid_m && a->resid_k == b->resid_k, "residual rotation differs");
    T_CHECK(a->cfg.tie_embeddings == b->cfg.tie_embeddings, "tie flag differs");
    T_CHECK(a->opt.percentile == b->opt.percentile || !q_method_uses_percentile(a->opt.method), "percentile differs");
    for (int l = 0; l < c->n_layer; l++) {
        const q_layer *x = &a->layers[l], *y = &b->layers[l];
        T_CHECK(weq(&x->in_proj, &y->in_proj) && weq(&x->conv1d, &y->conv1d) && weq(&x->out_proj, &y->out_proj) &&
                weq(&x->x_proj, &y->x_proj) && weq(&x->dt_proj, &y->dt_proj), "layer %d weights differ", l);
        T_CHECK(feq(x->norm_w, y->norm_w, D) && feq(x->in_proj_b, y->in_proj_b, N) && feq(x->out_proj_b, y->out_proj_b, D) &&
                feq(x->conv_b, y->conv_b, CD) && feq(x->A_log, y->A_log, nA) && feq(x->D, y->D, nD) &&
                feq(x->dt_proj_b, y->dt_proj_b, E) && feq(x->dt_bias, y->dt_bias, (size_t)c->n_heads) &&
                feq(x->gnorm_w, y->gnorm_w, E), "layer %d float tensors differ", l);
        T_CHECK(!memcmp(x->act_scale, y->act_scale, sizeof x->act_scale), "layer %d activation scales differ", l);
    }
    T_CHECK(feq(a->embed, b->embed, V * D) && feq(a->norm_f, b->norm_f, D) && feq(a->lm_head, b->lm_head, V * D), "top-level floats differ");
    T_CHECK(weq(&a->lm_head_q, &b->lm_head_q) && a->lm_head_in_scale == b->lm_head_in_scale, "lm_head differs");
    T_CHECK(weq(&a->embed_q, &b->embed_q), "int8 embedding differs");
}

/* Writes qm as the artifact <tmp>/art_<name> of a source folder <tmp>/<name> (config.json, tokenizer.json),
 * opens it into a and checks it equals qm. Returns art_open's status; p, out, cj, tj: the provenance
 * and paths used (out, cj, tj of 600 bytes). */
static int write_read(const char *name, const char *config, const q_model *qm, art_provenance *p, art_artifact *a, char *out, char *cj,
                      char *tj) {
    const char *src = make_src(name, config);
    snprintf(cj, 600, "%s/config.json", src);
    snprintf(tj, 600, "%s/tokenizer.json", src);
    snprintf(out, 600, "%s/art_%s", t_tmpdir(), name);
    prov(p);
    T_CHECK(art_write(out, qm, p, cj, tj, 0) == 0, "%s", mq_errmsg());
    int rc = art_open(out, a);
    T_CHECK(rc == 0, "art_open: %s", mq_errmsg());
    if (rc == 0) check_same(qm, &a->qm);
    return rc;
}

/* head: 0 FP16 lm_head, 1 int8 lm_head, 2 int8 embedding and lm_head (--quantize-embedding) */
/* The configuration, a random model of it, and the default options of `method`. */
static void setup(const char *config, q_method method, mq_config *c, mq_model *m, q_options *o) {
    T_CHECK(cfg_parse(config, "test config", c) == 0, "%s", mq_errmsg());
    random_model(c, m);
    q_options_default(o);
    o->method = method;
}

static void roundtrip(const char *config, q_method method, q_granularity g, int head) {
    mq_config c;
    mq_model m;
    q_options o;
    setup(config, method, &c, &m, &o);
    o.weight_gran = g;
    o.quantize_head = head >= 1;
    o.quantize_embedding = head == 2;
    o.percentile = 99.9;
    q_model qm;
    T_CHECK(q_quantize(&m, &STUB, &o, &qm) == 0, "%s", mq_errmsg());
    char name[64], out[600], cj[600], tj[600];
    snprintf(name, sizeof name, "src_m%d_%d_%d_%d", c.arch, method, g, head);
    art_provenance p;
    art_artifact a;
    int rc = write_read(name, config, &qm, &p, &a, out, cj, tj);
    if (rc == 0) {
        if (q_method_rotates_residual(method)) {
            T_CHECK(a.qm.resid_n == c.d_model && (head ? a.qm.lm_head_q.q != NULL : a.qm.lm_head != NULL), "rotated artifact: lm_head");
            /* the artifact's FP16 lm_head is (L diag(norm_f)) H: not the rotated embedding even when tied */
            if (!head) T_CHECK(memcmp(a.qm.lm_head, a.qm.embed, (size_t)c.vocab_size * c.d_model * 4) != 0, "lm_head == embedding");
        }
        T_CHECK(!strcmp(a.prov.source_hash, "0123abcd") && a.prov.calib_samples == 3 && a.prov.calib_tokens == 300, "provenance");
        T_CHECK(a.int8_params > 0 && a.model_bytes > a.int8_params, "sizes");
        T_CHECK(a.format_version == (head == 2 ? 2 : 1), "format_version %d", a.format_version);
        if (head == 2) {
            /* the forwards' table: the int8 embedding dequantized, rounded to FP16; a tied lm_head is that table */
            const size_t n = (size_t)c.vocab_size * c.d_model;
            float *deq = mq_malloc(n * sizeof *deq);
            q_weight_dequantize(&a.qm.embed_q, deq);
            q_round_f16(deq, n);
            T_CHECK(a.qm.embed_q.nscale == c.vocab_size && feq(deq, a.qm.embed, n), "embedding = FP16(int8 * row scale)");
            if (!q_head_untied(&c, method)) T_CHECK(weq(&a.qm.embed_q, &a.qm.lm_head_q), "tied lm_head is the int8 embedding");
            free(deq);
        }
        /* config.json: the source's fields and a quantization_config */
        char hp[700];
        snprintf(hp, sizeof hp, "%s/config.json", out);
        char *txt = mq_read_file(hp, NULL);
        cJSON *j = txt ? cJSON_Parse(txt) : NULL;
        const cJSON *qc = cJSON_GetObjectItem(j, "quantization_config");
        T_CHECK(cJSON_GetObjectItem(j, "model_type") && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(qc, "quant_method")), "mambaq") &&
                cJSON_GetNumberValue(cJSON_GetObjectItem(qc, "group_size")) == (g == Q_GRAN_CHANNEL ? -1 : 0) &&
                cJSON_IsTrue(cJSON_GetObjectItem(qc, "quantize_embedding")) == (head == 2),
                "config.json quantization_config: %s", txt ? txt : "");
        cJSON_Delete(j);
        free(txt);
        art_close(&a);
    }
    /* a second write without --force is refused, with --force it replaces */
    T_CHECK(art_write(out, &qm, &p, cj, tj, 0) != 0 && strstr(mq_errmsg(), "--force"), "refuse existing: %s", mq_errmsg());
    T_CHECK(art_write(out, &qm, &p, cj, tj, 1) == 0, "force: %s", mq_errmsg());
    T_CHECK(art_open(out, &a) == 0, "reopen: %s", mq_errmsg());
    art_close(&a);
    q_model_free(&qm);
    free_random_model(&m);
}

static void test_roundtrip_m1(void) {
    roundtrip(M1_CONFIG, Q_QUAMBA, Q_GRAN_TENSOR, 0);
    roundtrip(M1_CONFIG, Q_NAIVE, Q_GRAN_CHANNEL, 1);
    roundtrip(M1_CONFIG, Q_QUAMBA_ROT, Q_GRAN_TENSOR, 0);   /* tied source: the rotation unties */
    roundtrip(M1_CONFIG, Q_QUAMBA_ROT, Q_GRAN_CHANNEL, 1);
    roundtrip(M1_CONFIG, Q_QUAMBA, Q_GRAN_TENSOR, 2);       /* tied: one int8 table */
    roundtrip(M1_CONFIG, Q_QUAMBA_ROT, Q_GRAN_CHANNEL, 2);  /* the rotation unties: two */
}
static void test_roundtrip_m2(void) {
    roundtrip(M2_CONFIG, Q_QUAMBA, Q_GRAN_CHANNEL, 0);
    roundtrip(M2_CONFIG, Q_HADAMARD_ONLY, Q_GRAN_TENSOR, 1);
    roundtrip(M2_CONFIG, Q_PERCENTILE_ONLY, Q_GRAN_TENSOR, 0);
    roundtrip(M2_CONFIG, Q_QUAMBA_ROT, Q_GRAN_TENSOR, 0);   /* untied source */
    roundtrip(M2_CONFIG, Q_QUAMBA, Q_GRAN_TENSOR, 2);
}

/* ---- quamba2 (format version 3) ---- */

static const char *M2G2_CONFIG =
    "{\"model_type\": \"mamba2\", \"hidden_size\": 32, \"num_hidden_layers\": 2, \"vocab_size\": 80,"
    " \"num_heads\": 8, \"head_dim\": 8, \"n_groups\": 2, \"state_size\": 8, \"expand\": 2, \"chunk_size\": 16,"
    " \"conv_kernel\": 4, \"use_conv_bias\": true, \"use_bias\": false, \"tie_word_embeddings\": true,"
    " \"layer_norm_epsilon\": 1e-5, \"norm_before_gate\": false, \"rms_norm\": true}";

/* per-group absmax 1 + layer + 0.5 g (+ 0.25 for C); per-channel absmax varying with the channel */
static int stub_vector(void *ctx, int layer, mq_act_role role, const char *kind, float *v, int n) {
    for (int i = 0; i < n; i++)
        v[i] = !strcmp(kind, "group") ? 1.0f + (float)layer + 0.5f * (float)i + (role == MQ_ACT_C ? 0.25f : 0.0f)
                                      : 0.1f + 0.05f * (float)((i * 7) % 13) + (float)(i / 8 % 3);
    return 0;
}

static void q2_roundtrip(const char *config, int wbits, int abits, int group, int cluster, int groups, int head) {
    mq_config c;
    mq_model m;
    q_options o;
    setup(config, Q_QUAMBA2, &c, &m, &o);
    o.wbits = wbits, o.abits = abits, o.group_size = group, o.gptq = 0, o.cluster = cluster, o.state_groups = groups;
    o.quantize_head = head >= 1;
    o.quantize_embedding = head == 2;   /* the tied lm_head is then the int8 embedding, int8 however many bits */
    q_stats st = STUB;
    st.vector = stub_vector;
    q_model qm;
    T_CHECK(q_quantize(&m, &st, &o, &qm) == 0, "%s", mq_errmsg());
    for (int l = 0; l < c.n_layer && q_uses_state_groups(&c, &o); l++)
        for (int k = 0; k < 2; k++)
            for (int g = 0; g < c.n_groups; g++)
                T_CHECK(qm.layers[l].bc_scale[k][g] == qr_scale(1.0f + (float)l + 0.5f * (float)g + (k ? 0.25f : 0.0f)),
                        "layer %d %s group %d scale %g: not absmax / 127", l, k ? "C" : "B", g, (double)qm.layers[l].bc_scale[k][g]);
    T_CHECK(q_big_wbits(&o) == 8 || (qm.layers[0].in_proj.bits == 4 && qm.layers[0].out_proj.group == q_i4_group(&o, c.d_inner)), "int4 layout");
    char name[64], out[600], cj[600], tj[600];
    snprintf(name, sizeof name, "q2_m%d_%d_%d_%d_%d%d%d", c.arch, wbits, abits, group, cluster, groups, head);
    art_provenance p;
    art_artifact a;
    int rc = write_read(name, config, &qm, &p, &a, out, cj, tj);
    if (rc == 0) {
        const q_options *ao = &a.qm.opt;
        T_CHECK(a.format_version == 3 && ao->wbits == wbits && ao->abits == abits && ao->group_size == group && ao->cluster == cluster &&
                ao->state_groups == groups, "quamba2 options");
        int G = c.arch == MQ_MAMBA2 ? c.n_groups : 1;
        for (int l = 0; l < c.n_layer; l++) {
            const q_layer *x = &qm.layers[l], *y = &a.qm.layers[l];
            if (q_uses_cluster(&c, &o))
                T_CHECK(feq(x->x_scale, y->x_scale, (size_t)G * Q_XCL) && !memcmp(x->x_index, y->x_index, (size_t)c.d_inner),
                        "layer %d clustered ssm_x scales", l);
            else T_CHECK(!y->x_scale, "layer %d: no clustered scales", l);
            if (q_uses_state_groups(&c, &o))
                T_CHECK(feq(x->bc_scale[0], y->bc_scale[0], (size_t)c.n_groups) && feq(x->bc_scale[1], y->bc_scale[1], (size_t)c.n_groups),
                        "layer %d B / C scales", l);
        }
        T_CHECK(wbits == 8 ? a.int4_params == 0 : a.int4_params > 0, "int4 elements %zu", a.int4_params);
        art_close(&a);
    }
    q_model_free(&qm);
    free_random_model(&m);
}

static void test_quamba2_roundtrip(void) {
    q2_roundtrip(M2G2_CONFIG, 8, 8, 128, 1, 1, 0);
    q2_roundtrip(M2G2_CONFIG, 8, 8, 128, 0, 0, 1);
    q2_roundtrip(M2G2_CONFIG, 4, 8, 32, 1, 1, 1);     /* in_proj: one group a row; out_proj: two */
    q2_roundtrip(M2G2_CONFIG, 4, 16, 128, 1, 1, 1);   /* per row: 128 divides neither */
    q2_roundtrip(M1_CONFIG, 4, 8, 16, 1, 1, 0);
    q2_roundtrip(M1_CONFIG, 4, 16, -1, 0, 0, 1);
    q2_roundtrip(M1_CONFIG, 4, 16, 16, 1, 1, 2);      /* W4A16 with the int8 embedding: no lm_head input scale */
    q2_roundtrip(M2G2_CONFIG, 4, 8, 32, 1, 1, 2);
}

/* ---- corruption ---- */

static char good_dir[600], good_rot_dir[600];

/* An artifact of a random model of the tied Mamba1 config with method `method` (source files in the
 * scratch folder src_name), written into out; art_test_midwrite = hook during the write. art_write's rc. */
static int write_artifact(const char *out, const char *src_name, q_method method, int force, int (*hook)(const char *)) {
    mq_config c;
    cfg_parse(M1_CONFIG, "test config", &c);
    mq_model m;
    random_model(&c, &m);
    q_options o;
    q_options_default(&o);
    o.method = method;
    q_model qm;
    q_quantize(&m, &STUB, &o, &qm);
    const char *src = make_src(src_name, M1_CONFIG);
    char cj[600], tj[600];
    snprintf(cj, sizeof cj, "%s/config.json", src);
    snprintf(tj, sizeof tj, "%s/tokenizer.json", src);
    art_provenance p;
    prov(&p);
    art_test_midwrite = hook;
    int rc = art_write(out, &qm, &p, cj, tj, force);
    art_test_midwrite = NULL;
    q_model_free(&qm);
    free_random_model(&m);
    return rc;
}

/* A valid artifact with method `method`, written into dir once. */
static void make_artifact(char *dir, size_t n, const char *name, q_method method) {
    if (dir[0]) return;
    snprintf(dir, n, "%s/%s", t_tmpdir(), name);
    if (write_artifact(dir, "src_good", method, 1, NULL)) printf("    cannot write the %s artifact: %s\n", name, mq_errmsg());
}
static void make_good(void) { make_artifact(good_dir, sizeof good_dir, "good", Q_QUAMBA); }

/* Copy of the good artifact in dir `name`; model.safetensors rewritten with tensor `victim` changed
 * by `edit` (mode: 0 drop, 1 set first float to value, 2 reshape to [1]...). Returns the dir. */
enum { DROP, SETF, RESHAPE, RETYPE, EXTRA };
static const char *corrupt(const char *name, const char *victim, int mode, float value) {
    static char dir[700];
    char cmd[4000], path[800];
    make_good();
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dir, good_dir, dir);
    if (system(cmd) != 0) return dir;
    snprintf(path, sizeof path, "%s/model.safetensors", good_dir);
    st_file *f = st_open(path);
    st_writer *w = st_writer_new();
    st_writer_allow_nonfinite(w);   /* the damage may be a NaN or an Inf */
    st_writer_add_metadata(w, "format", ART_FORMAT);
    for (int i = 0; f && i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        int hit = !strcmp(t->name, victim);
        if (hit && mode == DROP) continue;
        void *data = mq_malloc(t->nbytes + 4);
        memcpy(data, t->data, t->nbytes);
        int64_t shape[MQ_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        int ndim = t->ndim;
        mq_dtype dt = t->dtype;
        if (hit && mode == SETF) memcpy(data, &value, 4);
        if (hit && mode == RESHAPE) shape[0] = 1, ndim = 1, shape[1] = 0;
        if (hit && mode == RETYPE) dt = MQ_I8;   /* reinterpret F32 bytes as I8 of 4x the count */
        if (hit && mode == RETYPE) shape[0] *= 4;
        st_writer_add(w, t->name, dt, ndim, shape, data);
        free(data);
    }
    if (mode == EXTRA) {
        int64_t one = 1;
        float v = 1;
        st_writer_add(w, victim, MQ_F32, 1, &one, &v);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_writer_write(w, path);
    st_writer_free(w);
    st_close(f);
    return dir;
}

/* art_open(dir) must fail with a message containing every needle. */
static void expect_fail(const char *dir, const char *n1, const char *n2) {
    art_artifact a;
    int rc = art_open(dir, &a);
    T_CHECK(rc != 0, "%s opened but should not", dir);
    if (rc == 0) { art_close(&a); return; }
    const char *msg = mq_errmsg();
    if (getenv("T_VERBOSE")) printf("    (expected error) %s\n", msg);
    T_CHECK(strstr(msg, n1) != NULL, "message lacks '%s': %s", n1, msg);
    T_CHECK(!n2 || strstr(msg, n2) != NULL, "message lacks '%s': %s", n2, msg);
}

static void test_good_opens(void) {
    make_good();
    art_artifact a;
    T_CHECK(art_open(good_dir, &a) == 0, "%s", mq_errmsg());
    art_close(&a);
}

static void test_missing_scale(void) {
    const char *t = "backbone.layers.1.mixer.x_proj.input_scale";
    expect_fail(corrupt("miss_scale", t, DROP, 0), t, "missing");
    const char *w = "backbone.layers.0.mixer.out_proj.weight_scale";
    expect_fail(corrupt("miss_wscale", w, DROP, 0), w, "model.safetensors");
    const char *q = "backbone.layers.0.mixer.in_proj.weight";
    expect_fail(corrupt("miss_weight", q, DROP, 0), q, "missing");
}

static void test_bad_scale_values(void) {
    const char *t = "backbone.layers.0.mixer.z_scale";
    expect_fail(corrupt("zero_scale", t, SETF, 0.0f), t, "> 0");
    expect_fail(corrupt("neg_scale", t, SETF, -1.0f), t, "> 0");
    expect_fail(corrupt("nan_scale", t, SETF, NAN), t, "finite");
    expect_fail(corrupt("inf_scale", "backbone.layers.1.mixer.in_proj.weight_scale", SETF, INFINITY),
                "backbone.layers.1.mixer.in_proj.weight_scale", "finite");
}

static void test_bad_shape_dtype(void) {
    const char *t = "backbone.layers.1.mixer.dt_proj.weight";
    expect_fail(corrupt("bad_shape", t, RESHAPE, 0), t, "shape");
    const char *s = "backbone.layers.1.mixer.out_proj.input_scale";
    expect_fail(corrupt("bad_dtype", s, RETYPE, 0), s, "dtype");
    expect_fail(corrupt("extra", "backbone.layers.0.mixer.bogus_scale", EXTRA, 0), "backbone.layers.0.mixer.bogus_scale", "unexpected");
}

/* Rewrite a field of quant_config.json in a copy of the artifact src. */
static const char *edit_config_of(const char *src, const char *name, const char *from, const char *to) {
    static char dir[700];
    char cmd[4000];
    snprintf(dir, sizeof dir, "%s/%s", t_tmpdir(), name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && sed -i 's/%s/%s/' '%s/quant_config.json'", dir, src, dir, from, to, dir);
    T_CHECK(system(cmd) == 0, "%s", cmd);
    return dir;
}
static const char *edit_config(const char *name, const char *from, const char *to) {
    make_good();
    return edit_config_of(good_dir, name, from, to);
}

/* quamba-rot artifacts whose quant_config.json does not fit: each refused, naming the field */
static void test_bad_rot_config(void) {
    make_artifact(good_rot_dir, sizeof good_rot_dir, "good_rot", Q_QUAMBA_ROT);
    art_artifact a;
    T_CHECK(art_open(good_rot_dir, &a) == 0, "%s", mq_errmsg());
    if (!t_checks_failed) {
        T_CHECK(a.qm.resid_n == 32 && a.qm.resid_m == 1 && a.qm.resid_k == 5 && a.qm.lm_head && a.qm.cfg.tie_embeddings, "rot fields");
        art_close(&a);
    }
    const char *g = good_rot_dir;
    /* the rotation's order is d_model's */
    expect_fail(edit_config_of(g, "rot_order", "\"order\":\t32", "\"order\":\t16"), "quant_config.json", "residual_rotation order 16");
    /* the method changed under a rotated artifact: quamba has no residual rotation */
    expect_fail(edit_config_of(g, "rot_meth", "\"method\":\t\"quamba-rot\"", "\"method\":\t\"quamba\""), "residual_rotation",
                "does not rotate");
    /* the rotation dropped from a quamba-rot artifact */
    expect_fail(edit_config_of(g, "rot_none", "\"residual_rotation\":\t{", "\"residual_rotation_\":\t{"), "residual_rotation", "quamba-rot");
    /* the lm_head claimed tied although the rotation unties it */
    expect_fail(edit_config_of(g, "rot_tied", "\"lm_head_tied_to_embedding\":\tfalse", "\"lm_head_tied_to_embedding\":\ttrue"),
                "lm_head_tied_to_embedding", "quamba-rot");
    expect_fail(edit_config_of(g, "rot_normf", "\"norm_f_fused_into_lm_head\":\ttrue", "\"norm_f_fused_into_lm_head\":\tfalse"),
                "norm_f_fused_into_lm_head", NULL);
    /* and a quamba artifact claiming an untied lm_head it does not carry */
    expect_fail(edit_config("q_untied", "\"lm_head_tied_to_embedding\":\ttrue", "\"lm_head_tied_to_embedding\":\tfalse"),
                "lm_head_tied_to_embedding", NULL);
    /* an artifact written before the field existed (quamba, no lm_head_tied_to_embedding) still opens */
    const char *old = edit_config("q_old", "\"lm_head_tied_to_embedding\":\ttrue,", "");
    T_CHECK(art_open(old, &a) == 0, "artifact without lm_head_tied_to_embedding: %s", mq_errmsg());
    if (!t_checks_failed) art_close(&a);
    /* written before the one arch spelling ("mamba") and with a verbatim config.json: still opens */
    old = edit_config("arch_old", "\"arch\":\t\"mamba1\"", "\"arch\":\t\"mamba\"");
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/config.json'", make_src("src_verbatim", M1_CONFIG), old);
    T_CHECK(system(cmd) == 0, "%s", cmd);
    T_CHECK(art_open(old, &a) == 0, "artifact with arch \"mamba\" and the source's config.json: %s", mq_errmsg());
    if (!t_checks_failed) art_close(&a);
}

static void test_bad_config(void) {
    expect_fail(edit_config("ver", "\"format_version\":\t1", "\"format_version\":\t7"), "quant_config.json", "format_version 7");
    expect_fail(edit_config("meth", "\"method\":\t\"quamba\"", "\"method\":\t\"gptq\""), "quant_config.json", "gptq");
    expect_fail(edit_config("fmt", "\"format\":\t\"mambaq-w8a8\"", "\"format\":\t\"other\""), "quant_config.json", "other");
    expect_fail(edit_config("gran", "\"weight_granularity\":\t\"tensor\"", "\"weight_granularity\":\t\"group\""), "quant_config.json", "group");
    /* quant_config says per-channel weights, the tensors hold per-tensor scales: shape mismatch */
    expect_fail(edit_config("gran2", "\"weight_granularity\":\t\"tensor\"", "\"weight_granularity\":\t\"channel\""), "weight_scale", "shape");
    /* a provenance count beyond any long (fuzz_artifact found the conversion undefined) */
    expect_fail(edit_config("samples", "\"samples\":\t[0-9]*", "\"samples\":\t7.7e81"), "quant_config.json", "is not a count");
    char cmd[800];
    const char *d = edit_config("notok", "x", "x");
    snprintf(cmd, sizeof cmd, "rm '%s/tokenizer.json'", d);
    T_CHECK(system(cmd) == 0, "rm");
    expect_fail(d, "tokenizer.json", "missing");
    d = edit_config("nomodel", "x", "x");
    snprintf(cmd, sizeof cmd, "rm '%s/model.safetensors'", d);
    T_CHECK(system(cmd) == 0, "rm");
    expect_fail(d, "model.safetensors", NULL);
}

/* ---- interrupted writes ---- */

static int fail_hook(const char *tmp) { return 1; }
static int kill_hook(const char *tmp) { raise(SIGKILL); return 0; }

static int count_siblings(const char *final) {
    /* entries named final.tmp.* or final.old.* left next to final */
    char cmd[4000];
    if ((size_t)snprintf(cmd, sizeof cmd, "ls -d '%s'.tmp.* '%s'.old.* 2>/dev/null | wc -l > '%s.count'", final, final, final) >= sizeof cmd)
        return -1;
    if (system(cmd) != 0) return -1;
    snprintf(cmd, sizeof cmd, "%s.count", final);
    char *s = mq_read_file(cmd, NULL);
    int n = s ? atoi(s) : -1;
    free(s);
    unlink(cmd);
    return n;
}

static void write_with_hook(const char *out, int (*hook)(const char *), int force, int *rc) {
    *rc = write_artifact(out, "src_int", Q_NAIVE, force, hook);
}

static void test_interrupted_injected(void) {
    char out[600];
    snprintf(out, sizeof out, "%s/interrupted", t_tmpdir());
    int rc;
    write_with_hook(out, fail_hook, 0, &rc);
    struct stat st;
    T_CHECK(rc != 0, "injected failure not reported");
    T_CHECK(stat(out, &st) != 0, "%s exists after a failed write", out);
    T_CHECK(count_siblings(out) == 0, "temporary directory left behind");
    /* replacing an existing artifact: a failure keeps the old one intact */
    make_good();
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", good_dir, out);
    T_CHECK(system(cmd) == 0, "cp");
    write_with_hook(out, fail_hook, 1, &rc);
    T_CHECK(rc != 0, "injected failure not reported (force)");
    art_artifact a;
    T_CHECK(art_open(out, &a) == 0, "old artifact damaged: %s", mq_errmsg());
    T_CHECK(a.qm.opt.method == Q_QUAMBA, "old artifact replaced");
    art_close(&a);
}

static void test_interrupted_killed(void) {
    char out[600];
    snprintf(out, sizeof out, "%s/killed", t_tmpdir());
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int rc;
        write_with_hook(out, kill_hook, 0, &rc);
        _exit(0);   /* not reached: the hook kills the process */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    T_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child was not killed mid-write (status %d)", status);
    struct stat st;
    T_CHECK(stat(out, &st) != 0, "%s exists after the writer was killed", out);
    expect_fail(out, "not an artifact directory", NULL);
    /* the killed writer's temporary directory is left as debris, never under the final name */
    T_CHECK(count_siblings(out) == 1, "expected the killed writer's temporary directory");
    /* the next write removes the debris of dead writers and completes */
    int rc;
    write_with_hook(out, NULL, 0, &rc);
    T_CHECK(rc == 0, "write after a killed writer: %s", mq_errmsg());
    T_CHECK(count_siblings(out) == 0, "debris of the killed writer left behind");
    art_artifact a;
    T_CHECK(art_open(out, &a) == 0, "%s", mq_errmsg());
    art_close(&a);
}

/* --force replaces artifacts only */
static void test_force_refuses_non_artifact(void) {
    char dir[600], f[700];
    snprintf(dir, sizeof dir, "%s/precious", t_tmpdir());
    mkdir(dir, 0755);
    snprintf(f, sizeof f, "%s/notes.txt", dir);
    write_text(f, "keep me");
    int rc;
    write_with_hook(dir, NULL, 1, &rc);
    T_CHECK(rc != 0 && strstr(mq_errmsg(), "not a mambaq artifact"), "replaced a non-artifact directory: %s", mq_errmsg());
    struct stat st;
    T_CHECK(stat(f, &st) == 0, "the directory's content was touched");
}

int main(void) {
    T_RUN(test_roundtrip_m1);
    T_RUN(test_roundtrip_m2);
    T_RUN(test_quamba2_roundtrip);
    T_RUN(test_good_opens);
    T_RUN(test_missing_scale);
    T_RUN(test_bad_scale_values);
    T_RUN(test_bad_shape_dtype);
    T_RUN(test_bad_config);
    T_RUN(test_bad_rot_config);
    T_RUN(test_interrupted_injected);
    T_RUN(test_interrupted_killed);
    T_RUN(test_force_refuses_non_artifact);
    return t_summary();
}
