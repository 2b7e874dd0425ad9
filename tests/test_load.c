/* Tests of ssm_load: both shared proxies (dimensions, values against the raw checkpoint and against
 * numbers read independently with Python's struct), tiny random Mamba1/Mamba2 checkpoints written
 * here in the transformers and state-spaces layouts and in F32/F16/BF16 that must load back to the
 * same values, and broken checkpoints (missing, extra, mis-shaped, non-float tensors). */
#include "tests/test.h"
#include "core/err.h"
#include "core/st.h"
#include "ssm/model.h"
#include <cjson/cJSON.h>
#include <stdint.h>

/* ---- proxies ---- */

/* Every element of the loaded array equals the checkpoint tensor converted to FP32. */
static void check_same(const st_file *f, const char *name, const float *loaded) {
    const st_tensor *t = st_find(f, name);
    T_CHECK(t != NULL, "%s in checkpoint", name);
    if (!t || !loaded) return;
    float *want = malloc((size_t)t->numel * sizeof *want);
    st_to_f32(t, want);
    T_CHECK(!memcmp(want, loaded, (size_t)t->numel * sizeof *want), "%s: loaded values differ from the checkpoint", name);
    free(want);
}

static void test_proxy_mamba1(void) {
    T_NEED_SHARED(dir, "models/mamba1-proxy");
    mq_model m;
    T_CHECK(ssm_load(dir, &m) == 0, "%s", mq_errmsg());
    if (!m.arena) return;
    const mq_config *c = &m.cfg;
    T_CHECK(c->arch == MQ_MAMBA1 && c->n_layer == 24 && c->vocab_size == 50280 && c->d_inner == 384, "cfg");
    T_CHECK(m.lm_head == m.embed, "tied lm_head");
    T_CHECK(((uintptr_t)m.arena & 63) == 0 && ((uintptr_t)m.layers[7].in_proj & 63) == 0, "64-byte aligned arrays");
    /* values read with Python's struct.unpack('<e') from the shards */
    T_CHECK(m.embed[0] == 0.243896484375f && m.embed[1] == -0.181640625f, "embed[0..1] %g %g", m.embed[0], m.embed[1]);
    T_CHECK(m.norm_f[0] == 1.4619140625f && m.norm_f[2] == 1.46484375f, "norm_f");
    T_CHECK(m.layers[3].A_log[0] == -0.02801513671875f && m.layers[3].A_log[2] == 1.017578125f, "A_log");
    T_CHECK(m.layers[0].D[0] == 0.97265625f, "D");
    /* A = -exp(A_log), within float rounding */
    T_NEAR(m.layers[3].A[1], -exp(0.61572265625), 1e-6, "A[1]");
    T_CHECK(m.layers[0].in_proj_b == NULL && m.layers[0].out_proj_b == NULL && m.layers[0].conv_b != NULL, "biases");
    T_CHECK(m.layers[0].dt_bias == NULL && m.layers[0].gnorm_w == NULL, "no Mamba2 fields");
    st_file *f = st_open(dir);
    if (f) {
        check_same(f, "backbone.embeddings.weight", m.embed);
        check_same(f, "backbone.layers.5.mixer.in_proj.weight", m.layers[5].in_proj);
        check_same(f, "backbone.layers.23.mixer.x_proj.weight", m.layers[23].x_proj);
        check_same(f, "backbone.layers.23.mixer.dt_proj.weight", m.layers[23].dt_proj);
        check_same(f, "backbone.layers.23.mixer.dt_proj.bias", m.layers[23].dt_proj_b);
        check_same(f, "backbone.layers.11.mixer.conv1d.weight", m.layers[11].conv_w);
        check_same(f, "backbone.layers.11.mixer.conv1d.bias", m.layers[11].conv_b);
        check_same(f, "backbone.layers.0.mixer.out_proj.weight", m.layers[0].out_proj);
        st_close(f);
    }
    ssm_free(&m);
    T_CHECK(m.arena == NULL && m.layers == NULL, "ssm_free clears");
}

