/* What a new user meets, through bin/mambaq on the proxies (CI-sized windows, CPU only):
 *  - quantize MODEL OUT in one command (calibrates itself on the default text, percentile 99.999 as
 *    run), an artifact Hugging Face tools can read (config.json with quantization_config, the
 *    generation config copied), a clear error when there is no calibration text;
 *  - an artifact accepted wherever a model runs (eval, generate, info, inspect, verify), refused
 *    with the source named where a float model is needed (calib, quantize, sweep);
 *  - one option vocabulary: shared options in every --help, --field on calib and sweep, renamed
 *    options still working with a note, a path given twice refused, stats --json numbers, one arch
 *    spelling, verify --device cpu exiting 0;
 *  - progress lines in logs every few seconds, a warning when windows are clamped, ppl +/- stderr;
 *  - size wording right, --quantize-embedding about 2x smaller than FP16;
 *  - tests/run.sh streaming, make install, README on CUDA_ARCH / NOCUDA, defaults from any folder. */
#include <stdint.h>
#include <sys/stat.h>
#include "core/progress.h"
#include "tests/cli_run.h"
#include "tests/test.h"

static char g_model1[4200], g_model2[4200], g_valid[4200], g_art[600];

static int ready(void) {
    struct stat st;
    if (stat("bin/mambaq", &st) != 0) return 0;
    if (!t_shared("models/mamba1-proxy") || !t_shared("datasets/calib.txt") || !t_shared("datasets/valid.txt")) return 0;
    snprintf(g_model1, sizeof g_model1, "%s/models/mamba1-proxy", shared_dir());
    snprintf(g_model2, sizeof g_model2, "%s/models/mamba2-proxy", shared_dir());
    snprintf(g_valid, sizeof g_valid, "%s/datasets/valid.txt", shared_dir());
    return 1;
}
#define NEED_READY() do { if (!ready()) T_SKIP("bin/mambaq or ../shared missing"); } while (0)
#define NEED_ARTIFACT() do { NEED_READY(); if (!g_art[0]) T_SKIP("no artifact (test_quantize_one_shot)"); } while (0)

static const char *logpath(const char *name) {
    static char buf[8][600];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 600, "%s/%s.log", t_tmpdir(), name);
    return b;
}

/* Runs cmd (stdout and stderr to log); the JSON object it printed last, or NULL. */
static cJSON *run_json(const char *cmd, const char *log, int *rc) {
    *rc = sh(cmd, log);
    return last_json(log);
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
static const char *str(const cJSON *o, const char *k) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(o, k));
    return s ? s : "";
}

static cJSON *read_json(const char *path) {
    char *s = slurp(path);
    cJSON *j = cJSON_Parse(s);
    free(s);
    return j;
}

