/* Seed corpora for the fuzzers, made at build time (fuzz/seeds.sh runs this, then bin/mambaq for the
 * stats files and artifacts), so that git holds no binary seeds:
 *   seedgen base OUT SHARED REPO   tiny checkpoints (vocab 64) in OUT/work, the data the harnesses
 *                                  read (OUT/data: the real tokenizer.json, the shards beside the
 *                                  fuzzed index) and OUT/seeds/<harness>/ from the real files in
 *                                  SHARED (proxies, tokenizer, datasets) and REPO/tests/fixtures
 *   seedgen pack ARTDIR OUT        an artifact as fuzz_artifact reads it (three parts in one file)
 *   seedgen strip STATS OUT        a stats file without its .hist tensors (small seeds) */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/err.h"
#include "core/fio.h"
#include "core/st.h"
#include "tests/st_fill.h"

#define FZ_SEP "\n#--mambaq-fuzz-part--#\n"

static char out_root[2048];

static void put(const char *harness, const char *name, const void *data, size_t n) {
    char p[8192];
    snprintf(p, sizeof p, "%s/seeds/%s/%s", out_root, harness, name);
    if (mq_mkdir_parents(p) || mq_write_file_atomic(p, data, n)) mq_die("%s", mq_errmsg());
}

/* The whole file, or NULL (and a note) when absent: seeds from missing shared files are skipped. */
static char *get(const char *path, size_t *n) {
    char *s = mq_read_file(path, n);
    if (!s) fprintf(stderr, "seedgen: skipping %s\n", mq_errmsg());
    return s;
}

static void put_file(const char *harness, const char *name, const char *path) {
    size_t n;
    char *s = get(path, &n);
    if (s) put(harness, name, s, n);
    free(s);
}

/* gzip of data[n] (malloc'ed, *out_n). */
static unsigned char *gz(const void *data, size_t n, size_t *out_n) {
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK) mq_die("deflateInit2");
    size_t cap = deflateBound(&z, (uLong)n) + 64;
    unsigned char *out = mq_malloc(cap);
    z.next_in = (unsigned char *)data;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) mq_die("deflate");
    *out_n = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

/* data harness input: [format byte][replace byte] + file bytes */
static void put_data(const char *name, int fmt, int replace, const void *data, size_t n, int zip) {
    size_t zn = n;
    unsigned char *z = zip ? gz(data, n, &zn) : NULL;
    unsigned char *b = mq_malloc(zn + 2);
    b[0] = (unsigned char)fmt;
    b[1] = (unsigned char)replace;
    memcpy(b + 2, z ? z : data, zn);
    put("data", name, b, zn + 2);
    free(b);
    free(z);
}

/* ---- tiny checkpoints ---- */

/* Mamba1 (arch 1) or Mamba2 (arch 2), d_model 8, one layer, vocab 64: config.json and the tensors
 * into dir; nsplit 2 also writes them as two shards and their index into split_dir. */