static void test_proxy_mamba2(void) {
    T_NEED_SHARED(dir, "models/mamba2-proxy");
    mq_model m;
    T_CHECK(ssm_load(dir, &m) == 0, "%s", mq_errmsg());
    if (!m.arena) return;
    const mq_config *c = &m.cfg;
    T_CHECK(c->arch == MQ_MAMBA2 && c->n_layer == 20 && c->n_heads == 6 && c->d_state == 64, "cfg");
    T_CHECK(m.lm_head == m.embed, "tied lm_head");
    T_CHECK(m.embed[0] == -0.0232696533203125f && m.norm_f[1] == 1.6171875f, "embed, norm_f");
    T_CHECK(m.layers[3].A_log[0] == 0.06365966796875f && m.layers[3].A_log[2] == 1.1494140625f, "A_log");
    T_CHECK(m.layers[0].D[0] == 1.037109375f && m.layers[0].D[2] == 0.955078125f, "D");
    for (int h = 0; h < 6; h++) T_NEAR(m.layers[3].A[h], -exp((double)m.layers[3].A_log[h]), 1e-6 * exp((double)m.layers[3].A_log[h]), "A");
    T_CHECK(m.layers[0].x_proj == NULL && m.layers[0].dt_proj == NULL, "no Mamba1 fields");
    st_file *f = st_open(dir);
    if (f) {
        check_same(f, "backbone.layers.19.mixer.in_proj.weight", m.layers[19].in_proj);
        check_same(f, "backbone.layers.19.mixer.dt_bias", m.layers[19].dt_bias);
        check_same(f, "backbone.layers.19.mixer.norm.weight", m.layers[19].gnorm_w);
        check_same(f, "backbone.layers.4.mixer.conv1d.weight", m.layers[4].conv_w);
        check_same(f, "backbone.layers.4.norm.weight", m.layers[4].norm_w);
        check_same(f, "backbone.norm_f.weight", m.norm_f);
        st_close(f);
    }
    ssm_free(&m);
}

/* ---- tiny checkpoints written by the test ---- */

typedef struct {
    char name[128];
    int ndim;
    int64_t shape[3];
    float *v;          /* values as stored (already rounded to the stored dtype) */
} tt;

typedef struct {
    tt t[128];
    int n;
} tt_list;

static uint32_t rng = 12345;
static float frand(float lo, float hi) {
    rng = rng * 1664525u + 1013904223u;
    return lo + (hi - lo) * (float)(rng >> 8) / (float)(1 << 24);
}