/* quantize MODEL OUT: calibration, artifact and its Hugging Face config in one command */
static void test_quantize_one_shot(void) {
    NEED_READY();
    char cmd[16384], p[700];
    snprintf(g_art, sizeof g_art, "%s/art1", t_tmpdir());
    const char *log = logpath("quantize");
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize '%s' '%s' --samples 2 --seqlen 64 --json", g_model1, g_art);
    int rc;
    cJSON *j = run_json(cmd, log, &rc);
    T_CHECK(rc == 0 && j, "quantize MODEL OUT failed (%d): %s", rc, slurp(log));
    T_CHECK(!strcmp(str(j, "method"), "quamba") && num(j, "percentile") == 99.999, "defaults: method %s percentile %g (run's: quamba 99.999)",
            str(j, "method"), num(j, "percentile"));
    T_CHECK(!strcmp(str(j, "arch"), "mamba1") && num(j, "compression_vs_fp16") > 1.1, "json: %s", slurp(log));
    T_CHECK(num(cJSON_GetObjectItem(j, "calibration"), "tokens") == 128, "calibration tokens");
    cJSON_Delete(j);
    char *o = slurp(log);
    T_CHECK(strstr(o, "calibrating") && strstr(o, "calib.txt"), "the default calibration text is named: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "ls -d '%s'.calib.* 2>/dev/null | grep -q .", g_art);
    T_CHECK(system(cmd) != 0, "a temporary stats file was left beside the artifact");

    /* config.json: the source's fields, torch_dtype, quantization_config */
    snprintf(p, sizeof p, "%s/config.json", g_art);
    cJSON *c = read_json(p);
    const cJSON *q = cJSON_GetObjectItem(c, "quantization_config");
    T_CHECK(num(c, "hidden_size") == 192 && !strcmp(str(c, "model_type"), "mamba") && cJSON_GetObjectItem(c, "architectures"),
            "source fields kept");
    T_CHECK(!strcmp(str(c, "torch_dtype"), "float16"), "torch_dtype");
    T_CHECK(!strcmp(str(q, "quant_method"), "mambaq") && num(q, "bits") == 8 && num(q, "activation_bits") == 8 && num(q, "group_size") == 0 &&
            !strcmp(str(q, "recipe"), "quamba") && num(q, "percentile") == 99.999 && num(q, "version") == 1 && num(q, "hadamard") == 384,
            "quantization_config: %s", cJSON_PrintUnformatted(q));
    const cJSON *as = cJSON_GetObjectItem(q, "activation_scales");
    T_CHECK(!strcmp(str(as, "file"), "model.safetensors") && cJSON_GetArraySize(cJSON_GetObjectItem(as, "tensors")) >= 5,
            "activation scales located");
    T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(q, "modules_not_to_convert")) == 2, "embedding and lm_head stay FP16");
    cJSON_Delete(c);
    snprintf(p, sizeof p, "%s/generation_config.json", g_art);
    char src[4300];
    snprintf(src, sizeof src, "%s/generation_config.json", g_model1);
    char *a = slurp(p), *b = slurp(src);
    T_CHECK(*b && !strcmp(a, b), "generation_config.json copied");
    free(a), free(b);
    snprintf(p, sizeof p, "%s/quant_config.json", g_art);
    c = read_json(p);
    T_CHECK(!strcmp(str(c, "arch"), "mamba1"), "quant_config arch '%s'", str(c, "arch"));
    cJSON_Delete(c);

    /* no calibration text: the error says what to pass */
    snprintf(cmd, sizeof cmd, "MQ_SHARED=%s/nothing bin/mambaq quantize '%s' '%s/art_x'", t_tmpdir(), g_model1, t_tmpdir());
    T_CHECK(sh(cmd, log) != 0, "quantize without calibration data succeeded");
    o = slurp(log);
    T_CHECK(strstr(o, "--calib FILE") && strstr(o, "--stats FILE"), "message: %s", o);
    free(o);
}

