/* mambaq run: the main job on the default model (../shared/models/mamba1-proxy). For now it is the
 * FP32 perplexity on valid.txt under the reference protocol (32 windows of 1024 tokens), compared
 * with the transformers value in the model's reference.json; later stages (calibrate, quantize,
 * verify) add their lines to the same summary. */
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/eval.h"
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
        {.name = "--model", .metavar = "DIR", .help = "model directory (default: ../shared/models/mamba1-proxy)"},
        {0},
    };
    cli_parse(argc, argv, opts, "mambaq run [--model DIR]",
              "The main job: FP32 perplexity of the model on valid.txt (32 x 1024 tokens), compared with\n"
              "the transformers reference. Quantization stages will be added here.", NULL, 0);
    eval_spec spec = {.window = 1024, .windows = 32, .progress = isatty(2)};
    spec.model = cli_flag(opts, "--model") ? cli_get(opts, "--model") : cli_default_path("models/mamba1-proxy");
    spec.data = cli_default_path("datasets/valid.txt");
    if (!spec.model || !spec.data) mq_die("../shared/models/mamba1-proxy or ../shared/datasets/valid.txt not found (set MQ_SHARED)");
    char tok[4200];
    struct stat st;
    snprintf(tok, sizeof tok, "%s/tokenizer.json", spec.model);
    spec.tokenizer = stat(tok, &st) == 0 ? tok : cli_default_path("models/tokenizer.json");

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
        printf("fp32 perplexity  %.4f (transformers %.4f, %+.4f%%)\n", r.ppl, ref, 100.0 * (r.ppl - ref) / ref);
    else
        printf("fp32 perplexity  %.4f (no reference.json to compare with)\n", r.ppl);
    printf("time             %.1f s (%.0f tokens/s; %.1f s loading)\n", r.seconds,
           (double)r.windows * spec.window / r.seconds, r.load_seconds);
    return 0;
}