static void tt_add(tt_list *l, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, mq_dtype dt) {
    tt *t = &l->t[l->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0; t->shape[1] = d1; t->shape[2] = d2;
    int64_t n = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    t->v = malloc((size_t)n * sizeof *t->v);
    int is_alog = strstr(name, "A_log") != NULL;
    for (int64_t i = 0; i < n; i++) {
        float x = is_alog ? frand(0, 2.5f) : frand(-1, 1);
        t->v[i] = dt == MQ_F16 ? st_f16_to_f32(st_f32_to_f16(x)) : dt == MQ_BF16 ? st_bf16_to_f32(st_f32_to_bf16(x)) : x;
    }
}

/* The tensors of a small model, spelled out here independently of the loader. */
static void tiny_tensors(tt_list *l, int arch, int state_spaces, int tie, int bias, int rows, mq_dtype dt) {
    const int D = 16, L = 2, Di = 32, K = 4;
    char nm[128];
    l->n = 0;
    tt_add(l, state_spaces ? "backbone.embedding.weight" : "backbone.embeddings.weight", 2, rows, D, 0, dt);
    tt_add(l, "backbone.norm_f.weight", 1, D, 0, 0, dt);
    if (!tie) tt_add(l, "lm_head.weight", 2, rows, D, 0, dt);
    for (int i = 0; i < L; i++) {
#define T(suffix, ...) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", i, suffix), tt_add(l, nm, __VA_ARGS__, dt))
        T("norm.weight", 1, D, 0, 0);
        if (arch == 1) {
            const int N = 8, R = 3;
            T("mixer.in_proj.weight", 2, 2 * Di, D, 0);
            if (bias) T("mixer.in_proj.bias", 1, 2 * Di, 0, 0);
            T("mixer.conv1d.weight", 3, Di, 1, K);
            T("mixer.conv1d.bias", 1, Di, 0, 0);
            T("mixer.x_proj.weight", 2, R + 2 * N, Di, 0);
            T("mixer.dt_proj.weight", 2, Di, R, 0);
            T("mixer.dt_proj.bias", 1, Di, 0, 0);
            T("mixer.A_log", 2, Di, N, 0);
            T("mixer.D", 1, Di, 0, 0);
        } else {
            const int N = 8, G = 2, H = 4, C = Di + 2 * G * N;
            T("mixer.in_proj.weight", 2, 2 * Di + 2 * G * N + H, D, 0);
            if (bias) T("mixer.in_proj.bias", 1, 2 * Di + 2 * G * N + H, 0, 0);
            T("mixer.conv1d.weight", 3, C, 1, K);
            T("mixer.conv1d.bias", 1, C, 0, 0);
            T("mixer.dt_bias", 1, H, 0, 0);
            T("mixer.A_log", 1, H, 0, 0);
            T("mixer.D", 1, H, 0, 0);
            T("mixer.norm.weight", 1, Di, 0, 0);
        }
        T("mixer.out_proj.weight", 2, D, Di, 0);
        if (bias) T("mixer.out_proj.bias", 1, D, 0, 0);
#undef T
    }
}

static void tt_free(tt_list *l) {
    for (int i = 0; i < l->n; i++) free(l->t[i].v);
    l->n = 0;
}

static const char *tiny_config(int arch, int state_spaces, int tie, int bias) {
    static char js[1024];
    if (state_spaces)
        snprintf(js, sizeof js, "{\"d_model\": 16, \"n_layer\": 2, \"vocab_size\": 37, \"pad_vocab_size_multiple\": 8, "
                 "\"tie_embeddings\": %s, \"ssm_cfg\": {\"layer\": \"Mamba%d\", \"d_state\": 8, \"expand\": 2, \"dt_rank\": 3, "
                 "\"headdim\": 8, \"ngroups\": 2, \"bias\": %s}}", tie ? "true" : "false", arch, bias ? "true" : "false");
    else if (arch == 1)
        snprintf(js, sizeof js, "{\"model_type\": \"mamba\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"vocab_size\": 37, "
                 "\"state_size\": 8, \"intermediate_size\": 32, \"time_step_rank\": 3, \"tie_word_embeddings\": %s, \"use_bias\": %s}",
                 tie ? "true" : "false", bias ? "true" : "false");
    else
        snprintf(js, sizeof js, "{\"model_type\": \"mamba2\", \"hidden_size\": 16, \"num_hidden_layers\": 2, \"vocab_size\": 37, "
                 "\"num_heads\": 4, \"head_dim\": 8, \"n_groups\": 2, \"state_size\": 8, \"tie_word_embeddings\": %s, "
                 "\"use_bias\": %s}", tie ? "true" : "false", bias ? "true" : "false");
    return js;
}

/* Writes dir/config.json and the tensors (as one file, or two shards and an index). skip: a name
 * to leave out; extra: one more tensor to add. */
static void write_tiny(const char *dir, const char *config, const tt_list *l, mq_dtype dt, int sharded,
                       const char *skip, const char *extra) {
    char path[1024], cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0) exit(2);
    snprintf(path, sizeof path, "%s/config.json", dir);
    mq_write_file_atomic(path, config, strlen(config));
    st_writer *w[2] = {st_writer_new(), st_writer_new()};
    char index[16384];
    size_t k = (size_t)snprintf(index, sizeof index, "{\"metadata\": {}, \"weight_map\": {");
    int first = 1;
    /* written in reverse order so that nothing depends on the order of the header */
    for (int i = l->n - 1; i >= 0; i--) {
        const tt *t = &l->t[i];
        if (skip && !strcmp(t->name, skip)) continue;
        int64_t n = t->shape[0] * (t->ndim > 1 ? t->shape[1] : 1) * (t->ndim > 2 ? t->shape[2] : 1);
        void *buf = malloc((size_t)n * 4);
        for (int64_t j = 0; j < n; j++) {
            if (dt == MQ_F32) ((float *)buf)[j] = t->v[j];
            else ((uint16_t *)buf)[j] = dt == MQ_F16 ? st_f32_to_f16(t->v[j]) : st_f32_to_bf16(t->v[j]);
        }
        int shard = sharded && i % 2;
        st_writer_add(w[shard], t->name, dt, t->ndim, t->shape, buf);
        free(buf);
        k += (size_t)snprintf(index + k, sizeof index - k, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"", first ? "" : ", ",
                              t->name, shard + 1);
        first = 0;
    }
    if (extra) {
        float z[2] = {0, 0};
        int64_t s[1] = {2};
        st_writer_add(w[0], extra, MQ_F32, 1, s, z);
        k += (size_t)snprintf(index + k, sizeof index - k, ", \"%s\": \"model-00001-of-00002.safetensors\"", extra);
    }
    snprintf(index + k, sizeof index - k, "}}");
    if (sharded) {
        for (int s = 0; s < 2; s++) {
            snprintf(path, sizeof path, "%s/model-0000%d-of-00002.safetensors", dir, s + 1);
            T_CHECK(st_writer_write(w[s], path) == 0, "%s", mq_errmsg());
        }
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        mq_write_file_atomic(path, index, strlen(index));
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        T_CHECK(st_writer_write(w[0], path) == 0, "%s", mq_errmsg());
    }
    st_writer_free(w[0]);
    st_writer_free(w[1]);
}