/* an artifact wherever a model runs; a clear error where a float model is needed */
static void test_artifact_as_model(void) {
    NEED_ARTIFACT();
    char cmd[16384];
    const char *log = logpath("artifact");
    int rc;
    snprintf(cmd, sizeof cmd, "bin/mambaq eval '%s' --data '%s' --window 64 --windows 2 --device cpu --json", g_art, g_valid);
    cJSON *j = run_json(cmd, log, &rc);
    T_CHECK(rc == 0 && !strcmp(str(j, "method"), "quamba") && !strcmp(str(j, "arch"), "mamba1") && num(j, "ppl_stderr") > 0,
            "eval ART: %s", slurp(log));
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "bin/mambaq generate --model '%s' --device cpu --max-tokens 3 --prompt 'The' --quiet", g_art);
    T_CHECK(sh_stdout(cmd, log) == 0, "generate --model ART: %s", slurp(log));
    char *o = slurp(log);
    T_CHECK(!strncmp(o, "The", 3) && strlen(o) > 4, "generated: '%s'", o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq info '%s' --json", g_art);
    T_CHECK(sh_stdout(cmd, log) == 0, "info ART");
    j = last_json(log);
    if (!j) j = read_json(log);
    T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "valid")) && !strcmp(str(j, "arch"), "mamba1"), "info ART: %s", slurp(log));
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect --artifact '%s'", g_art);
    T_CHECK(sh(cmd, log) == 0, "inspect --artifact: %s", slurp(log));
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s' --artifact '%s'", g_art, g_art);
    T_CHECK(sh(cmd, log) == 2, "a path given twice must be refused");
    o = slurp(log);
    T_CHECK(strstr(o, "given twice"), "message: %s", o);
    free(o);
    const char *need[][2] = {{"calib", "%s/stats_x.safetensors"}, {"quantize", "%s/art_y"}, {"sweep", "--stats %s/none.safetensors"}};
    for (int i = 0; i < 3; i++) {
        char second[700];
        snprintf(second, sizeof second, need[i][1], t_tmpdir());
        snprintf(cmd, sizeof cmd, "bin/mambaq %s '%s' %s", need[i][0], g_art, second);
        T_CHECK(sh(cmd, log) != 0, "%s accepted an artifact as its float model", need[i][0]);
        o = slurp(log);
        T_CHECK(strstr(o, "int8 artifact") && strstr(o, "needs the float checkpoint") && strstr(o, "mamba1-proxy"), "%s: %s", need[i][0], o);
        free(o);
    }
}

/* verify --device cpu: a clean CPU check; JSON numbers and one arch spelling */
static void test_verify_cpu(void) {
    NEED_ARTIFACT();
    char cmd[16384];
    const char *log = logpath("verify");
    /* --model: the artifact records its source by name only (quantize --record-paths for the path) */
    snprintf(cmd, sizeof cmd, "bin/mambaq verify '%s' --model '%s' --data '%s' --window 64 --windows 2 --device cpu --json", g_art,
             g_model1, g_valid);
    int rc;
    cJSON *j = run_json(cmd, log, &rc);
    T_CHECK(rc == 0, "verify --device cpu exited %d: %s", rc, slurp(log));
    T_CHECK(j && cJSON_IsFalse(cJSON_GetObjectItem(j, "gpu_verified")) && !strcmp(str(j, "arch"), "mamba1") &&
            num(j, "ppl_int8_stderr") > 0 && num(j, "ppl_float") > 1, "verify json: %s", slurp(log));
    cJSON_Delete(j);
    /* without --model, the name-only provenance is explained: --model, or quantize --record-paths */
    snprintf(cmd, sizeof cmd, "bin/mambaq verify '%s' --data '%s' --window 64 --windows 1 --device cpu", g_art, g_valid);
    rc = sh(cmd, log);
    char *o = slurp(log);
    T_CHECK(rc == 1 && strstr(o, "by name only") && strstr(o, "--record-paths") && strstr(o, "--model DIR"), "verify: rc %d: %s", rc, o);
    free(o);
}

/* the shared options in every command's --help, one default percentile */
static void test_option_vocabulary(void) {
    NEED_READY();
    static const struct { const char *cmd, *opts; } want[] = {
        {"eval", "--model --data --tokenizer --field --window --windows --device --threads --json --quiet"},
        {"calib", "--model --out --data --tokenizer --field --samples --seqlen --device --threads --json --quiet"},
        {"quantize", "--model --out --stats --calib --field --samples --seqlen --method --percentile --weight-granularity "
                     "--quantize-head --quantize-embedding --bits --weight-method --group-size --no-cluster --no-state-groups "
                     "--force --threads --json --quiet"},
        {"sweep", "--model --stats --data --field --method --percentile --weight-granularity --window --windows --device --threads --json --quiet"},
        {"verify", "--artifact --model --data --field --window --windows --device --threads --json --quiet"},
        {"generate", "--model --tokenizer --device --threads --quiet"},
        {"info", "--model --json"},
        {"inspect", "--artifact --json"},
        {"stats", "--stats --json --model"},
        {"report", "--stats --method --percentile --out"},
        {"run", "--model --method --percentile --samples --seqlen --threads"},
    };
    const char *log = logpath("help");
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char cmd[256], opt[64];
        snprintf(cmd, sizeof cmd, "bin/mambaq %s --help", want[i].cmd);
        T_CHECK(sh(cmd, log) == 0, "%s --help", want[i].cmd);
        char *o = slurp(log);
        for (const char *p = want[i].opts; *p;) {
            size_t n = strcspn(p, " ");
            snprintf(opt, sizeof opt, "  %.*s ", (int)n, p);
            T_CHECK(strstr(o, opt), "mambaq %s --help lacks %s", want[i].cmd, opt);
            p += n;
            while (*p == ' ') p++;
        }
        if (strstr(o, "  --percentile P"))
            T_CHECK(strstr(o, "(default: 99.999)"), "mambaq %s: default percentile is not 99.999", want[i].cmd);
        free(o);
    }
}

