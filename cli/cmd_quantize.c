/* mambaq quantize: FP checkpoint + calibration statistics -> int8 artifact (docs/recipe.md).
 * Steps: check the stats belong to this model (weights hash) and that --out is free, load the model,
 * run the extra calibration pass when the recipe's fusions need statistics the file lacks, quantize,
 * write the artifact atomically, print a summary. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/qcli.h"
#include "core/err.h"
#include "core/progress.h"
#include "export/art.h"
#include "quantize/cstats.h"
#include "quantize/q.h"

int cmd_quantize(int argc, char **argv) {
    cli_opt opts[] = {
        {"--model", "DIR", "FP16/BF16/FP32 checkpoint directory", NULL, NULL, 0},
        {"--stats", "FILE", "calibration statistics of that model (mambaq calib)", NULL, NULL, 0},
        {"--out", "DIR", "artifact directory to create", NULL, NULL, 0},
        {"--method", "NAME", "naive | quamba | quamba-rot | percentile-only | hadamard-only (docs/recipe.md)", "quamba", NULL, 0},
        {"--percentile", "P", "percentile clip of the SSM input x, in percent (methods with a percentile clip)", "99.95", NULL, 0},
        {"--weight-granularity", "G", "tensor | channel (one scale per output channel)", "tensor", NULL, 0},
        {"--quantize-head", NULL, "also quantize lm_head (weight and input); default: FP16", NULL, NULL, 0},
        {"--tokenizer", "FILE", "tokenizer.json to copy into the artifact (default: DIR/tokenizer.json, DIR/../tokenizer.json)", NULL, NULL, 0},
        {"--force", NULL, "replace an existing --out (atomically; only an artifact, never another folder)", NULL, NULL, 0},
        {"--record-paths", NULL, "record the model, stats and data paths in quant_config.json (default: their names and hashes "
                                 "only, so that the same inputs give the same bytes on every host)", NULL, NULL, 0},
        {"--threads", "N", "CPU threads (default: all)", NULL, NULL, 0},
        {"--quiet", NULL, "no progress output", NULL, NULL, 0},
        {0},
    };
    cli_parse(argc, argv, opts, "mambaq quantize --model DIR --stats FILE --out DIR [options]",
              "Quantizes a Mamba1/Mamba2 checkpoint to int8 weights and static int8 activation scales (W8A8)\n"
              "and writes a self-describing artifact directory. Methods: naive (absmax clips); quamba (percentile\n"
              "clip of the SSM input x, Hadamard on y fused into out_proj, RMSNorm fused into in_proj); quamba-rot\n"
              "(quamba, and the residual stream rotated by a Hadamard of order d_model: embedding, in_proj, out_proj\n"
              "and lm_head rotated, norm_f fused into an untied lm_head, so in_proj's input is rotated too);\n"
              "percentile-only and hadamard-only (ablations). See docs/recipe.md for the recipes.",
              NULL, 0);
    const char *model = cli_get(opts, "--model"), *stats = cli_get(opts, "--stats"), *out = cli_get(opts, "--out");
    if (!model || !stats || !out) {
        fprintf(stderr, "mambaq quantize: --model, --stats and --out are required (see 'mambaq quantize --help')\n");
        return 2;
    }
    q_options o;
    q_cli_options(opts, &o);
    cli_threads(opts);
    int quiet = cli_flag(opts, "--quiet"), force = cli_flag(opts, "--force");
    if (cli_flag(opts, "--percentile") && !q_method_uses_percentile(o.method))
        fprintf(stderr, "mambaq quantize: note: --percentile is ignored by method %s (absmax clips)\n", q_method_name(o.method));
    double t0 = prog_now();

    /* everything that can be refused is checked before any compute: --out free (or --force) and
     * writable, the config, the tokenizer, the statistics */
    struct stat st;
    if (art_check_out(out, force)) {
        fprintf(stderr, "mambaq quantize: --out: %s\n", mq_errmsg());
        return 1;
    }
    mq_config cfg;
    if (cfg_load(model, &cfg)) {
        fprintf(stderr, "mambaq quantize: %s\n", mq_errmsg());
        return 1;
    }
    const char *tokenizer = q_cli_tokenizer(model, cli_get(opts, "--tokenizer"));
    if (!tokenizer || stat(tokenizer, &st) != 0) {
        fprintf(stderr, "mambaq quantize: no tokenizer.json found for %s (give --tokenizer)\n", model);
        return 1;
    }
    char cfg_path[4200];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", model);
    if (!quiet) fprintf(stderr, "[1/4] statistics  %s\n", stats);
    q_cstats cs;
    if (q_cstats_open(&cs, stats, model, &cfg)) {
        fprintf(stderr, "mambaq quantize: %s\n", mq_errmsg());
        return 1;
    }
    if (q_cli_check_stats(cs.cs, stats)) {
        fprintf(stderr, "mambaq quantize: %s\n", mq_errmsg());
        q_cstats_close(&cs);
        return 1;
    }
    if (!quiet) fprintf(stderr, "[2/4] loading     %s\n", model);
    mq_model m;
    if (ssm_load(model, &m)) {
        fprintf(stderr, "mambaq quantize: %s\n", mq_errmsg());
        q_cstats_close(&cs);
        return 1;
    }
    int missing = q_cstats_missing(&cs, &o);
    if (missing) {
        if (!quiet)
            fprintf(stderr, "      extra pass: %s lacks%s%s%s%s%s (calib ran without the transforms of this recipe);\n"
                            "      repeating its calibration windows\n", stats,
                    missing & 1 ? " the in_proj input statistics of this recipe" : "",
                    (missing & 1) && (missing & 6) ? "," : "",
                    missing & 2 ? " the rotated out_proj input statistics" : "",
                    (missing & 2) && (missing & 4) ? "," : "",
                    missing & 4 ? " the lm_head input statistics of this recipe" : "");
        if (q_cstats_fused_pass(&cs, &m, tokenizer, !quiet)) {
            fprintf(stderr, "mambaq quantize: %s\n", mq_errmsg());
            ssm_free(&m);
            q_cstats_close(&cs);
            return 1;
        }
    }
    if (!quiet) fprintf(stderr, "[3/4] quantizing  method %s\n", q_method_name(o.method));
    q_stats qs = q_cstats_iface(&cs);
    q_model qm;
    int rc = q_quantize(&m, &qs, &o, &qm);
    ssm_free(&m);
    if (rc) {
        fprintf(stderr, "mambaq quantize: %s\n", mq_errmsg());
        q_cstats_close(&cs);
        return 1;
    }
    if (!quiet) fprintf(stderr, "[4/4] writing     %s\n", out);
    art_provenance pv;
    q_cli_provenance(&cs, model, cli_flag(opts, "--record-paths"), &pv);
    rc = art_write(out, &qm, &pv, cfg_path, tokenizer, force);
    q_model_free(&qm);
    q_cstats_close(&cs);
    if (rc) {
        fprintf(stderr, "mambaq quantize: %s\n", mq_errmsg());
        return 1;
    }
    /* read it back: the summary comes from the validated artifact */
    art_artifact a;
    if (art_open(out, &a)) {
        fprintf(stderr, "mambaq quantize: the written artifact does not validate: %s\n", mq_errmsg());
        return 1;
    }
    size_t fp16 = art_fp16_params(&a.qm.cfg) * 2;
    char dur[32];
    prog_fmt_duration(prog_now() - t0, dur, sizeof dur);
    printf("artifact   %s\n", out);
    printf("method     %s", q_method_name(o.method));
    if (q_method_uses_percentile(o.method)) printf(", ssm_x clipped at percentile %g", o.percentile);
    if (a.qm.hadamard_n) printf(", Hadamard %d on the out_proj input", a.qm.hadamard_n);
    if (q_method_fuses_norm(o.method)) printf(", RMSNorm fused");
    if (a.qm.resid_n) printf(", residual stream rotated (Hadamard %d; norm_f fused into the lm_head)", a.qm.resid_n);
    printf("\nweights    int8 per %s: %zu int8 + %zu FP16 elements%s%s\n", q_gran_name(o.weight_gran), a.int8_params, a.float_params,
           o.quantize_head ? " (lm_head int8)" : " (embedding and lm_head FP16)",
           !o.quantize_head && cfg.tie_embeddings && q_head_untied(&cfg, o.method) ? "; the lm_head, untied by the rotation, is a tensor of its own" : "");
    printf("size       %.2f MB (FP16: %.2f MB, %.2fx smaller)\n", a.model_bytes / 1e6, fp16 / 1e6, (double)fp16 / a.model_bytes);
    printf("calib      %ld samples, %ld tokens%s\n", pv.calib_samples, pv.calib_tokens, missing ? " (+ one extra pass for the fused statistics)" : "");
    printf("time       %s\n", dur);
    art_close(&a);
    return 0;
}
