/* mambaq run: the main job on the default model (<shared>/models/mamba1-proxy): the FP32 perplexity
 * on valid.txt under the reference protocol (32 windows of 1024 tokens), compared with the
 * transformers value in the model's reference.json; then calib -> quantize -> validate -> simulated
 * eval (cli/qcli.c), each adding its line to the summary. */
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/eval.h"
#include "cli/fwd.h"
#include "cli/qcli.h"
#include "core/err.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* reference.json's <set>.fp32.ppl next to the model, or 0 when absent. */
static double reference_ppl(const char *model, const char *set) {
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.json", model);
    struct stat st;
    if (stat(path, &st)) return 0;
    char *txt = mq_read_file(path, NULL);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, set), "fp32"), "ppl");
    double ppl = cJSON_IsNumber(v) ? v->valuedouble : 0;
    cJSON_Delete(j);
    free(txt);
    return ppl;
}

int cmd_run(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_MODEL("model directory (default: <shared>/models/mamba1-proxy)"),
        CLI_RECIPE_OPTS,
        CLI_CALIB_OPTS("512"),
        {.name = "--out", .metavar = "DIR", .help = "where the stats file and the artifact go (DIR/<model>/)", .def = "out/run"},
        {.name = "--fp32-only", .help = "stop after the FP32 evaluation"},
        {.name = "--force", .help = "replace the artifact (and a stats file that does not match) of an earlier run in --out"},
        CLI_THREADS,
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq run [MODEL] [--method quamba] [--out out/run]",
              "The main job: FP32 perplexity of the model on valid.txt (32 x 1024 tokens), compared with\n"
              "the transformers reference; then calibrate on calib.txt, quantize (W8A8), validate the artifact\n"
              "and evaluate it by simulated quantization on the same protocol.", NULL, 0);
    cli_threads(opts);
    eval_spec spec = {.window = 1024, .windows = 32, .progress = 1, .cmd = "run"};
    spec.model = cli_flag(opts, "--model") ? cli_get(opts, "--model") : cli_default_path("models/mamba1-proxy");
    spec.data = cli_default_path("datasets/valid.txt");
    if (!spec.model || !spec.data) mq_die("run: <shared>/models/mamba1-proxy or <shared>/datasets/valid.txt not found (" CLI_SHARED_HINT ")");
    if (fwd_require_model(spec.model, "run")) mq_die("%s", mq_errmsg());
    spec.tokenizer = cli_tokenizer(spec.model, NULL);

    /* the outputs are checked before any work (cli/qcli.c) */
    q_run_spec qs = {.model = spec.model, .calib_data = cli_default_path("datasets/calib.txt"), .eval_data = spec.data,
                     .tokenizer = spec.tokenizer, .out_dir = cli_get(opts, "--out"), .window = spec.window,
                     .windows = spec.windows, .progress = 1, .force = cli_flag(opts, "--force")};
    if (!qs.calib_data) mq_die("run: <shared>/datasets/calib.txt not found (" CLI_SHARED_HINT ")");
    qs.samples = (int)cli_int(opts, "--samples", 1, 1 << 20);
    qs.seqlen = (int)cli_int(opts, "--seqlen", 2, 1 << 20);
    q_cli_options(opts, &qs.opt);
    q_run_result qr;
    if (!cli_flag(opts, "--fp32-only") && q_cli_run_prepare(&qs, &qr)) {
        fprintf(stderr, "mambaq run: %s\n", mq_errmsg());
        return 1;
    }

    printf("mambaq run: %s\n", spec.model);
    eval_result r;
    if (eval_run(&spec, &r)) {
        fprintf(stderr, "mambaq run: %s\n", mq_errmsg());
        return 1;
    }
    double ref = reference_ppl(spec.model, "valid");
    printf("\n== summary\n");
    printf("model            %s (%s, %.1fM parameters)\n", spec.model, r.arch, r.params * 1e-6);
    printf("data             %s: %d windows x %d tokens, %ld scored\n", spec.data, r.windows, spec.window,
           r.tokens_scored);
    if (ref > 0)
        printf("fp32 perplexity  %.4f +/- %.4f (transformers %.4f, %+.4f%%)\n", r.ppl, r.ppl_err, ref, 100.0 * (r.ppl - ref) / ref);
    else
        printf("fp32 perplexity  %.4f +/- %.4f (no reference.json to compare with)\n", r.ppl, r.ppl_err);
    printf("time             %.1f s (%.0f tokens/s; %.1f s loading)\n", r.seconds,
           (double)r.windows * spec.window / r.seconds, r.load_seconds);
    if (cli_flag(opts, "--fp32-only")) return 0;
    fflush(stdout);

    /* calib -> quantize -> validate -> simulated eval (cli/qcli.c) */
    if (q_cli_run(&qs, &qr)) {
        fprintf(stderr, "mambaq run: %s\n", mq_errmsg());
        return 1;
    }
    printf("calibration      %s: %d x %d tokens of %s%s (%.1f s)\n", qr.stats, qs.samples, qs.seqlen, qs.calib_data,
           qr.stats_reused ? ", reused" : "", qr.calib_seconds);
    char size[160];
    printf("artifact         %s: %s, %s, valid (%.1f s)\n", qr.artifact, qr.method,
           cli_size_vs_fp16((double)qr.artifact_bytes, (double)qr.fp16_bytes, size, sizeof size), qr.quantize_seconds);
    printf("int8 perplexity  %.4f +/- %.4f %s (%+.2f%% vs FP32) (%.1f s)\n", qr.ppl, qr.ppl_err, qr.forward, 100.0 * (qr.ppl / r.ppl - 1),
           qr.eval_seconds);
    return 0;
}