static void tiny(const char *dir, int arch, const char *split_dir) {
    const int D = 8, E = 16, V = 64, K = 4, N = 4;
    char p[4096], js[1024];
    snprintf(p, sizeof p, "%s/config.json", dir);
    sf_tiny_config(js, sizeof js, arch, D, 1, V, N, arch == 1, arch == 2);   /* Mamba2: untied, with biases */
    if (mq_mkdir_parents(p) || mq_write_file_atomic(p, js, strlen(js))) mq_die("%s", mq_errmsg());
    put("config", arch == 1 ? "tiny1.json" : "tiny2.json", js, strlen(js));
    st_writer *w[3] = {st_writer_new(), st_writer_new(), st_writer_new()};   /* whole, shard 1, shard 2 */
    int P = arch == 1 ? 2 * E : 2 * E + 2 * N + 2, C = arch == 1 ? E : E + 2 * N;
    for (int s = 0; s < 3; s++) {
        st_writer *x = w[s];
        sf_rng = 0x243f6a8885a308d3ull + (uint64_t)arch;
        int first = s != 2, second = s != 1;   /* shard 1: embedding and norms; shard 2: the layer */
        if (first) sf_add(x, "backbone.embeddings.weight", 2, V, D, 0, 'r', 0.05f);
        else for (int i = 0; i < V * D; i++) sf_uniform(1);
        if (first) sf_add(x, "backbone.norm_f.weight", 1, D, 0, 0, 'c', 1.f);
        if (first && arch == 2) sf_add(x, "lm_head.weight", 2, V, D, 0, 'r', 0.05f);
        else if (arch == 2) for (int i = 0; i < V * D; i++) sf_uniform(1);
        if (!second) continue;
        sf_add(x, "backbone.layers.0.norm.weight", 1, D, 0, 0, 'c', 1.f);
        sf_add(x, "backbone.layers.0.mixer.in_proj.weight", 2, P, D, 0, 'r', 0.35f);
        if (arch == 2) sf_add(x, "backbone.layers.0.mixer.in_proj.bias", 1, P, 0, 0, 'r', 0.05f);
        sf_add(x, "backbone.layers.0.mixer.conv1d.weight", 3, C, 1, K, 'r', 0.5f);
        sf_add(x, "backbone.layers.0.mixer.conv1d.bias", 1, C, 0, 0, 'r', 0.1f);
        sf_add(x, "backbone.layers.0.mixer.out_proj.weight", 2, D, E, 0, 'r', 0.25f);
        if (arch == 2) sf_add(x, "backbone.layers.0.mixer.out_proj.bias", 1, D, 0, 0, 'r', 0.05f);
        if (arch == 1) {
            sf_add(x, "backbone.layers.0.mixer.x_proj.weight", 2, 2 + 2 * N, E, 0, 'r', 0.25f);
            sf_add(x, "backbone.layers.0.mixer.dt_proj.weight", 2, E, 2, 0, 'r', 0.5f);
            sf_add(x, "backbone.layers.0.mixer.dt_proj.bias", 1, E, 0, 0, 'c', -4.f);
            sf_add(x, "backbone.layers.0.mixer.A_log", 2, E, N, 0, 'a', 0);
            sf_add(x, "backbone.layers.0.mixer.D", 1, E, 0, 0, 'c', 1.f);
        } else {
            sf_add(x, "backbone.layers.0.mixer.dt_bias", 1, 2, 0, 0, 'c', -4.f);
            sf_add(x, "backbone.layers.0.mixer.A_log", 1, 2, 0, 0, 'a', 0);
            sf_add(x, "backbone.layers.0.mixer.D", 1, 2, 0, 0, 'c', 1.f);
            sf_add(x, "backbone.layers.0.mixer.norm.weight", 1, E, 0, 0, 'c', 1.f);
        }
    }
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (st_writer_write(w[0], p)) mq_die("%s", mq_errmsg());
    put_file("safetensors", arch == 1 ? "tiny1.safetensors" : "tiny2.safetensors", p);
    if (split_dir) {
        cJSON *idx = cJSON_CreateObject(), *wm = cJSON_AddObjectToObject(idx, "weight_map");
        cJSON_AddObjectToObject(idx, "metadata");
        for (int s = 1; s <= 2; s++) {
            snprintf(p, sizeof p, "%s/model-0000%d-of-00002.safetensors", split_dir, s);
            if (mq_mkdir_parents(p) || st_writer_write(w[s], p)) mq_die("%s", mq_errmsg());
            st_file *f = st_open(p);
            for (int i = 0; f && i < st_count(f); i++) cJSON_AddStringToObject(wm, st_get(f, i)->name, strrchr(p, '/') + 1);
            st_close(f);
        }
        char *t = cJSON_Print(idx);
        put("index", "tiny_split.json", t, strlen(t));
        free(t);
        cJSON_Delete(idx);
    }
    for (int s = 0; s < 3; s++) st_writer_free(w[s]);
}

