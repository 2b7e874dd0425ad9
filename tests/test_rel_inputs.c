/* Reliability against hostile or careless inputs, through bin/mambaq (the issue "no crash, no lost
 * file, no silent nonsense on any input"): each malformed checkpoint, artifact, tokenizer, config,
 * stats or data file is made here, and each command must refuse it with a message naming the file
 * and the problem, quickly, without crashing. Needs bin/mambaq and ../shared (tokenizer, data,
 * proxies); the models are a tiny random checkpoint written here and links to the proxies. */
#include <signal.h>
#include <time.h>
#include "core/fio.h"
#include "core/hash.h"
#include "tests/test_cli.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* A copy of the tiny artifact named name; returns its model.safetensors path (static). */
static const char *art_copy(const char *name, char *dir, size_t n) {
    snprintf(dir, n, "%s", t_path("%s", name));
    t_model_copy(t_tiny_art, dir, 1);
    static char p[1200];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    return p;
}

/* The first tensor of file whose name ends with suffix (static copy), or "". */
static const char *first_named(const char *file, const char *suffix) {
    static char name[256];
    name[0] = 0;
    st_file *f = st_open(file);
    for (int i = 0; f && i < st_count(f) && !name[0]; i++) {
        const char *nm = st_get(f, i)->name;
        size_t a = strlen(nm), b = strlen(suffix);
        if (a >= b && !strcmp(nm + a - b, suffix)) snprintf(name, sizeof name, "%s", nm);
    }
    st_close(f);
    return name;
}

/* ---- item 1: an artifact whose __metadata__ format is not mambaq-w8a8 (use after free) ---- */
static void test_artifact_bad_format(void) {
    T_NEED_TINY(1);
    char dir[1024], cmd[4096];
    const char *m = art_copy("art_badformat", dir, sizeof dir);
    /* same length, so the header stays valid */
    size_t n;
    char *s = mq_read_file(m, &n);
    char *at = s ? memmem(s, n, "\"mambaq-w8a8\"", 13) : NULL;
    T_CHECK(at != NULL, "no format string in %s", m);
    if (!at) { free(s); return; }
    memcpy(at, "\"evil-format\"", 13);
    t_write(m, s, n);
    free(s);
    const char *log = t_path("%s", "badformat.log");
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", dir);
    free(T_REFUSED(cmd, log, "model.safetensors", "__metadata__ format \"evil-format\" is not \"mambaq-w8a8\""));
    snprintf(cmd, sizeof cmd, "bin/mambaq eval --artifact '%s' --data '%s' --windows 1 --window 16", dir, shared_path("datasets/valid.txt"));
    free(T_REFUSED(cmd, log, "__metadata__ format \"evil-format\" is not \"mambaq-w8a8\""));
}

/* ---- item 8: NaN / Inf / implausible values in artifacts ---- */
static void test_artifact_nonfinite(void) {
    T_NEED_TINY(1);
    char dir[1024], cmd[4096];
    const char *log = t_path("%s", "artnan.log");
    const char *m = art_copy("art_nan_alog", dir, sizeof dir);
    size_t nb = 0;
    t_tensor_offset(m, "backbone.layers.0.mixer.A_log", &nb);
    uint16_t nan16 = 0x7e00, inf16 = 0x7c00;
    for (size_t i = 0; i < nb; i += 2) t_patch_tensor(m, "backbone.layers.0.mixer.A_log", i, &nan16, 2);
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", dir);
    free(T_REFUSED(cmd, log, "backbone.layers.0.mixer.A_log", "non-finite", "[0, 0] = nan"));
    m = art_copy("art_inf_norm", dir, sizeof dir);
    t_patch_tensor(m, "backbone.layers.1.norm.weight", 2 * 5, &inf16, 2);
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", dir);
    free(T_REFUSED(cmd, log, "backbone.layers.1.norm.weight", "[5] = inf"));
}