/* --field on calib and sweep, stats --json numbers, renamed options, arch spelling */
static void test_field_stats_sweep(void) {
    NEED_READY();
    char data[600], stats[600], cmd[16384];
    const char *log = logpath("field");
    snprintf(data, sizeof data, "%s/body.jsonl", t_tmpdir());
    snprintf(stats, sizeof stats, "%s/body_stats.safetensors", t_tmpdir());
    /* a JSON-lines file whose text is under "body": valid.txt's first lines */
    char *v = slurp(g_valid);
    FILE *f = fopen(data, "w");
    T_CHECK(f != NULL, "%s", data);
    if (!f) { free(v); return; }
    char *line = v;
    for (int k = 0; k < 60 && line && *line; k++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "body", line);
        char *s = cJSON_PrintUnformatted(r);
        fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(r);
        line = nl ? nl + 1 : NULL;
    }
    fclose(f);
    free(v);
    snprintf(cmd, sizeof cmd, "bin/mambaq calib '%s' '%s' --data '%s' --field body --samples 2 --seqlen 32 --device cpu --json --quiet",
             g_model1, stats, data);
    int rc;
    cJSON *j = run_json(cmd, log, &rc);
    T_CHECK(rc == 0 && j && num(j, "tokens") == 64, "calib --field body: %s", slurp(log));
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "bin/mambaq stats '%s' --json", stats);
    T_CHECK(sh_stdout(cmd, log) == 0, "stats --json");
    j = read_json(log);
    const cJSON *m = cJSON_GetObjectItem(j, "metadata");
    T_CHECK(num(m, "calib.samples") == 2 && num(m, "calib.seqlen") == 32 && num(m, "data.tokens") > 64 && num(m, "format_version") == 1,
            "stats metadata numbers as numbers");
    T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(m, "calib.percentiles")) == 7 && !strcmp(str(m, "data.field"), "body") &&
            !strcmp(str(m, "model.arch"), "mamba1") && cJSON_IsString(cJSON_GetObjectItem(m, "model.weights_sha256")),
            "percentile list, field, arch, hash");
    cJSON_Delete(j);
    /* sweep reads the same field (its extra pass too, over --calib: this data is not in <shared>/datasets,
     * and the stats file records its name only); the old names still work, with a note */
    snprintf(cmd, sizeof cmd, "bin/mambaq sweep '%s' --stats '%s' --data '%s' --calib '%s' --field body --methods quamba --percentiles 99.999 "
             "--window 32 --windows 1 --json --quiet", g_model1, stats, data, data);
    j = run_json(cmd, log, &rc);
    T_CHECK(rc == 0 && j && !strcmp(str(j, "arch"), "mamba1") && cJSON_GetArraySize(cJSON_GetObjectItem(j, "results")) == 1,
            "sweep --field body: %s", slurp(log));
    cJSON_Delete(j);
    char *o = slurp(log);
    T_CHECK(strstr(o, "--percentiles is now --percentile") && strstr(o, "--methods is now --method"), "notes: %s", o);
    free(o);
    /* an empty list, or an empty item, is a usage error (exit 2), never fewer rows with exit 0 */
    const char *lists[][3] = {{"--percentile", "", "the list is empty"}, {"--percentiles", "99.9,,100", "item 2 of the list is empty"},
                              {"--method", "", "the list is empty"}};
    for (int k = 0; k < 3; k++) {
        snprintf(cmd, sizeof cmd, "bin/mambaq sweep '%s' --stats '%s' %s '%s' --window 32 --windows 1 --quiet", g_model1, stats,
                 lists[k][0], lists[k][1]);
        rc = sh(cmd, log);
        o = slurp(log);
        T_CHECK(rc == 2 && strstr(o, lists[k][2]), "sweep %s '%s': rc %d: %s", lists[k][0], lists[k][1], rc, o);
        free(o);
    }
}

