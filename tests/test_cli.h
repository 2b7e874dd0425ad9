/* Helpers for the tests that feed bin/mambaq malformed files (tests/test_rel_*.c), beside the runner
 * of tests/cli_run.h: a refusal checked with its message, a tiny random-weight checkpoint with its
 * statistics and artifact, links or copies of the shared proxies, and a tensor or a header string of
 * a safetensors file patched in place (the malformed files are made here, by the tests). */
#ifndef MQ_TEST_CLI_H
#define MQ_TEST_CLI_H
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/wait.h>
#include "core/err.h"
#include "core/st.h"
#include "tests/cli_run.h"
#include "tests/st_fill.h"
#include "tests/test.h"

/* Runs cmd; checks that it neither crashed nor succeeded, and that its output holds every needle
 * (NULL-terminated list). Returns the output (caller frees). */
#define T_REFUSED(cmd, log, ...) t_refused(__FILE__, __LINE__, cmd, log, (const char *[]){__VA_ARGS__, NULL})
__attribute__((unused)) static char *t_refused(const char *file, int line, const char *cmd, const char *log, const char **needles) {
    int rc = sh(cmd, log);
    char *o = slurp(log);
    if (rc == 0 || rc >= 124) {
        printf("    check failed at %s:%d: exit status %d (want a refusal, 1..123) for: %s\n    output: %.600s\n", file, line, rc, cmd, o);
        t_checks_failed++;
    }
    for (const char **n = needles; *n; n++)
        if (!strstr(o, *n)) {
            printf("    check failed at %s:%d: output lacks '%s' for: %s\n    output: %.600s\n", file, line, *n, cmd, o);
            t_checks_failed++;
        }
    return o;
}

__attribute__((unused)) static int t_exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

/* A path inside this program's scratch folder (allocated and never freed: tests hold many). */
__attribute__((unused)) static const char *t_path(const char *fmt, const char *name) {
    char rel[700], *b = mq_malloc(1024);
    snprintf(rel, sizeof rel, fmt, name);
    snprintf(b, 1024, "%s/%s", t_tmpdir(), rel);
    return b;
}

__attribute__((unused)) static void t_write(const char *path, const void *data, size_t n) {
    if (mq_write_file_atomic(path, data, n)) { printf("cannot write %s: %s\n", path, mq_errmsg()); exit(2); }
}

/* ---- checkpoints ---- */

/* A random-weight FP16 checkpoint of the GPT-NeoX vocabulary (50280 rows, so the shared tokenizer
 * fits) with d_model 16 and 2 layers, Mamba1 (arch 1) or Mamba2 (arch 2), in dir. */
__attribute__((unused)) static void t_tiny_model(const char *dir, int arch) {
    const int D = 16, E = 32, L = 2, V = 50280, K = 4;
    char path[1200], nm[256], js[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (mq_mkdir_parents(path)) { printf("%s\n", mq_errmsg()); exit(2); }
    sf_tiny_config(js, sizeof js, arch, D, L, V, 8, 1, 0);
    t_write(path, js, strlen(js));
    st_writer *w = st_writer_new();
    sf_add(w, "backbone.embeddings.weight", 2, V, D, 0, 'r', 0.05f);
    sf_add(w, "backbone.norm_f.weight", 1, D, 0, 0, 'c', 1.f);
    int N = 8, P = arch == 1 ? 2 * E : 2 * E + 2 * N + 2, C = arch == 1 ? E : E + 2 * N;
    for (int l = 0; l < L; l++) {
#define T_(suffix, ...) (snprintf(nm, sizeof nm, "backbone.layers.%d.%s", l, suffix), sf_add(w, nm, __VA_ARGS__))
        T_("norm.weight", 1, D, 0, 0, 'c', 1.f);
        T_("mixer.in_proj.weight", 2, P, D, 0, 'r', 0.25f);
        T_("mixer.conv1d.weight", 3, C, 1, K, 'r', 0.5f);
        T_("mixer.conv1d.bias", 1, C, 0, 0, 'r', 0.1f);
        T_("mixer.out_proj.weight", 2, D, E, 0, 'r', 0.18f);
        if (arch == 1) {
            T_("mixer.x_proj.weight", 2, 4 + 2 * N, E, 0, 'r', 0.18f);
            T_("mixer.dt_proj.weight", 2, E, 4, 0, 'r', 0.5f);
            T_("mixer.dt_proj.bias", 1, E, 0, 0, 'c', -4.f);
            T_("mixer.A_log", 2, E, N, 0, 'a', 0);
            T_("mixer.D", 1, E, 0, 0, 'c', 1.f);
        } else {
            T_("mixer.dt_bias", 1, 2, 0, 0, 'c', -4.f);
            T_("mixer.A_log", 1, 2, 0, 0, 'a', 0);
            T_("mixer.D", 1, 2, 0, 0, 'c', 1.f);
            T_("mixer.norm.weight", 1, E, 0, 0, 'c', 1.f);
        }
#undef T_
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (st_writer_write(w, path)) { printf("%s\n", mq_errmsg()); exit(2); }
    st_writer_free(w);
}

/* bin/mambaq and what the tests read from the shared folder (tokenizer, calib.txt, valid.txt). */
__attribute__((unused)) static int t_cli_ready(void) {
    return t_exists("bin/mambaq") && t_shared("models/tokenizer.json") && t_shared("datasets/calib.txt") && t_shared("datasets/valid.txt");
}
#define T_NEED_CLI() do { if (!t_cli_ready()) T_SKIP("bin/mambaq or ../shared missing"); } while (0)

/* The tiny Mamba1 model (t_tiny_model), its statistics (calib, 2 x 32 tokens) and, with want_art, a
 * naive artifact of them, made once in the scratch folder; 0 when a step failed (its output printed). */
__attribute__((unused)) static const char *t_tiny, *t_tiny_stats, *t_tiny_art;
__attribute__((unused)) static int t_tiny_setup(int want_art) {
    static int done, ok, art_done, art_ok;
    char cmd[8192];
    const char *log = t_path("%s", "setup.log"), *tok = shared_path("models/tokenizer.json");
    if (!done) {
        done = 1;
        t_tiny = t_path("%s", "tiny1");
        t_tiny_stats = t_path("%s", "tiny1.stats.safetensors");
        t_tiny_model(t_tiny, 1);
        snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s' --data '%s' --tokenizer '%s' --samples 2 --seqlen 32 --out '%s' --quiet",
                 t_tiny, shared_path("datasets/calib.txt"), tok, t_tiny_stats);
        if (!(ok = sh(cmd, log) == 0)) printf("    setup calib failed: %s\n", slurp(log));
    }
    if (!ok || !want_art) return ok;
    if (!art_done) {
        art_done = 1;
        t_tiny_art = t_path("%s", "tiny1-art");
        snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --method naive --tokenizer '%s' --quiet",
                 t_tiny, t_tiny_stats, t_tiny_art, tok);
        if (!(art_ok = sh(cmd, log) == 0)) printf("    setup quantize failed: %s\n", slurp(log));
    }
    return art_ok;
}
#define T_NEED_TINY(want_art) do { T_NEED_CLI(); if (!t_tiny_setup(want_art)) { T_CHECK(0, "setup failed"); return; } } while (0)