static void test_artifact_scales(void) {
    T_NEED_TINY(1);
    char dir[1024], cmd[4096], name[256];
    const char *log = t_path("%s", "artscale.log");
    char src[1200];
    snprintf(src, sizeof src, "%s/model.safetensors", t_tiny_art);
    const struct { const char *suffix; float v; const char *why; } cases[] = {
        {".input_scale", 1e-30f, "implausible"}, {".input_scale", 1e30f, "implausible"}, {".input_scale", 1e-45f, "implausible"},
        {".input_scale", 0.0f, "not > 0"},       {".weight_scale", 1e30f, "implausible"}, {".weight_scale", -NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(name, sizeof name, "%s", first_named(src, cases[i].suffix));
        T_CHECK(name[0], "no %s tensor in %s", cases[i].suffix, src);
        char nm[64];
        snprintf(nm, sizeof nm, "art_scale%zu", i);
        const char *m = art_copy(nm, dir, sizeof dir);
        t_fill_f32(m, name, cases[i].v);
        snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", dir);
        free(T_REFUSED(cmd, log, name, cases[i].why, "[7.87402e-08, 1e+06]"));
    }
}

/* ---- item 2 and 9: tokenizers ---- */
#define TOK_HEAD "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, " \
                 "\"decoder\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": \"BPE\", \"merges\": [], "

static void test_tokenizer_huge_ids(void) {
    T_NEED_CLI();
    const char *tj = t_path("%s", "huge_id.json"), *data = t_path("%s", "hello.txt"), *log = t_path("%s", "tok.log");
    t_write(data, "hello", 5);
    const char *ids[] = {"2147483646", "100000000"};
    char cmd[4096], js[512];
    for (int i = 0; i < 2; i++) {
        snprintf(js, sizeof js, TOK_HEAD "\"vocab\": {\"h\": 0, \"e\": %s}}}", ids[i]);
        t_write(tj, js, strlen(js));
        snprintf(cmd, sizeof cmd, "timeout 60 bin/mambaq tokenize --tokenizer '%s' --data '%s'", tj, data);
        double t0 = now();
        free(T_REFUSED(cmd, log, tj, "model.vocab[\"e\"]", "far beyond the 2 tokens listed"));
        T_CHECK(now() - t0 < 10, "refusing id %s took %.1f s", ids[i], now() - t0);
    }
    snprintf(cmd, sizeof cmd, "bin/mambaq tokenize --tokenizer '%s' --data '%s'", tj, data);
    snprintf(js, sizeof js, TOK_HEAD "\"vocab\": {}}}");
    t_write(tj, js, strlen(js));
    free(T_REFUSED(cmd, log, tj, "model.vocab", "empty"));
    /* invalid UTF-8 inside the JSON (an added token's content): refused before any string is read
     * as UTF-8 (found by fuzz_tokenizer: NFC of that content read outside the Unicode tables) */
    snprintf(js, sizeof js, TOK_HEAD "\"vocab\": {\"h\": 0}}, \"added_tokens\": [{\"id\": 1, \"content\": \"x\xF4\x90\x80\x80\", "
             "\"normalized\": true}]}");
    t_write(tj, js, strlen(js));
    free(T_REFUSED(cmd, log, tj, "not valid UTF-8 at byte offset"));
    /* a vocabulary without the text's bytes and no unk token: no tokens, which is refused too */
    snprintf(js, sizeof js, TOK_HEAD "\"vocab\": {\"a\": 0}}}");
    t_write(tj, js, strlen(js));
    free(T_REFUSED(cmd, log, "encode to no tokens"));
}

/* ---- item 6 and 8: config.json sizes and limits ---- */
static void test_config_sizes(void) {
    T_NEED_CLI();
    if (!t_shared("models/mamba1-proxy") || !t_shared("models/mamba2-proxy")) T_SKIP("no proxies");
    const char *dir = t_path("%s", "layers"), *log = t_path("%s", "cfg.log");
    char cfg[1200], cmd[2048];
    t_model_copy(shared_path("models/mamba1-proxy"), dir, 0);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    T_CHECK(!t_edit_text(cfg, "\"num_hidden_layers\": 24", "\"num_hidden_layers\": 10000000"), "edit");
    snprintf(cmd, sizeof cmd, "timeout 60 bin/mambaq info --model '%s'", dir);
    double t0 = now();
    free(T_REFUSED(cmd, log, "num_hidden_layers 10000000", "does not describe this checkpoint"));
    T_CHECK(now() - t0 < 10, "refusing 10M layers took %.1f s", now() - t0);

    dir = t_path("%s", "dtlimit");
    t_model_copy(shared_path("models/mamba2-proxy"), dir, 0);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    T_CHECK(!t_edit_text(cfg, "\"time_step_limit\": [", "\"time_step_limit\": [1e39, Infinity], \"old_limit\": ["), "edit");
    snprintf(cmd, sizeof cmd, "bin/mambaq info --model '%s'", dir);
    free(T_REFUSED(cmd, log, "time_step_limit", "not a finite float32"));
}

/* ---- item 8: NaN in the weights of a checkpoint ---- */
static void test_checkpoint_nan(void) {
    T_NEED_TINY(1);
    if (!t_shared("models/mamba1-proxy")) T_SKIP("no proxies");
    const char *dir = t_path("%s", "nan_embed"), *log = t_path("%s", "nan.log");
    t_model_copy(shared_path("models/mamba1-proxy"), dir, 1);
    char shard[1200], cmd[8192];
    snprintf(shard, sizeof shard, "%s/model-00001-of-00002.safetensors", dir);
    uint16_t nan16 = 0x7e00;
    T_CHECK(!t_patch_tensor(shard, "backbone.embeddings.weight", 2 * (5 * 192 + 3), &nan16, 2), "patch");
    const char *want[] = {"backbone.embeddings.weight", "[5, 3] = nan"};
    snprintf(cmd, sizeof cmd, "bin/mambaq info --model '%s'", dir);
    free(T_REFUSED(cmd, log, "nonfinite", want[0], want[1], "invalid checkpoint"));
    snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s' --data '%s' --samples 1 --seqlen 16 --out '%s' --quiet", dir,
             shared_path("datasets/calib.txt"), t_path("%s", "nan.stats"));
    free(T_REFUSED(cmd, log, want[0], want[1]));
    T_CHECK(!t_exists(t_path("%s", "nan.stats")), "calib wrote statistics of a NaN model");
    snprintf(cmd, sizeof cmd, "bin/mambaq eval --model '%s' --data '%s' --windows 1 --window 32", dir, shared_path("datasets/valid.txt"));
    free(T_REFUSED(cmd, log, want[0], want[1]));
    snprintf(cmd, sizeof cmd, "bin/mambaq generate --model '%s' --prompt 'The' --max-tokens 4", dir);
    free(T_REFUSED(cmd, log, want[0], want[1]));
    /* quantize: the stats of the good proxy, relabelled with the NaN model's weights hash */
    char good_hash[HASH_HEX_LEN], nan_hash[HASH_HEX_LEN];
    const char *stats = t_path("%s", "proxy.stats"), *bad_stats = t_path("%s", "nan_relabelled.stats");
    snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s' --data '%s' --samples 1 --seqlen 16 --out '%s' --quiet --force",
             shared_path("models/mamba1-proxy"), shared_path("datasets/calib.txt"), stats);
    T_CHECK(sh(cmd, log) == 0, "calib of the proxy: %s", slurp(log));
    T_CHECK(!hash_model_weights(shared_path("models/mamba1-proxy"), good_hash) && !hash_model_weights(dir, nan_hash), "hash");
    size_t n;
    char *s = mq_read_file(stats, &n), *at = s ? memmem(s, n, good_hash, strlen(good_hash)) : NULL;
    T_CHECK(at != NULL, "no weights hash in %s", stats);
    if (at) memcpy(at, nan_hash, strlen(nan_hash));
    if (s) t_write(bad_stats, s, n);
    free(s);
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --quiet", dir, bad_stats, t_path("%s", "nan_art"));
    free(T_REFUSED(cmd, log, want[0], want[1]));
    T_CHECK(!t_exists(t_path("%s", "nan_art")), "an artifact was written from NaN weights");
}