/* Every dtype, a scalar, an empty tensor and metadata, with a NaN and an Inf (the reader's paths). */
static void all_dtypes(void) {
    float f32[4] = {1.5f, -2.25f, NAN, INFINITY};
    uint16_t f16[2] = {0x3c00, 0x7c00}, bf16[2] = {0x3f80, 0x7fc0};
    int8_t i8[3] = {-127, 0, 127};
    int32_t i32[1] = {7};
    int64_t i64[1] = {1LL << 40};
    uint8_t u8[2] = {0, 255};
    st_writer *w = st_writer_new();
    st_writer_allow_nonfinite(w);
    int64_t s4[] = {2, 2}, s2[] = {2}, s3[] = {3}, s1[] = {1}, s0[] = {0, 5};
    st_writer_add(w, "w.f32", MQ_F32, 2, s4, f32);
    st_writer_add(w, "w.f16", MQ_F16, 1, s2, f16);
    st_writer_add(w, "w.bf16", MQ_BF16, 1, s2, bf16);
    st_writer_add(w, "w.i8", MQ_I8, 1, s3, i8);
    st_writer_add(w, "w.i32", MQ_I32, 1, s1, i32);
    st_writer_add(w, "w.i64", MQ_I64, 1, s1, i64);
    st_writer_add(w, "w.u8", MQ_U8, 1, s2, u8);
    st_writer_add(w, "scalar", MQ_F32, 0, s1, f32);
    st_writer_add(w, "empty", MQ_F16, 2, s0, NULL);
    st_writer_add_metadata(w, "format", "pt");
    char p[4096];
    snprintf(p, sizeof p, "%s/work/all_dtypes.safetensors", out_root);
    if (mq_mkdir_parents(p) || st_writer_write(w, p)) mq_die("%s", mq_errmsg());
    st_writer_free(w);
    put_file("safetensors", "all_dtypes.safetensors", p);
}

/* The real tokenizer cut to its first `keep` ids and the merges among them, keeping every other
 * field (normalizer, pre-tokenizer, decoder, added tokens) as it is. */
static void small_tokenizer(const char *real, int keep) {
    size_t n;
    char *s = get(real, &n);
    if (!s) return;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    cJSON *model = cJSON_GetObjectItem(j, "model"), *vocab = cJSON_GetObjectItem(model, "vocab");
    cJSON *merges = cJSON_GetObjectItem(model, "merges"), *nv = cJSON_CreateObject(), *nm = cJSON_CreateArray(), *it;
    cJSON_ArrayForEach(it, vocab) if (it->valuedouble < keep) cJSON_AddNumberToObject(nv, it->string, it->valuedouble);
    cJSON_ArrayForEach(it, merges) {
        if (!cJSON_IsString(it)) continue;
        char a[512], b[512], ab[1024];
        const char *sp = strchr(it->valuestring, ' ');
        if (!sp || (size_t)(sp - it->valuestring) >= sizeof a || strlen(sp + 1) >= sizeof b) continue;
        snprintf(a, sizeof a, "%.*s", (int)(sp - it->valuestring), it->valuestring);
        snprintf(b, sizeof b, "%s", sp + 1);
        snprintf(ab, sizeof ab, "%s%s", a, b);
        if (cJSON_GetObjectItemCaseSensitive(nv, a) && cJSON_GetObjectItemCaseSensitive(nv, b) && cJSON_GetObjectItemCaseSensitive(nv, ab))
            cJSON_AddItemToArray(nm, cJSON_CreateString(it->valuestring));
    }
    cJSON_ReplaceItemInObject(model, "vocab", nv);
    cJSON_ReplaceItemInObject(model, "merges", nm);
    char *t = cJSON_PrintUnformatted(j);
    char name[64];
    snprintf(name, sizeof name, "real_first_%d.json", keep);
    put("tokenizer", name, t, strlen(t));
    free(t);
    cJSON_Delete(j);
}