/* eval: a warning when the windows are clamped, ppl +/- its standard error, the progress line */
static void test_eval_clamp_stderr(void) {
    NEED_READY();
    char ids[600], cmd[16384];
    const char *log = logpath("clamp");
    snprintf(ids, sizeof ids, "%s/short.bin", t_tmpdir());
    int32_t t[300];
    for (int i = 0; i < 300; i++) t[i] = (int32_t)((i * 7919) % 50000);
    T_CHECK(mq_write_file_atomic(ids, t, sizeof t) == 0, "%s", mq_errmsg());
    snprintf(cmd, sizeof cmd, "env -u MQ_PROGRESS bin/mambaq eval '%s' --data '%s' --window 64 --windows 100000 --device cpu", g_model1, ids);
    T_CHECK(sh(cmd, log) == 0, "eval: %s", slurp(log));
    char *o = slurp(log);
    T_CHECK(strstr(o, "warning:") && strstr(o, "only 4 full windows") && strstr(o, "100000"), "clamp warning: %s", o);
    T_CHECK(strstr(o, "perplexity") && strstr(o, " +/- "), "ppl +/-: %s", o);
    T_CHECK(strstr(o, "eval: 4/4 windows"), "progress line in the log: %s", o);
    free(o);
}

/* eval --state-format: each format runs on the CPU and says so; a wrong name or --device cuda exit 2.
 * FP16 moves perplexity a little, int8 (a scale per state row) more, neither far (same 4 windows). */
static void test_eval_state_format(void) {
    NEED_READY();
    char ids[600], args[8000], err[4096];
    snprintf(ids, sizeof ids, "%s/state.bin", t_tmpdir());
    int32_t t[260];
    for (int i = 0; i < 260; i++) t[i] = (int32_t)((i * 7919) % 50000);
    T_CHECK(mq_write_file_atomic(ids, t, sizeof t) == 0, "%s", mq_errmsg());
    double ppl[3] = {0};
    const char *fmts[3] = {"fp32", "fp16", "int8"};
    for (int f = 0; f < 3; f++) {
        int rc = -1;
        snprintf(args, sizeof args, "eval '%s' --data '%s' --window 64 --windows 4 --state-format %s --json", g_model2, ids,
                 fmts[f]);
        cJSON *o = mambaq_json(args, &rc, err, sizeof err);
        T_CHECK(rc == 0 && o, "eval --state-format %s: rc %d %s", fmts[f], rc, err);
        if (!o) continue;
        T_CHECK(!strcmp(str(o, "state_format"), fmts[f]), "state_format %s", str(o, "state_format"));
        T_CHECK(f == 0 || !strcmp(str(o, "device"), "cpu"), "a state format must run on the CPU");
        ppl[f] = num(o, "ppl");
        cJSON_Delete(o);
    }
    printf("    4 x 64 tokens, mamba2-proxy: ppl %.4f (fp32), %.4f (fp16 state), %.4f (int8 state)\n", ppl[0], ppl[1],
           ppl[2]);
    T_CHECK(ppl[0] > 1 && fabs(ppl[1] / ppl[0] - 1) < 0.01 && fabs(ppl[2] / ppl[0] - 1) < 0.05,
            "state formats moved ppl too far: %g %g %g", ppl[0], ppl[1], ppl[2]);
    const char *log = logpath("state_format");
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "bin/mambaq eval '%s' --data '%s' --window 64 --windows 1 --state-format fp8", g_model2, ids);
    T_CHECK(sh(cmd, log) == 2, "--state-format fp8 accepted");
    char *o = slurp(log);
    T_CHECK(strstr(o, "fp8") && strstr(o, "int8"), "the error names the value and the choices: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq eval '%s' --data '%s' --window 64 --windows 1 --state-format int8 --device cuda",
             g_model2, ids);
    T_CHECK(sh(cmd, log) == 2, "--state-format with --device cuda accepted");
    o = slurp(log);
    T_CHECK(strstr(o, "CPU"), "the error says the CPU simulates it: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq eval '%s' --task lambada --limit 1 --state-format fp16", g_model2);
    T_CHECK(sh(cmd, log) == 2, "--state-format with --task accepted");
}