/* The loaded array for a checkpoint name (NULL if the model has no such field). */
static const float *loaded(const mq_model *m, const char *name) {
    if (!strcmp(name, "backbone.embeddings.weight") || !strcmp(name, "backbone.embedding.weight")) return m->embed;
    if (!strcmp(name, "backbone.norm_f.weight")) return m->norm_f;
    if (!strcmp(name, "lm_head.weight")) return m->lm_head;
    int i, off = 0;
    if (sscanf(name, "backbone.layers.%d.%n", &i, &off) != 1 || !off || i < 0 || i >= m->cfg.n_layer) return NULL;
    const mq_layer *L = &m->layers[i];
    const char *s = name + off;
    const struct { const char *suffix; const float *p; } f[] = {
        {"norm.weight", L->norm_w}, {"mixer.in_proj.weight", L->in_proj}, {"mixer.in_proj.bias", L->in_proj_b},
        {"mixer.conv1d.weight", L->conv_w}, {"mixer.conv1d.bias", L->conv_b}, {"mixer.out_proj.weight", L->out_proj},
        {"mixer.out_proj.bias", L->out_proj_b}, {"mixer.A_log", L->A_log}, {"mixer.D", L->D},
        {"mixer.x_proj.weight", L->x_proj}, {"mixer.dt_proj.weight", L->dt_proj}, {"mixer.dt_proj.bias", L->dt_proj_b},
        {"mixer.dt_bias", L->dt_bias}, {"mixer.norm.weight", L->gnorm_w},
    };
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++)
        if (!strcmp(s, f[k].suffix)) return f[k].p;
    return NULL;
}