/* A NaN in a tensor the model never uses (a stored lm_head tied to the embedding): info lists it and
 * says so, and the model loads and evaluates, since the loader never converts that tensor. */
static void test_unused_nonfinite(void) {
    T_NEED_TINY(1);
    const char *dir = t_path("%s", "unused_nan"), *log = t_path("%s", "unused.log");
    t_model_copy(t_tiny, dir, 1);
    char path[1200], cmd[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st_file *f = st_open(path);
    st_writer *w = st_writer_new();
    st_writer_allow_nonfinite(w);
    for (int i = 0; f && i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
        if (!strcmp(t->name, "backbone.embeddings.weight")) {
            uint16_t *h = malloc(t->nbytes);
            memcpy(h, t->data, t->nbytes);
            h[7] = 0x7e00;
            st_writer_add(w, "lm_head.weight", t->dtype, t->ndim, t->shape, h);
            free(h);
        }
    }
    st_close(f);
    T_CHECK(st_writer_write(w, path) == 0, "%s", mq_errmsg());
    st_writer_free(w);
    snprintf(cmd, sizeof cmd, "bin/mambaq info --model '%s'", dir);
    T_CHECK(sh(cmd, log) == 0, "info refused a NaN in an unused tensor: %s", slurp(log));
    char *o = slurp(log);
    T_CHECK(strstr(o, "nonfinite") && strstr(o, "lm_head.weight") && strstr(o, "[0, 7] = nan") && strstr(o, "not used"), "info: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq eval --model '%s' --data '%s' --windows 1 --window 32", dir, shared_path("datasets/valid.txt"));
    T_CHECK(sh(cmd, log) == 0, "eval: %s", slurp(log));
}

/* ---- item 8: a forward that overflows float32 (finite FP16 weights, NaN/Inf logits): eval names the
 * window and says the NLL is not finite; generate stops with an error instead of printing nonsense ---- */
static void test_forward_nonfinite(void) {
    T_NEED_TINY(1);
    const char *dir = t_path("%s", "overflow"), *log = t_path("%s", "overflow.log");
    t_model_copy(t_tiny, dir, 1);
    char path[1200], nm[128], cmd[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const uint16_t big16 = 0x7bff;   /* 65504, the largest finite FP16 */
    for (int l = 0; l < 2; l++) {
        snprintf(nm, sizeof nm, "backbone.layers.%d.mixer.in_proj.weight", l);
        T_CHECK(!t_fill(path, nm, &big16, 2), "patch %s", nm);
        snprintf(nm, sizeof nm, "backbone.layers.%d.mixer.conv1d.weight", l);
        T_CHECK(!t_fill(path, nm, &big16, 2), "patch %s", nm);
    }
    snprintf(cmd, sizeof cmd, "bin/mambaq eval --model '%s' --data '%s' --windows 2 --window 32", dir, shared_path("datasets/valid.txt"));
    char *o = T_REFUSED(cmd, log, "window 0", "NLL is not finite", "at token");
    T_CHECK(!strstr(o, "unknown error"), "eval: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq generate --model '%s' --prompt 'The cat sat on the mat and' --max-tokens 8", dir);
    free(T_REFUSED(cmd, log, "logits of generated token", "not finite"));
}

/* ---- item 9: a prompt that is not UTF-8 is refused as such, not as "no tokens" ---- */
static void test_prompt_utf8(void) {
    T_NEED_TINY(1);
    const char *log = t_path("%s", "prompt.log"), *pf = t_path("%s", "prompt.txt");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "bin/mambaq generate --model '%s' --prompt \"$(printf 'ab\\377cd')\" --max-tokens 2", t_tiny);
    char *o = T_REFUSED(cmd, log, "--prompt", "not valid UTF-8", "byte offset 2");
    T_CHECK(!strstr(o, "no tokens"), "generate: %s", o);
    free(o);
    t_write(pf, "x\xC3", 2);
    snprintf(cmd, sizeof cmd, "bin/mambaq generate --model '%s' --prompt-file '%s' --max-tokens 2", t_tiny, pf);
    free(T_REFUSED(cmd, log, pf, "not valid UTF-8"));
}

/* ---- item 8: statistics files with impossible values ---- */
static void test_stats_values(void) {
    T_NEED_TINY(1);
    const struct { const char *suffix; float v; const char *why; } cases[] = {
        {".absmax", 0.0f, "absmax = 0"}, {".absmax", 3e38f, "implausibly large"}, {".percentiles", NAN, "not finite"},
        {".ema_percentiles", -1.0f, "negative"},
    };
    char cmd[4096];
    const char *log = t_path("%s", "stats.log");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "bad%zu.stats", i);
        const char *bad = t_path("%s", nm);
        size_t n;
        char *s = mq_read_file(t_tiny_stats, &n);
        t_write(bad, s, n);
        free(s);
        /* every statistic of this kind */
        st_file *f = st_open(t_tiny_stats);
        for (int k = 0; f && k < st_count(f); k++) {
            const char *tn = st_get(f, k)->name;
            size_t a = strlen(tn), b = strlen(cases[i].suffix);
            if (a > b && !strcmp(tn + a - b, cases[i].suffix)) t_fill_f32(bad, tn, cases[i].v);
        }
        st_close(f);
        snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --quiet", t_tiny, bad, t_path("%s", "never"));
        free(T_REFUSED(cmd, log, bad, cases[i].suffix, cases[i].why));
        snprintf(cmd, sizeof cmd, "bin/mambaq stats '%s'", bad);
        free(T_REFUSED(cmd, log, "invalid statistics", cases[i].why));
        /* every reader refuses them (calib_stats_open), not only quantize and stats */
        snprintf(cmd, sizeof cmd, "bin/mambaq report '%s' --out '%s'", bad, t_path("%s", "never.html"));
        free(T_REFUSED(cmd, log, bad, cases[i].suffix, cases[i].why));
    }
    T_CHECK(!t_exists(t_path("%s", "never")), "an artifact was written from broken statistics");
    T_CHECK(!t_exists(t_path("%s", "never.html")), "a report was written from broken statistics");
    /* and the writer does not write them: a zero embedding makes layer 0's in_proj input exactly 0 */
    const char *dir = t_path("%s", "zero_embed"), *out = t_path("%s", "zero_embed.stats");
    t_model_copy(t_tiny, dir, 1);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const uint16_t zero = 0;
    T_CHECK(!t_fill(path, "backbone.embeddings.weight", &zero, 2), "patch");
    snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s' --data '%s' --samples 1 --seqlen 16 --out '%s' --quiet", dir,
             shared_path("datasets/calib.txt"), out);
    free(T_REFUSED(cmd, log, out, "in_proj:input.absmax = 0", "check the model's weights"));
    T_CHECK(!t_exists(out), "calib wrote an all-zero statistic");
}