/* core/progress in a log (not a terminal): a line with rate and ETA every ~5 s */
static void test_progress_in_logs(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/progress.log", t_tmpdir());
    fflush(stderr);
    int saved = dup(2);
    FILE *f = freopen(path, "w", stderr);
    T_CHECK(f != NULL, "redirect");
    if (!f) return;
    unsetenv("MQ_PROGRESS");
    prog_bar b;
    prog_start(&b, "work", "steps", 1000, 0);
    const double t0 = prog_now();
    int i = 0;
    while (prog_now() - t0 < 5.6) {
        i++;
        prog_update(&b, i, (int64_t)i * 100);
        usleep(20000);
    }
    prog_update(&b, 1000, 100000);
    prog_finish(&b);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    char *o = slurp(path);
    T_CHECK(strstr(o, "work: ") && strstr(o, "tok/s  ETA"), "a progress line with rate and ETA after ~5 s: %s", o);
    T_CHECK(strstr(o, "work: 1000/1000 steps"), "the final line: %s", o);
    free(o);
}

/* sizes: "N times smaller/larger than FP16" matching the numbers; --quantize-embedding ~2x */
static void check_size_line(const char *out) {
    const char *l = strstr(out, "size       ");
    T_CHECK(l != NULL, "no size line: %s", out);
    if (!l) return;
    double mb = 0, ratio = 0, fp16 = 0;
    char word[16] = "";
    int n = sscanf(l, "size       %lf MB, %lf times %15s than FP16 (%lf MB)", &mb, &ratio, word, &fp16);
    T_CHECK(n == 4, "size line: %.120s", l);
    T_CHECK(!strcmp(word, mb <= fp16 ? "smaller" : "larger"), "%.2f MB vs FP16 %.2f MB called '%s'", mb, fp16, word);
    T_NEAR(ratio, mb <= fp16 ? fp16 / mb : mb / fp16, 0.01, "ratio");
}