static void test_tiny_roundtrip(void) {
    const mq_dtype dts[3] = {MQ_F32, MQ_F16, MQ_BF16};
    int cases = 0;
    for (int arch = 1; arch <= 2; arch++)
        for (int ss = 0; ss <= 1; ss++)
            for (int d = 0; d < 3; d++) {
                /* vary tying, biases and sharding across the cases */
                int tie = (d != 1), bias = (d == 2), sharded = (d == 1);
                char dir[512];
                snprintf(dir, sizeof dir, "%s/tiny-m%d-%s-%s", t_tmpdir(), arch, ss ? "ss" : "hf", mq_dtype_name(dts[d]));
                tt_list l;
                /* state-spaces: vocab 37 padded to 40 by the config; transformers: 40 rows > vocab 37 */
                tiny_tensors(&l, arch, ss, tie, bias, 40, dts[d]);
                write_tiny(dir, tiny_config(arch, ss, tie, bias), &l, dts[d], sharded, NULL, NULL);
                mq_model m;
                int rc = ssm_load(dir, &m);
                T_CHECK(rc == 0, "%s: %s", dir, mq_errmsg());
                if (rc) { tt_free(&l); continue; }
                cases++;
                T_CHECK(m.cfg.vocab_size == 40 && m.cfg.arch == (mq_arch)arch, "%s: vocab %d", dir, m.cfg.vocab_size);
                T_CHECK(tie ? m.lm_head == m.embed : m.lm_head != m.embed, "%s: tying", dir);
                for (int i = 0; i < l.n; i++) {
                    const tt *t = &l.t[i];
                    const float *p = loaded(&m, t->name);
                    int64_t n = t->shape[0] * (t->ndim > 1 ? t->shape[1] : 1) * (t->ndim > 2 ? t->shape[2] : 1);
                    T_CHECK(p && !memcmp(p, t->v, (size_t)n * 4), "%s: %s loads back exactly", dir, t->name);
                    if (p && strstr(t->name, "A_log")) {
                        int li = 0;
                        sscanf(t->name, "backbone.layers.%d.", &li);
                        const float *A = m.layers[li].A;
                        int bad = 0;
                        for (int64_t j = 0; j < n; j++) bad += fabsf(A[j] + expf(t->v[j])) > 1e-6f * expf(t->v[j]);
                        T_CHECK(bad == 0, "%s: A = -exp(A_log)", t->name);
                    }
                }
                if (!bias) T_CHECK(m.layers[1].in_proj_b == NULL && m.layers[1].out_proj_b == NULL, "no bias when use_bias is false");
                ssm_free(&m);
                tt_free(&l);
            }
    T_CHECK(cases == 12, "%d of 12 cases loaded", cases);
}