/* ---- item 8: a clip outside (0, 1.27e8] (here percentiles of 0: valid statistics, a useless clip)
 * is refused naming the activation, not quantized into garbage ---- */
static void test_clip_bounds(void) {
    T_NEED_TINY(1);
    const char *bad = t_path("%s", "pct0.stats"), *log = t_path("%s", "clip.log"), *out = t_path("%s", "clip0_art");
    size_t n;
    char *s = mq_read_file(t_tiny_stats, &n), cmd[4096];
    t_write(bad, s, n);
    free(s);
    st_file *f = st_open(t_tiny_stats);
    for (int k = 0; f && k < st_count(f); k++)
        if (strstr(st_get(f, k)->name, "percentiles")) t_fill_f32(bad, st_get(f, k)->name, 0.0f);
    st_close(f);
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --method quamba --quiet", t_tiny, bad, out);
    free(T_REFUSED(cmd, log, bad, "layer 0 ssm_x", "clip value 0 is outside (0, 1.27e8]"));
    T_CHECK(!t_exists(out), "an artifact was written with a clip of 0");
}

/* ---- item 9: data files ---- */
static void test_data_files(void) {
    T_NEED_TINY(1);
    const char *log = t_path("%s", "data.log"), *tok = shared_path("models/tokenizer.json");
    char cmd[4096];
    const char *jl = t_path("%s", "nul.jsonl");
    const char *text = "{\"text\": \"a\\u0000b\"}\n";
    t_write(jl, text, strlen(text));
    snprintf(cmd, sizeof cmd, "bin/mambaq tokenize --tokenizer '%s' --data '%s'", tok, jl);
    free(T_REFUSED(cmd, log, jl, "line 1", "\\u0000"));
    /* an escaped backslash before u0000 is text, not a NUL */
    text = "{\"text\": \"a\\\\u0000b\"}\n";
    t_write(jl, text, strlen(text));
    T_CHECK(sh(cmd, log) == 0, "escaped backslash refused: %s", slurp(log));

    const char *fifo = t_path("%s", "data.fifo");
    unlink(fifo);
    T_CHECK(mkfifo(fifo, 0644) == 0, "mkfifo");
    snprintf(cmd, sizeof cmd, "timeout 20 bin/mambaq tokenize --tokenizer '%s' --data '%s'", tok, fifo);
    free(T_REFUSED(cmd, log, fifo, "FIFO"));
    snprintf(cmd, sizeof cmd, "timeout 20 bin/mambaq tokenize --tokenizer '%s' --data /dev/zero", tok);
    free(T_REFUSED(cmd, log, "/dev/zero", "character device"));
    snprintf(cmd, sizeof cmd, "timeout 20 bin/mambaq tokenize --tokenizer '%s' --data '%s'", fifo, jl);
    free(T_REFUSED(cmd, log, fifo, "FIFO"));
    snprintf(cmd, sizeof cmd, "timeout 30 bin/mambaq calib --model '%s' --data '%s' --samples 1 --seqlen 16 --out '%s' --quiet", t_tiny, fifo,
             t_path("%s", "fifo.stats"));
    free(T_REFUSED(cmd, log, fifo, "FIFO"));
    snprintf(cmd, sizeof cmd, "timeout 30 bin/mambaq eval --model '%s' --data /dev/zero --windows 1 --window 16", t_tiny);
    free(T_REFUSED(cmd, log, "/dev/zero", "character device"));
}