static void test_sizes_and_int8_embedding(void) {
    NEED_READY();
    char cmd[16384], art[600], p[700];
    const char *log = logpath("sizes");
    /* the case: quamba-rot with per-channel scales and an int8 head on mamba2 */
    snprintf(art, sizeof art, "%s/art2_rot", t_tmpdir());
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize '%s' '%s' --method quamba-rot --weight-granularity channel --quantize-head "
             "--samples 2 --seqlen 64 --quiet", g_model2, art);
    T_CHECK(sh(cmd, log) == 0, "quantize mamba2 quamba-rot: %s", slurp(log));
    char *o = slurp(log);
    check_size_line(o);
    free(o);
    snprintf(p, sizeof p, "%s/config.json", art);
    cJSON *c = read_json(p);
    const cJSON *q = cJSON_GetObjectItem(c, "quantization_config");
    T_CHECK(num(q, "group_size") == -1 && num(q, "residual_rotation") == 192 && !strcmp(str(q, "recipe"), "quamba-rot") &&
            !strcmp(str(c, "model_type"), "mamba2"), "mamba2 quantization_config: %s", cJSON_PrintUnformatted(q));
    cJSON_Delete(c);

    /* int8 embedding: about 2x smaller, and it still predicts as the FP16-embedding artifact does */
    snprintf(art, sizeof art, "%s/art1_emb", t_tmpdir());
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize '%s' '%s' --quantize-embedding --samples 2 --seqlen 64 --quiet", g_model1, art);
    T_CHECK(sh(cmd, log) == 0, "quantize --quantize-embedding: %s", slurp(log));
    o = slurp(log);
    check_size_line(o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s' --json", art);
    T_CHECK(sh_stdout(cmd, log) == 0, "inspect");
    cJSON *j = read_json(log);
    T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "quantize_embedding")) && num(j, "format_version") == 2 &&
            num(j, "compression_vs_fp16") > 1.9, "inspect --quantize-embedding: %.300s", slurp(log));
    printf("    mamba1-proxy with --quantize-embedding: %.2f times smaller than FP16\n", num(j, "compression_vs_fp16"));
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/config.json", art);
    c = read_json(p);
    q = cJSON_GetObjectItem(c, "quantization_config");
    T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(q, "quantize_embedding")) && cJSON_GetArraySize(cJSON_GetObjectItem(q, "modules_not_to_convert")) == 0,
            "config.json of the int8 embedding");
    cJSON_Delete(c);
    double ppl[2];
    const char *arts[2] = {g_art, art};
    for (int k = 0; k < 2; k++) {
        if (!arts[k][0]) { ppl[k] = NAN; continue; }
        snprintf(cmd, sizeof cmd, "bin/mambaq eval '%s' --data '%s' --window 128 --windows 2 --device cpu --json --quiet", arts[k], g_valid);
        int rc;
        j = run_json(cmd, log, &rc);
        ppl[k] = num(j, "ppl");
        T_CHECK(rc == 0 && isfinite(ppl[k]), "eval %s: %s", arts[k], slurp(log));
        cJSON_Delete(j);
    }
    if (g_art[0]) {
        printf("    simulated ppl, 2 x 128 tokens: FP16 embedding %.3f, int8 embedding %.3f\n", ppl[0], ppl[1]);
        T_CHECK(fabs(ppl[1] / ppl[0] - 1) < 0.03, "the int8 embedding moves ppl by %.2f%%", 100 * (ppl[1] / ppl[0] - 1));
    }
}

