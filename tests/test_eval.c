/* `mambaq eval` end to end: for both proxies, the perplexity on ../shared/datasets/valid.txt under
 * the reference protocol (text through the tokenizer, 32 x 1024 tokens) must be within 0.1% of the
 * transformers FP32 value in reference.json, with the JSON fields the other tools read. Also: data
 * shorter than one window is an error. */
#include "tests/test.h"
#include "tests/cli_run.h"
#include "core/err.h"
#include <cjson/cJSON.h>
#include <stdint.h>

/* `bin/mambaq eval <args> --json` (tests/cli_run.h) */
static cJSON *run_eval(const char *args, int *rc, char *err, size_t errsz) {
    char full[9000];
    if (snprintf(full, sizeof full, "eval %s --json", args) >= (int)sizeof full) return NULL;
    return mambaq_json(full, rc, err, errsz);
}

static double json_num(cJSON *o, const char *k) {
    cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void check_proxy(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/%s", name);
    const char *d = t_shared(rel);
    if (!d) T_SKIP("../shared/models not found (set MQ_SHARED)");
    char *dir = strdup(d), refpath[4200];
    snprintf(refpath, sizeof refpath, "%s/reference.json", dir);
    const char *v = t_shared("datasets/valid.txt");
    if (!v) { free(dir); T_SKIP("../shared/datasets/valid.txt not found"); }
    char *data = strdup(v);

    char *txt = mq_read_file(refpath, NULL);
    cJSON *ref = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    double ref_ppl = json_num(cJSON_GetObjectItem(cJSON_GetObjectItem(ref, "valid"), "fp32"), "ppl");
    cJSON_Delete(ref);
    T_CHECK(ref_ppl > 0, "%s: no valid.fp32.ppl", refpath);

    char args[9000], err[4096];
    int rc;
    snprintf(args, sizeof args, "--model %s --data %s --window 1024 --windows 32", dir, data);
    free(dir);
    free(data);
    cJSON *o = run_eval(args, &rc, err, sizeof err);
    T_CHECK(o != NULL, "mambaq eval exited %d: %s", rc, err);
    if (!o) return;
    double ppl = json_num(o, "ppl");
    printf("    %s: ppl %.4f vs transformers fp32 %.4f (%+.4f%%), %.0f tokens scored in %.1f s\n", name, ppl,
           ref_ppl, 100 * (ppl - ref_ppl) / ref_ppl, json_num(o, "tokens_scored"), json_num(o, "seconds"));
    T_CHECK(fabs(ppl - ref_ppl) <= 1e-3 * ref_ppl, "ppl %.4f vs %.4f", ppl, ref_ppl);
    T_CHECK(json_num(o, "tokens_scored") == 32 * 1023, "tokens_scored %g", json_num(o, "tokens_scored"));
    T_CHECK(json_num(o, "window") == 1024 && json_num(o, "windows") == 32, "window/windows");
    T_NEAR(json_num(o, "nll_mean"), log(ppl), 1e-9, "nll_mean = log(ppl)");
    T_CHECK(json_num(o, "seconds") > 0, "seconds");
    T_CHECK(cJSON_IsString(cJSON_GetObjectItem(o, "model")) && cJSON_IsString(cJSON_GetObjectItem(o, "data")),
            "model and data named");
    cJSON_Delete(o);
}

static void test_eval_mamba1_valid(void) { check_proxy("mamba1-proxy"); }
static void test_eval_mamba2_valid(void) { check_proxy("mamba2-proxy"); }

static void test_eval_short_data(void) {
    const char *d = t_shared("models/mamba1-proxy");
    if (!d) T_SKIP("../shared/models not found (set MQ_SHARED)");
    char path[512], args[4700], err[4096];
    snprintf(path, sizeof path, "%s/short.bin", t_tmpdir());
    int32_t ids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    T_CHECK(mq_write_file_atomic(path, ids, sizeof ids) == 0, "%s", mq_errmsg());
    snprintf(args, sizeof args, "--model %s --data %s", d, path);
    int rc;
    cJSON *o = run_eval(args, &rc, err, sizeof err);
    T_CHECK(!o && rc != 0, "10 tokens must not evaluate with a 1024-token window");
    T_CHECK(strstr(err, "fewer than one window") != NULL, "message: %s", err);
    cJSON_Delete(o);
}

int main(void) {
    T_RUN(test_eval_short_data);
    T_RUN(test_eval_mamba1_valid);
    T_RUN(test_eval_mamba2_valid);
    return t_summary();
}