static void base(const char *shared, const char *repo) {
    char p[4096], q[4096];
    /* data the harnesses read */
    snprintf(p, sizeof p, "%s/models/tokenizer.json", shared);
    size_t n;
    char *s = get(p, &n);
    if (!s) mq_die("seedgen: the encode harness needs %s", p);
    snprintf(q, sizeof q, "%s/data/tokenizer.json", out_root);
    if (mq_mkdir_parents(q) || mq_write_file_atomic(q, s, n)) mq_die("%s", mq_errmsg());
    free(s);
    snprintf(p, sizeof p, "%s/work/tiny1", out_root);
    snprintf(q, sizeof q, "%s/data/index", out_root);
    tiny(p, 1, q);
    snprintf(p, sizeof p, "%s/work/tiny2", out_root);
    tiny(p, 2, NULL);
    all_dtypes();
    /* token ids < 64 for calibrating the tiny models */
    int32_t ids[4096];
    for (int i = 0; i < 4096; i++) ids[i] = (int32_t)((sf_uniform(1) + 1) * 31.99f);
    snprintf(p, sizeof p, "%s/work/ids.bin", out_root);
    if (mq_write_file_atomic(p, ids, sizeof ids)) mq_die("%s", mq_errmsg());
    put_data("ids", 4, 0, ids, 256, 0);
    put_data("ids_gz", 5, 0, ids, 256, 1);

    /* real checkpoints: configs, index files, a shard's header with a little of its data */
    const char *px[] = {"mamba1-proxy", "mamba2-proxy"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/models/%s/config.json", shared, px[i]);
        snprintf(q, sizeof q, "%s.json", px[i]);
        put_file("config", q, p);
        snprintf(p, sizeof p, "%s/models/%s/model.safetensors.index.json", shared, px[i]);
        put_file("index", q, p);
        snprintf(p, sizeof p, "%s/models/%s/model-00002-of-00002.safetensors", shared, px[i]);
        if ((s = get(p, &n)) && n > 8) {
            uint64_t hl;
            memcpy(&hl, s, 8);
            size_t keep = hl < n - 8 ? 8 + (size_t)hl + (n - 8 - hl < 2048 ? n - 8 - hl : 2048) : n;
            snprintf(q, sizeof q, "%s_shard2_cut.safetensors", px[i]);
            put("safetensors", q, s, keep);
        }
        free(s);
    }
    const char *st_cfg = "{\"d_model\": 768, \"n_layer\": 24, \"vocab_size\": 50277, \"ssm_cfg\": {}, \"rms_norm\": true, "
                         "\"residual_in_fp32\": true, \"fused_add_norm\": true, \"pad_vocab_size_multiple\": 8}";
    put("config", "state_spaces_m1.json", st_cfg, strlen(st_cfg));
    st_cfg = "{\"d_model\": 2560, \"n_layer\": 64, \"vocab_size\": 50277, \"ssm_cfg\": {\"layer\": \"Mamba2\", \"dt_limit\": "
             "[0.0, Infinity]}, \"rms_norm\": true, \"tie_embeddings\": true, \"pad_vocab_size_multiple\": 16}";
    put("config", "state_spaces_m2.json", st_cfg, strlen(st_cfg));
    /* torch.save fixtures (and their shards beside the fuzzed index) */
    const char *pt[][2] = {{"mamba1-f32", "pytorch_model.bin"}, {"mamba2-f16", "pytorch_model.bin"},
                           {"mamba2-bf16-sharded", "pytorch_model-00001-of-00002.bin"},
                           {"mamba2-bf16-sharded", "pytorch_model-00002-of-00002.bin"}};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/tests/fixtures/pt/%s/%s", repo, pt[i][0], pt[i][1]);
        snprintf(q, sizeof q, "%s_%s", pt[i][0], pt[i][1]);
        put_file("torch", q, p);
        snprintf(q, sizeof q, "%s/tests/fixtures/pt/%s/config.json", repo, pt[i][0]);
        put_file("config", pt[i][0], q);
        if (i >= 2 && (s = get(p, &n))) {
            snprintf(q, sizeof q, "%s/data/index/%s", out_root, pt[i][1]);
            if (mq_write_file_atomic(q, s, n)) mq_die("%s", mq_errmsg());
            free(s);
        }
    }
    snprintf(p, sizeof p, "%s/tests/fixtures/pt/mamba2-bf16-sharded/pytorch_model.bin.index.json", repo);
    put_file("index", "pt_sharded.json", p);

    /* tokenizers */
    snprintf(p, sizeof p, "%s/models/tokenizer.json", shared);
    small_tokenizer(p, 400);
    small_tokenizer(p, 1200);
    const char *flags = "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
                        " \"decoder\": {\"type\": \"ByteLevel\"}, \"added_tokens\": ["
                        "  {\"id\": 6, \"content\": \"<m>\", \"lstrip\": true, \"rstrip\": true, \"single_word\": false, \"normalized\": false, \"special\": true},"
                        "  {\"id\": 7, \"content\": \"ab\", \"single_word\": true, \"normalized\": true, \"special\": false}],"
                        " \"model\": {\"type\": \"BPE\", \"unk_token\": \"x\", \"fuse_unk\": true, \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0120\": 2, "
                        "\"x\": 3, \"xa\": 4, \"\\u0120x\": 5}, \"merges\": [[\"x\", \"a\"], \"\\u0120 x\"]}}";
    put("tokenizer", "flags.json", flags, strlen(flags));

    /* texts: the datasets, the tokenizer stress fixture, JSON-lines */
    const char *texts[] = {"calib.txt", "valid.txt", "wikitext2-test.txt"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/datasets/%s", shared, texts[i]);
        if (!(s = get(p, &n))) continue;
        for (int k = 0; k < 3; k++) {
            size_t at = n / 3 * (size_t)k, len = n - at < 1500 ? n - at : 1500;
            snprintf(q, sizeof q, "%s_%d", texts[i], k);
            put("encode", q, s + at, len);
            if (k == 0) put_data(q, 0, 0, s + at, len, 0);
            if (k == 1) put_data(q, 2, 0, s + at, len, 1);
        }
        free(s);
    }
    snprintf(p, sizeof p, "%s/tests/fixtures/tok/stress.txt", repo);
    put_file("encode", "stress.txt", p);
    snprintf(p, sizeof p, "%s/datasets/lambada_1000.jsonl", shared);
    if ((s = get(p, &n))) {
        size_t cut = 0;
        for (int lines = 0; cut < n && lines < 3; cut++) lines += s[cut] == '\n';
        put_data("lambada3.jsonl", 1, 0, s, cut, 0);
        put_data("lambada3.jsonl.gz", 3, 0, s, cut, 1);
        put("encode", "lambada3.jsonl", s, cut);
        free(s);
    }
    const char *odd = "{\"text\": \"a\\u0000b\"}\n{\"text\": \"\\ud83d\\ude00 ok\"}\n\n{\"text\": \"tab\\tquote\\\" \\\\u0000\"}\n";
    put_data("escapes.jsonl", 1, 0, odd, strlen(odd), 0);
    const char bad_utf8[] = "valid then \xC3\x28 bad \xF0\x9F\x98 cut \xED\xA0\x80 surrogate \xFF";
    put_data("bad_utf8.txt", 0, 1, bad_utf8, sizeof bad_utf8 - 1, 0);
    put("encode", "bad_utf8.txt", bad_utf8, sizeof bad_utf8 - 1);
}