/* dst: a model folder whose config.json is a copy of src's (to be edited) and whose other files are
 * symbolic links to src's, or copies when copy (to be damaged). */
__attribute__((unused)) static void t_model_copy(const char *src, const char *dst, int copy) {
    char a[1400], b[1400];
    snprintf(b, sizeof b, "%s/x", dst);
    if (mq_mkdir_parents(b)) { printf("%s\n", mq_errmsg()); exit(2); }
    DIR *d = opendir(src);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        unlink(b);
        if (copy || !strcmp(e->d_name, "config.json")) {
            size_t n;
            char *s = mq_read_file(a, &n);
            if (!s) { printf("%s\n", mq_errmsg()); exit(2); }
            t_write(b, s, n);
            free(s);
        } else if (symlink(a[0] == '/' ? a : realpath(a, NULL), b) != 0) {
            printf("cannot link %s\n", b);
            exit(2);
        }
    }
    if (d) closedir(d);
}

/* Replaces the first occurrence of `from` in the text file path by `to`; 0 when found. */
__attribute__((unused)) static int t_edit_text(const char *path, const char *from, const char *to) {
    size_t n;
    char *s = mq_read_file(path, &n);
    char *at = s ? strstr(s, from) : NULL;
    if (!at) { free(s); return -1; }
    size_t a = (size_t)(at - s), fl = strlen(from), tl = strlen(to);
    char *o = mq_malloc(n - fl + tl + 1);
    memcpy(o, s, a);
    memcpy(o + a, to, tl);
    memcpy(o + a + tl, at + fl, n - a - fl);
    t_write(path, o, n - fl + tl);
    free(o);
    free(s);
    return 0;
}

/* Byte offset of tensor name's data in the safetensors file path (its header parsed here), and
 * its size; -1 when absent. */
__attribute__((unused)) static long t_tensor_offset(const char *path, const char *name, size_t *nbytes) {
    size_t n;
    char *s = mq_read_file(path, &n);
    long off = -1;
    uint64_t hl = 0;
    if (s && n >= 8) memcpy(&hl, s, 8);
    cJSON *h = s && hl <= n - 8 ? cJSON_ParseWithLength(s + 8, (size_t)hl) : NULL;
    const cJSON *o = cJSON_GetObjectItem(cJSON_GetObjectItem(h, name), "data_offsets");
    if (cJSON_GetArraySize(o) == 2) {
        off = (long)(8 + hl + (uint64_t)cJSON_GetArrayItem(o, 0)->valuedouble);
        if (nbytes) *nbytes = (size_t)(cJSON_GetArrayItem(o, 1)->valuedouble - cJSON_GetArrayItem(o, 0)->valuedouble);
    }
    cJSON_Delete(h);
    free(s);
    return off;
}

/* Writes n bytes at byte `at` of tensor name's data in path, in place. 0 or -1. */
__attribute__((unused)) static int t_patch_tensor(const char *path, const char *name, size_t at, const void *bytes, size_t n) {
    size_t nb = 0;
    long off = t_tensor_offset(path, name, &nb);
    if (off < 0 || at + n > nb) { printf("    (no tensor %s to patch in %s)\n", name, path); return -1; }
    int fd = open(path, O_WRONLY);
    int ok = fd >= 0 && pwrite(fd, bytes, n, off + (off_t)at) == (ssize_t)n;
    if (fd >= 0) close(fd);
    return ok ? 0 : -1;
}

/* Sets every value of tensor name in path to the size bytes at v (in place). */
__attribute__((unused)) static int t_fill(const char *path, const char *name, const void *v, size_t size) {
    size_t nb = 0;
    if (t_tensor_offset(path, name, &nb) < 0) return -1;
    for (size_t i = 0; i + size <= nb; i += size)
        if (t_patch_tensor(path, name, i, v, size)) return -1;
    return 0;
}
/* Every F32 value of tensor name in path set to v. */
__attribute__((unused)) static int t_fill_f32(const char *path, const char *name, float v) { return t_fill(path, name, &v, 4); }

#endif