/* ssm_load(dir) must fail with a message containing each of the given strings. */
static void expect_load_fail(const char *dir, const char *a, const char *b, const char *c) {
    mq_model m;
    mq_clear_error();
    T_CHECK(ssm_load(dir, &m) == -1, "%s should not load", dir);
    const char *s[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (s[i]) T_CHECK(strstr(mq_errmsg(), s[i]) != NULL, "message has '%s': %s", s[i], mq_errmsg());
}

static void test_bad_checkpoints(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/tiny-bad", t_tmpdir());
    tt_list l;
    char cfg1[1024]; /* tiny_config's buffer is reused by later calls */
    snprintf(cfg1, sizeof cfg1, "%s", tiny_config(1, 0, 1, 0));

    tiny_tensors(&l, 1, 0, 1, 0, 40, MQ_F16);
    write_tiny(dir, cfg1, &l, MQ_F16, 0, "backbone.layers.1.mixer.dt_proj.bias", NULL);
    expect_load_fail(dir, "model.safetensors", "missing tensor 'backbone.layers.1.mixer.dt_proj.bias'", "expected shape [32]");

    write_tiny(dir, cfg1, &l, MQ_F16, 1, NULL, "backbone.layers.0.mixer.surprise");
    expect_load_fail(dir, "model.safetensors.index.json", "unexpected tensor", "'backbone.layers.0.mixer.surprise'");
    tt_free(&l);

    /* x_proj as if d_state were 7 */
    tiny_tensors(&l, 1, 0, 1, 0, 40, MQ_F32);
    for (int i = 0; i < l.n; i++)
        if (!strcmp(l.t[i].name, "backbone.layers.1.mixer.x_proj.weight")) l.t[i].shape[0] = 17;
    write_tiny(dir, cfg1, &l, MQ_F32, 0, NULL, NULL);
    expect_load_fail(dir, "backbone.layers.1.mixer.x_proj.weight", "expected shape [19, 32]", "found [17, 32]");
    tt_free(&l);

    /* embedding with fewer rows than the vocabulary */
    tiny_tensors(&l, 2, 0, 1, 0, 30, MQ_F32);
    write_tiny(dir, tiny_config(2, 0, 1, 0), &l, MQ_F32, 0, NULL, NULL);
    expect_load_fail(dir, "backbone.embeddings.weight", "expected shape [37, 16]", "found [30, 16]");
    tt_free(&l);

    /* untied config without lm_head; a Mamba1 config over Mamba2 tensors */
    tiny_tensors(&l, 2, 1, 1, 0, 40, MQ_BF16);
    write_tiny(dir, tiny_config(2, 1, 0, 0), &l, MQ_BF16, 0, NULL, NULL);
    expect_load_fail(dir, "model.safetensors", "missing tensor 'lm_head.weight'", NULL);
    write_tiny(dir, tiny_config(1, 1, 1, 0), &l, MQ_BF16, 0, NULL, NULL);
    expect_load_fail(dir, "backbone.layers.0.mixer.in_proj.weight", "expected shape [64, 16]", "found [100, 16]");
    /* a config whose bias flag the checkpoint does not follow */
    write_tiny(dir, tiny_config(2, 1, 1, 1), &l, MQ_BF16, 0, NULL, NULL);
    expect_load_fail(dir, "missing tensor", "in_proj.bias", NULL);
    tt_free(&l);

    /* no embedding at all, and a non-float tensor */
    tiny_tensors(&l, 1, 0, 1, 0, 40, MQ_F32);
    write_tiny(dir, cfg1, &l, MQ_F32, 0, "backbone.embeddings.weight", NULL);
    expect_load_fail(dir, "model.safetensors", "no embedding", NULL);
    tt_free(&l);
    {
        char path[600];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        tiny_tensors(&l, 1, 0, 1, 0, 40, MQ_F32);
        write_tiny(dir, cfg1, &l, MQ_F32, 0, NULL, NULL);
        st_file *f = st_open(path);
        st_writer *w = st_writer_new();
        for (int i = 0; f && i < st_count(f); i++) {
            const st_tensor *t = st_get(f, i);
            int is_d = !strcmp(t->name, "backbone.layers.0.mixer.D");
            int8_t q[32] = {0};
            st_writer_add(w, t->name, is_d ? MQ_I8 : t->dtype, t->ndim, t->shape, is_d ? (const void *)q : t->data);
        }
        st_close(f);
        st_writer_write(w, path);
        st_writer_free(w);
        expect_load_fail(dir, "backbone.layers.0.mixer.D", "dtype I8", NULL);
        tt_free(&l);
    }

    /* bad config, no checkpoint */
    expect_load_fail("/nonexistent-model-dir", "/nonexistent-model-dir/config.json", NULL, NULL);
    char cmd[1200], path[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0) return;
    snprintf(path, sizeof path, "%s/config.json", dir);
    mq_write_file_atomic(path, cfg1, strlen(cfg1));
    expect_load_fail(dir, "no model.safetensors", NULL, NULL);
    snprintf(path, sizeof path, "%s/pytorch_model.bin", dir);
    mq_write_file_atomic(path, "PK", 2);
    expect_load_fail(dir, "pytorch_model.bin", "too short for a zip archive", NULL);
}

/* torch.save checkpoints in the state-spaces layout (tests/fixtures/pt, made with torch by
 * tools/ref/gen_pt_fixtures.py): every tensor matches expect.json (dtype, shape, first values
 * exactly, the double sum to rounding), and the model loads with the padded vocabulary. */
static void test_pytorch_bin_models(void) {
    const struct { const char *dir; int arch, vocab, tied; } fx[] = {
        {"tests/fixtures/pt/mamba1-f32", 1, 40, 1},
        {"tests/fixtures/pt/mamba2-f16", 2, 48, 0},
        {"tests/fixtures/pt/mamba2-bf16-sharded", 2, 48, 0},
    };
    for (int k = 0; k < 3; k++) {
        char path[512];
        snprintf(path, sizeof path, "%s/expect.json", fx[k].dir);
        char *text = mq_read_file(path, NULL);
        T_CHECK(text != NULL, "%s", mq_errmsg());
        cJSON *ex = text ? cJSON_Parse(text) : NULL;
        free(text);
        const cJSON *tensors = cJSON_GetObjectItemCaseSensitive(ex, "tensors");
        st_file *f = st_open(fx[k].dir);
        T_CHECK(f && tensors, "%s: %s", fx[k].dir, mq_errmsg());
        if (!f || !tensors) { st_close(f); cJSON_Delete(ex); continue; }
        T_CHECK(st_count(f) == cJSON_GetArraySize(tensors), "%s: %d tensors", fx[k].dir, st_count(f));
        for (const cJSON *e = tensors->child; e; e = e->next) {
            const st_tensor *t = st_find(f, e->string);
            T_CHECK(t != NULL, "%s: %s present", fx[k].dir, e->string);
            if (!t) continue;
            const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape"), *head = cJSON_GetObjectItemCaseSensitive(e, "head");
            T_CHECK(!strcmp(mq_dtype_name(t->dtype), cJSON_GetObjectItemCaseSensitive(e, "dtype")->valuestring), "%s dtype", t->name);
            int ok = t->ndim == cJSON_GetArraySize(shape), d = 0;
            for (const cJSON *s = shape->child; ok && s; s = s->next, d++) ok = t->shape[d] == (int64_t)s->valuedouble;
            T_CHECK(ok, "%s shape", t->name);
            float *v = malloc((size_t)t->numel * sizeof *v);
            T_CHECK(st_to_f32(t, v) == 0, "%s", mq_errmsg());
            double sum = 0, want = cJSON_GetObjectItemCaseSensitive(e, "sum")->valuedouble;
            for (int64_t i = 0; i < t->numel; i++) sum += v[i];
            T_NEAR(sum, want, 1e-12 * (1 + fabs(want)) * t->numel, t->name);
            int i = 0;
            for (const cJSON *hv = head->child; hv; hv = hv->next, i++) T_CHECK(v[i] == (float)hv->valuedouble, "%s[%d]", t->name, i);
            free(v);
        }
        st_close(f);
        cJSON_Delete(ex);
        mq_model m;
        T_CHECK(ssm_load(fx[k].dir, &m) == 0, "%s: %s", fx[k].dir, mq_errmsg());
        if (!m.arena) continue;
        T_CHECK((int)m.cfg.arch == fx[k].arch && m.cfg.vocab_size == fx[k].vocab && (m.lm_head == m.embed) == fx[k].tied,
                "%s: arch %d vocab %d", fx[k].dir, m.cfg.arch, m.cfg.vocab_size);
        ssm_free(&m);
    }
}

int main(void) {
    T_RUN(test_proxy_mamba1);
    T_RUN(test_proxy_mamba2);
    T_RUN(test_tiny_roundtrip);
    T_RUN(test_bad_checkpoints);
    T_RUN(test_pytorch_bin_models);
    return t_summary();
}