/* tests/run.sh prints a test's line while its program still runs */
static void test_run_sh_streams(void) {
    const char *tmp = t_tmpdir();
    char a[600], b[600], flag[600], out[600], cmd[4096];
    snprintf(a, sizeof a, "%s/fake_a.sh", tmp);
    snprintf(b, sizeof b, "%s/fake_b.sh", tmp);
    snprintf(flag, sizeof flag, "%s/flag", tmp);
    snprintf(out, sizeof out, "%s/run_sh.out", tmp);
    unlink(flag);
    FILE *f = fopen(a, "w");
    if (!f) { T_CHECK(0, "%s", a); return; }
    fprintf(f, "#!/bin/sh\necho 'PASS first'\ni=0\nwhile [ ! -e '%s' ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done\n"
               "echo '# a comment'\necho 'PASS second'\n", flag);
    fclose(f);
    f = fopen(b, "w");
    if (!f) { T_CHECK(0, "%s", b); return; }
    fprintf(f, "#!/bin/sh\necho 'SKIP third: no reason'\nexit 4\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "chmod +x '%s' '%s' && (tests/run.sh '%s' '%s' > '%s' 2>&1 &)", a, b, a, b, out);
    T_CHECK(system(cmd) == 0, "start run.sh");
    int seen = 0;
    for (int i = 0; i < 150 && !seen; i++) {
        usleep(100000);
        char *o = slurp(out);
        seen = strstr(o, "PASS first") != NULL;
        free(o);
    }
    T_CHECK(seen, "run.sh showed nothing while the program ran");
    f = fopen(flag, "w");
    if (f) fclose(f);
    char *o = NULL;
    for (int i = 0; i < 150; i++) {
        usleep(100000);
        free(o);
        o = slurp(out);
        if (strstr(o, " skipped")) break;
    }
    T_CHECK(strstr(o, "2 passed, 1 failed, 1 skipped\n") && !strstr(o, "# a comment") && strstr(o, "exited with status 4"),
            "run.sh output: %s", o);
    free(o);
}

/* make install PREFIX=..., the README on CUDA_ARCH and NOCUDA, defaults from any folder */
static void test_install_docs_defaults(void) {
    NEED_READY();
    char cmd[16384], prefix[4800], cwd[4096], log[4800];
    if (!getcwd(cwd, sizeof cwd)) T_SKIP("getcwd");
    snprintf(log, sizeof log, "%s/%s", cwd, logpath("install"));   /* absolute: one command runs elsewhere */
    char *readme = slurp("README.md");
    T_CHECK(strstr(readme, "CUDA_ARCH") && strstr(readme, "sm_80") && strstr(readme, "sm_86") && strstr(readme, "sm_89") &&
            strstr(readme, "NOCUDA=1") && strstr(readme, "make install") && strstr(readme, "MQ_SHARED"), "README: build options undocumented");
    free(readme);
    /* defaults (the proxy, valid.txt) found from another folder, without MQ_SHARED */
    snprintf(cmd, sizeof cmd, "cd '%s' && env -u MQ_SHARED '%s/bin/mambaq' info --json --no-tensors", t_tmpdir(), cwd);
    if (!getenv("MQ_SHARED")) {
        T_CHECK(sh_stdout(cmd, log) == 0, "info with the default model from another folder: %s", slurp(log));
        char *o = slurp(log);
        T_CHECK(strstr(o, "mamba1-proxy") && strstr(o, "\"valid\":\ttrue"), "info: %.200s", o);
        free(o);
    }
    /* the build that made bin/mambaq (CPU-only or not) is the one make finds up to date */
    const char *flags = system("make -q NOCUDA=1 bin/mambaq 2>/dev/null") == 0 ? "NOCUDA=1" : "";
    if (!*flags && system("make -q bin/mambaq 2>/dev/null") != 0) T_SKIP("bin/mambaq is not up to date: make install would rebuild it");
    snprintf(prefix, sizeof prefix, "%s/%s/prefix", cwd, t_tmpdir());
    snprintf(cmd, sizeof cmd, "make -s --no-print-directory install %s PREFIX='%s'", flags, prefix);
    T_CHECK(sh(cmd, log) == 0, "make install: %s", slurp(log));
    snprintf(cmd, sizeof cmd, "'%s/bin/mambaq' --version", prefix);
    T_CHECK(sh(cmd, log) == 0, "installed mambaq --version");
    char *o = slurp(log);
    T_CHECK(!strncmp(o, "mambaq ", 7), "version: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "%s/share/doc/mambaq/README.md", prefix);
    struct stat st;
    T_CHECK(stat(cmd, &st) == 0, "docs installed");
}

int main(void) {
    T_RUN(test_option_vocabulary);
    T_RUN(test_quantize_one_shot);
    T_RUN(test_artifact_as_model);
    T_RUN(test_verify_cpu);
    T_RUN(test_field_stats_sweep);
    T_RUN(test_eval_clamp_stderr);
    T_RUN(test_eval_state_format);
    T_RUN(test_progress_in_logs);
    T_RUN(test_sizes_and_int8_embedding);
    T_RUN(test_run_sh_streams);
    T_RUN(test_install_docs_defaults);
    return t_summary();
}
