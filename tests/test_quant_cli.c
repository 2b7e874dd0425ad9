/* End to end through the CLI on both proxies, CI-sized: mambaq calib (a few short windows) ->
 * mambaq quantize (quamba, and quamba-rot; the extra pass supplies the fused and rotated
 * statistics) -> mambaq eval --artifact (--json, one window) -> mambaq inspect (--json and text);
 * mambaq sweep over naive, quamba and quamba-rot.
 * Also: quantize refuses the stats of the
 * other proxy, refuses an existing --out without --force, and inspect exits non-zero on a damaged
 * artifact. Needs bin/mambaq (make all) and ../shared. */
#include "tests/cli_run.h"
#include "tests/test.h"

/* eval --artifact on 1 x 256 tokens of valid.txt: a plausible ppl, the artifact's method in the JSON. */
static void eval_artifact(int arch, const char *art, const char *method, const char *what, const char *log) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "bin/mambaq eval --artifact '%s' --data '%s/datasets/valid.txt' --window 256 --windows 1 --json", art,
             shared_dir());
    T_CHECK(sh(cmd, log) == 0, "eval --artifact (%s) failed: %s", what, slurp(log));
    cJSON *j = last_json(log);
    cJSON *ppl = cJSON_GetObjectItem(j, "ppl"), *meth = cJSON_GetObjectItem(j, "method");
    T_CHECK(cJSON_IsNumber(ppl) && isfinite(ppl->valuedouble) && ppl->valuedouble > 1 && ppl->valuedouble < 1e4,
            "eval --artifact %s ppl: %s", what, slurp(log));
    T_CHECK(cJSON_IsString(meth) && !strcmp(meth->valuestring, method), "eval json method of %s", what);
    if (cJSON_IsNumber(ppl)) printf("    mamba%d simulated %s ppl, 1 x 256 tokens of valid.txt: %.3f\n", arch, what, ppl->valuedouble);
    cJSON_Delete(j);
}

/* inspect --json of art, parsed (NULL when it failed; checked here). */
static cJSON *inspect_json(const char *art, const char *log) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s' --json", art);
    T_CHECK(sh(cmd, log) == 0, "inspect %s failed: %s", art, slurp(log));
    char *o = slurp(log);
    cJSON *j = cJSON_Parse(o);
    free(o);
    return j;
}