/* quant_config.json FZ_SEP config.json FZ_SEP model.safetensors */
static void pack(const char *art, const char *out) {
    const char *files[] = {"quant_config.json", "config.json", "model.safetensors"};
    size_t total = 0, n[3];
    char *part[3], p[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", art, files[i]);
        if (!(part[i] = mq_read_file(p, &n[i]))) mq_die("%s", mq_errmsg());
        total += n[i] + strlen(FZ_SEP);
    }
    char *buf = mq_malloc(total), *o = buf;
    for (int i = 0; i < 3; i++) {
        memcpy(o, part[i], n[i]);
        o += n[i];
        if (i < 2) { memcpy(o, FZ_SEP, strlen(FZ_SEP)); o += strlen(FZ_SEP); }
        free(part[i]);
    }
    if (mq_mkdir_parents(out) || mq_write_file_atomic(out, buf, (size_t)(o - buf))) mq_die("%s", mq_errmsg());
    free(buf);
}

/* The stats file without its histograms (the reader does not need them), metadata kept. */
static void strip(const char *in, const char *out) {
    static const char *keys[] = {"format", "format_version", "tool", "model.path", "model.arch", "model.config",
                                 "model.weights_sha256", "data.path", "data.sha256", "data.tokens", "calib.samples",
                                 "calib.seqlen", "calib.percentiles", "calib.seed", "calib.transforms"};
    st_file *f = st_open(in);
    if (!f) mq_die("%s", mq_errmsg());
    st_writer *w = st_writer_new();
    st_writer_allow_nonfinite(w);
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        if (st_metadata(f, keys[k])) st_writer_add_metadata(w, keys[k], st_metadata(f, keys[k]));
    for (int i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        size_t l = strlen(t->name);
        if (l > 5 && !strcmp(t->name + l - 5, ".hist")) continue;
        if (st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data)) mq_die("%s", mq_errmsg());
    }
    if (mq_mkdir_parents(out) || st_writer_write(w, out)) mq_die("%s", mq_errmsg());
    st_writer_free(w);
    st_close(f);
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "base")) {
        snprintf(out_root, sizeof out_root, "%s", argv[2]);
        base(argv[3], argv[4]);
    } else if (argc == 4 && !strcmp(argv[1], "pack")) {
        pack(argv[2], argv[3]);
    } else if (argc == 4 && !strcmp(argv[1], "strip")) {
        strip(argv[2], argv[3]);
    } else {
        fprintf(stderr, "usage: seedgen base OUT SHARED REPO | pack ARTDIR OUT | strip STATS OUT\n");
        return 2;
    }
    return 0;
}