/* ---- item 7: a shard truncated while (and after) it is read ---- */
static void test_truncated_shard(void) {
    T_NEED_TINY(1);
    /* the reader owns the bytes: truncating the file after st_open cannot fault (it did: SIGBUS
     * from the mmap); checked in a child, so a signal shows as its exit status */
    const char *dir = t_path("%s", "trunc");
    t_model_copy(t_tiny, dir, 1);
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        st_file *f = st_open(path);
        if (!f || truncate(path, 100) != 0) _exit(3);
        double sum = 0;
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *t = st_get(f, i);
            float *v = malloc((size_t)t->numel * sizeof *v + 4);
            if (st_to_f32(t, v)) _exit(4);
            for (int64_t k = 0; k < t->numel; k++) sum += v[k];
            free(v);
        }
        st_close(f);
        _exit(sum == sum ? 0 : 5);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d (signal %d)", status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    /* a read that finds the file shorter than when it was opened is an error, not a short buffer */
    t_model_copy(t_tiny, dir, 1);
    size_t size;
    int fd = fio_open_regular(path, &size);
    T_CHECK(fd >= 0, "%s", mq_errmsg());
    if (fd >= 0) {
        char *buf = malloc(size);
        T_CHECK(truncate(path, (off_t)size / 2) == 0, "truncate");
        T_CHECK(fio_pread_all(fd, buf, size, 0, path) == -1 && strstr(mq_errmsg(), "shrank while being read"), "%s", mq_errmsg());
        free(buf);
        close(fd);
    }
    /* and through the CLI: the truncated file is refused with the reader's message */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bin/mambaq info --model '%s'", dir);
    free(T_REFUSED(cmd, t_path("%s", "trunc.log"), path, "outside the data section"));
}

int main(void) {
    T_RUN(test_artifact_bad_format);
    T_RUN(test_artifact_nonfinite);
    T_RUN(test_artifact_scales);
    T_RUN(test_tokenizer_huge_ids);
    T_RUN(test_config_sizes);
    T_RUN(test_checkpoint_nan);
    T_RUN(test_unused_nonfinite);
    T_RUN(test_forward_nonfinite);
    T_RUN(test_prompt_utf8);
    T_RUN(test_stats_values);
    T_RUN(test_clip_bounds);
    T_RUN(test_data_files);
    T_RUN(test_truncated_shard);
    return t_summary();
}