static void e2e(int arch) {
    struct stat st;
    if (stat("bin/mambaq", &st) != 0) T_SKIP("bin/mambaq not built");
    if (!t_shared("models/mamba1-proxy") || !t_shared("datasets/calib.txt")) T_SKIP("../shared not found");
    const char *sh_dir = shared_dir(), *tmp = t_tmpdir();
    char model[4200], other[4200], stats[600], ostats[600], art[600], log[600], cmd[16384];
    snprintf(model, sizeof model, "%s/models/mamba%d-proxy", sh_dir, arch);
    snprintf(other, sizeof other, "%s/models/mamba%d-proxy", sh_dir, 3 - arch);
    snprintf(stats, sizeof stats, "%s/stats_m%d.safetensors", tmp, arch);
    snprintf(ostats, sizeof ostats, "%s/stats_m%d.safetensors", tmp, 3 - arch);
    snprintf(art, sizeof art, "%s/art_m%d", tmp, arch);
    snprintf(log, sizeof log, "%s/log_m%d.txt", tmp, arch);

    snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s' --data '%s/datasets/calib.txt' --samples 3 --seqlen 128 --out '%s' --quiet",
             model, sh_dir, stats);
    T_CHECK(sh(cmd, log) == 0, "calib failed: %s", slurp(log));
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --quiet", model, stats, art);
    T_CHECK(sh(cmd, log) == 0, "quantize failed: %s", slurp(log));
    char *o = slurp(log);
    T_CHECK(strstr(o, "method     quamba") && strstr(o, "smaller"), "quantize summary: %s", o);
    free(o);
    /* again without --force: refused, the artifact stays */
    T_CHECK(sh(cmd, log) != 0, "existing --out accepted");
    o = slurp(log);
    T_CHECK(strstr(o, "already exists") && strstr(o, "--force"), "message: %s", o);
    free(o);

    eval_artifact(arch, art, "quamba", "quamba", log);
    cJSON *j = inspect_json(art, log);
    T_CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "valid")) && cJSON_GetObjectItem(j, "compression_vs_fp16") &&
            cJSON_GetObjectItem(j, "compression_vs_fp16")->valuedouble > 1.0, "inspect json");
    T_CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "layers")) == (arch == 1 ? 24 : 20), "inspect layers");
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", art);
    T_CHECK(sh(cmd, log) == 0, "inspect text failed");
    o = slurp(log);
    T_CHECK(strstr(o, "valid") && strstr(o, "activation scales") && strstr(o, "Hadamard 384"), "inspect text: %.300s", o);
    free(o);

    /* quamba-rot from the same stats: the rotated in_proj / lm_head statistics come from the extra pass */
    char art_rot[700];
    snprintf(art_rot, sizeof art_rot, "%s_rot", art);
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --method quamba-rot --quantize-head --force",
             model, stats, art_rot);
    T_CHECK(sh(cmd, log) == 0, "quantize quamba-rot failed: %s", slurp(log));
    o = slurp(log);
    T_CHECK(strstr(o, "method     quamba-rot") && strstr(o, "residual stream rotated (Hadamard 192") && strstr(o, "lm_head input"),
            "quamba-rot summary: %s", o);
    free(o);
    eval_artifact(arch, art_rot, "quamba-rot", "quamba-rot (int8 lm_head)", log);
    j = inspect_json(art_rot, log);
    T_CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "residual_rotation_order")) == 192 &&
            cJSON_IsFalse(cJSON_GetObjectItem(j, "lm_head_tied_to_embedding")) && cJSON_IsTrue(cJSON_GetObjectItem(j, "norm_f_fused")),
            "inspect json of quamba-rot");
    cJSON_Delete(j);
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", art_rot);
    T_CHECK(sh(cmd, log) == 0, "inspect text failed");
    o = slurp(log);
    T_CHECK(strstr(o, "residual stream rotated by Hadamard 192 = 12 x 2^4") && strstr(o, "untied by the residual rotation"),
            "inspect text: %.600s", o);
    free(o);

    /* sweep takes quamba-rot beside the others (one short window: that it runs and its numbers are sane) */
    snprintf(cmd, sizeof cmd, "bin/mambaq sweep --model '%s' --stats '%s' --data '%s/datasets/valid.txt' --methods naive,quamba,quamba-rot "
             "--percentiles 99.95 --window 128 --windows 1 --json --quiet", model, stats, sh_dir);
    T_CHECK(sh(cmd, log) == 0, "sweep failed: %s", slurp(log));
    j = last_json(log);
    cJSON *res = cJSON_GetObjectItem(j, "results");
    double fp = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "fp32_ppl"));
    T_CHECK(cJSON_GetArraySize(res) == 3, "sweep results: %s", slurp(log));
    for (int i = 0; i < cJSON_GetArraySize(res); i++) {
        cJSON *r = cJSON_GetArrayItem(res, i);
        double p = cJSON_GetNumberValue(cJSON_GetObjectItem(r, "ppl"));
        const cJSON *oe = cJSON_GetObjectItem(r, "out_proj_rel_err");
        double worst = 0;
        for (int l = 0; l < cJSON_GetArraySize(oe); l++) worst = fmax(worst, cJSON_GetNumberValue(cJSON_GetArrayItem(oe, l)));
        const char *mn = cJSON_GetStringValue(cJSON_GetObjectItem(r, "method"));
        /* the rotated out_proj output is rotated back before the comparison: its error is small too
         * (not rotated back it would be ~1.4, the distance between two unrelated vectors) */
        T_CHECK(isfinite(p) && fabs(p / fp - 1) < 0.1 && worst < 0.6, "sweep %s: ppl %g (fp32 %g), out_proj error up to %g", mn ? mn : "?",
                p, fp, worst);
        printf("    sweep mamba%d 1 x 128 tokens: %s ppl %.3f (fp32 %.3f), out_proj output error up to %.3f\n", arch, mn ? mn : "?", p, fp, worst);
        if (i == 2) T_CHECK(mn && !strcmp(mn, "quamba-rot") && worst < 0.3, "quamba-rot row: %s, out_proj error %g", mn ? mn : "?", worst);
    }
    cJSON_Delete(j);

    /* damage one scale: inspect must fail naming the file and the tensor */
    char bad[700];
    snprintf(bad, sizeof bad, "%s_bad", art);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s' && rm '%s/quant_config.json'", bad, art, bad, bad);
    T_CHECK(system(cmd) == 0, "cp");
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", bad);
    T_CHECK(sh(cmd, log) != 0, "inspect accepted a damaged artifact");
    o = slurp(log);
    T_CHECK(strstr(o, "quant_config.json"), "inspect message: %s", o);
    free(o);

    /* stats of the other proxy: refused before any work */
    if (stat(ostats, &st) == 0) {
        snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s_x' --quiet", model, ostats, art);
        T_CHECK(sh(cmd, log) != 0, "stats of another model accepted");
        o = slurp(log);
        T_CHECK(strstr(o, "other weights") && strstr(o, ostats), "message: %s", o);
        free(o);
        snprintf(cmd, sizeof cmd, "%s_x", art);
        T_CHECK(stat(cmd, &st) != 0, "an artifact was written from another model's stats");
    }
}

static void test_e2e_mamba1(void) { e2e(1); }
static void test_e2e_mamba2(void) { e2e(2); }

int main(void) {
    T_RUN(test_e2e_mamba1);
    T_RUN(test_e2e_mamba2);
    return t_summary();
}
