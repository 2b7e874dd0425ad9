/* mambaq quantize MODEL OUT: FP checkpoint -> int8 artifact (docs/recipe.md), in one command.
 * Without --stats it calibrates first (cli/qcli.h: the recipe's transforms, on the CPU, the same
 * windows and defaults as `mambaq run`); with --stats FILE (mambaq calib) it uses those statistics,
 * the two-step path for tuning. Then: quantize, write the artifact atomically, read it back and
 * print a summary (or --json). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/fwd.h"
#include "cli/qcli.h"
#include "core/err.h"
#include "core/fio.h"
#include "core/progress.h"
#include "export/art.h"
#include "quantize/q.h"

/* "mambaq quantize: <what><the error>" on stderr; the exit status 1. */
static int fail(const char *what) {
    fprintf(stderr, "mambaq quantize: %s%s\n", what, mq_errmsg());
    return 1;
}

static void print_json(const art_artifact *a, const char *out, const char *stats, long samples, long tokens, int extra, double secs) {
    const q_options *o = &a->qm.opt;
    const double fp16 = (double)art_fp16_params(&a->qm.cfg) * 2;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "artifact", out);
    cJSON_AddStringToObject(j, "arch", cfg_arch_name(a->qm.cfg.arch));
    cJSON_AddStringToObject(j, "method", q_method_name(o->method));
    if (q_method_uses_percentile(o->method)) cJSON_AddNumberToObject(j, "percentile", o->percentile);
    else cJSON_AddNullToObject(j, "percentile");
    cJSON_AddStringToObject(j, "weight_granularity", q_gran_name(o->weight_gran));
    cJSON_AddBoolToObject(j, "quantize_head", o->quantize_head);
    cJSON_AddBoolToObject(j, "quantize_embedding", o->quantize_embedding);
    cJSON_AddNumberToObject(j, "model_bytes", (double)a->model_bytes);
    cJSON_AddNumberToObject(j, "fp16_bytes", fp16);
    cJSON_AddNumberToObject(j, "compression_vs_fp16", fp16 / (double)a->model_bytes);
    cJSON_AddNumberToObject(j, "int8_params", (double)a->int8_params);
    cJSON_AddNumberToObject(j, "int4_params", (double)a->int4_params);
    cJSON_AddNumberToObject(j, "fp16_params", (double)a->float_params);
    cJSON *c = cJSON_AddObjectToObject(j, "calibration");
    if (stats) cJSON_AddStringToObject(c, "stats", stats);
    else cJSON_AddNullToObject(c, "stats");
    cJSON_AddNumberToObject(c, "samples", (double)samples);
    cJSON_AddNumberToObject(c, "tokens", (double)tokens);
    cJSON_AddBoolToObject(c, "extra_pass", extra);
    cJSON_AddNumberToObject(j, "seconds", secs);
    cli_json_print(j, 0);
}

int cmd_quantize(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_MODEL("FP16/BF16/FP32 checkpoint directory"),
        CLI_OUT("DIR", "artifact directory to create", 2),
        {.name = "--stats", .metavar = "FILE", .help = "calibration statistics of the model (mambaq calib): no calibration here"},
        {.name = "--calib", .metavar = "FILE", .help = "calibration data when there is no --stats: text or token ids; with --stats, "
                                                    "the data of that file when the recipe repeats its windows (default: found "
                                                    "by its recorded name and sha256)"},
        {.name = "--data", .metavar = "FILE", .help = "same as --calib", .alias_of = "--calib"},
        CLI_TOKENIZER,
        CLI_FIELD,
        CLI_CALIB_OPTS("512"),
        {.name = "--save-stats", .metavar = "FILE", .help = "keep the statistics of the calibration here (for report, sweep, --stats)"},
        CLI_RECIPE_OPTS,
        {.name = "--force", .help = "replace an existing OUT (atomically; only an artifact, never another folder) or --save-stats"},
        {.name = "--record-paths", .help = "record the model, stats and data paths in quant_config.json (and in --save-stats; default: "
                                           "their names and hashes only, so that the same inputs give the same bytes on every host)"},
        CLI_RUN_OPTS,
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq quantize MODEL OUT [--method quamba] [--calib FILE | --stats FILE] [options]",
              "Quantizes a Mamba1/Mamba2 checkpoint to int8 weights and static int8 activation scales (W8A8)\n"
              "and writes a self-describing artifact directory, readable by every mambaq command as a model.\n"
              "Without --stats it first calibrates on --calib (default <shared>/datasets/calib.txt, --samples x\n"
              "--seqlen tokens from the start, on the CPU, with the recipe's transforms), as 'mambaq run' does.\n"
              "Methods: naive (absmax clips); quamba (percentile clip of the SSM input x, Hadamard on y fused into\n"
              "out_proj, RMSNorm fused into in_proj); quamba-rot (quamba, and the residual stream rotated by a\n"
              "Hadamard of order d_model); quamba2 (per-state-group B/C and clustered x scales; --bits w8a8|w4a8|w4a16,\n"
              "int4 in_proj/out_proj by GPTQ or RTN; every mode runs on the GPU and on the CPU simulation);\n"
              "percentile-only and hadamard-only (ablations). See docs/recipe.md.",
              NULL, 0);
    const char *model = cli_need(opts, "quantize", "--model"), *out = cli_need(opts, "quantize", "--out");
    const char *stats = cli_get(opts, "--stats");
    q_options o;
    q_cli_options(opts, &o);
    cli_threads(opts);
    const int quiet = cli_flag(opts, "--quiet"), force = cli_flag(opts, "--force"), json = cli_flag(opts, "--json");
    if (stats && (cli_flag(opts, "--save-stats") || cli_flag(opts, "--samples") || cli_flag(opts, "--seqlen")))
        fprintf(stderr, "mambaq quantize: note: --samples, --seqlen and --save-stats are ignored with --stats "
                        "(the statistics are made already; --calib names their data)\n");
    const char *calib_data = cli_flag(opts, "--calib") ? cli_get(opts, "--calib") : NULL;
    if (cli_flag(opts, "--percentile") && !q_method_uses_percentile(o.method))
        fprintf(stderr, "mambaq quantize: note: --percentile is ignored by method %s (absmax clips)\n", q_method_name(o.method));
    double t0 = prog_now();

    /* everything that can be refused is checked before any compute: --out free (or --force) and
     * writable, the config, the tokenizer, the statistics */
    struct stat st;
    if (fwd_require_model(model, "quantize")) return fail("");
    if (art_check_out(out, force)) return fail("OUT: ");
    mq_config cfg;
    if (cfg_load(model, &cfg)) return fail("");
    const char *tokenizer = cli_tokenizer(model, cli_get(opts, "--tokenizer"));
    if (!tokenizer || stat(tokenizer, &st) != 0) {
        fprintf(stderr, "mambaq quantize: no tokenizer.json found for %s (give --tokenizer FILE)\n", model);
        return 1;
    }

    /* one-shot: calibrate into --save-stats, or a temporary file beside OUT removed at the end */
    char tmp_stats[4300] = "";
    const char *note = NULL;
    const int samples = (int)cli_int(opts, "--samples", 1, 1 << 20), seqlen = (int)cli_int(opts, "--seqlen", 2, 1 << 20);
    if (!stats) {
        const char *data = calib_data ? cli_abspath(calib_data) : cli_default_path("datasets/calib.txt");
        if (!data) {
            fprintf(stderr, "mambaq quantize: no calibration data: <shared>/datasets/calib.txt not found (" CLI_SHARED_HINT ");\n"
                            "give --calib FILE (text, .jsonl or token ids) or --stats FILE from mambaq calib\n");
            return 1;
        }
        if (cli_flag(opts, "--save-stats")) {
            stats = cli_get(opts, "--save-stats");
            /* an output like OUT: kept unless --force, writable */
            if (fio_check_out(stats, force, 0)) return fail("--save-stats: ");
        } else {
            size_t n = strlen(out);
            while (n > 1 && out[n - 1] == '/') n--;
            snprintf(tmp_stats, sizeof tmp_stats, "%.*s.calib.%d.safetensors", (int)n, out, (int)getpid());
            stats = tmp_stats;
            note = "none kept (calibrated by mambaq quantize; --save-stats FILE keeps the statistics)";
        }
        if (mq_mkdir_parents(stats)) return fail("");
        q_cal_spec cal = {.model = model, .data = data, .tokenizer = tokenizer, .field = cli_get(opts, "--field"),
                          .samples = samples, .seqlen = seqlen, .progress = !quiet, .record_paths = cli_flag(opts, "--record-paths")};
        if (q_cli_calibrate(&cal, &o, stats)) {
            if (tmp_stats[0]) unlink(tmp_stats);
            return fail("");
        }
        calib_data = data;   /* the passes of this run read the data just calibrated on */
    }

    int extra = 0;
    int rc = q_cli_quantize(model, stats, calib_data, tokenizer, &o, out, force, cli_flag(opts, "--record-paths"), !quiet, note, &extra);
    if (tmp_stats[0]) unlink(tmp_stats);
    if (rc) return fail("");
    /* read it back: the summary comes from the validated artifact */
    art_artifact a;
    if (art_open(out, &a)) return fail("the written artifact does not validate: ");
    const double secs = prog_now() - t0;
    if (json) {
        print_json(&a, out, tmp_stats[0] ? NULL : stats, a.prov.calib_samples, a.prov.calib_tokens, extra, secs);
        art_close(&a);
        return 0;
    }
    const q_options *ao = &a.qm.opt;
    char dur[32], size[160];
    prog_fmt_duration(secs, dur, sizeof dur);
    printf("artifact   %s\n", out);
    printf("method     %s", q_method_name(ao->method));
    if (q_method_uses_percentile(ao->method) && !q_uses_cluster(&a.qm.cfg, ao) && !(ao->method == Q_QUAMBA2 && ao->abits == 16))
        printf(", ssm_x clipped at percentile %g", ao->percentile);
    if (a.qm.hadamard_n) printf(", Hadamard %d on the out_proj input", a.qm.hadamard_n);
    if (q_method_fuses_norm(ao->method)) printf(", RMSNorm fused");
    if (a.qm.resid_n) printf(", residual stream rotated (Hadamard %d; norm_f fused into the lm_head)", a.qm.resid_n);
    if (ao->method == Q_QUAMBA2)
        printf("\nquamba2    %s, %s weights%s; ssm_x %s; B / C %s", q_big_wbits(ao) == 4 ? (ao->abits == 16 ? "W4A16" : "W4A8") : "W8A8",
               q_big_wbits(ao) == 4 ? (ao->gptq ? "GPTQ int4" : "RTN int4") : "int8",
               q_big_wbits(ao) == 4 ? " (in_proj, out_proj; conv1d, x_proj, dt_proj int8)" : "",
               ao->abits == 16 ? "float" : q_uses_cluster(&a.qm.cfg, ao) ? "clustered (4 x 4 scales per SSD group)" : "one scale",
               ao->abits == 16 ? "float" : a.qm.cfg.arch == MQ_MAMBA1 ? "the x_proj output's scale (Mamba1: one group)"
               : q_uses_state_groups(&a.qm.cfg, ao) ? "one scale per SSD group" : "one scale");
    printf("\nweights    int8 per %s: %zu int4 + %zu int8 + %zu FP16 elements (%s)%s\n", q_gran_name(ao->weight_gran), a.int4_params, a.int8_params, a.float_params,
           ao->quantize_embedding ? "embedding int8 per row, lm_head int8"
           : ao->quantize_head    ? "lm_head int8, embedding FP16"
                                  : "embedding and lm_head FP16",
           !ao->quantize_head && cfg.tie_embeddings && q_head_untied(&cfg, ao->method) ? "; the lm_head, untied by the rotation, is a tensor of its own" : "");
    printf("size       %s\n", cli_size_vs_fp16((double)a.model_bytes, (double)art_fp16_params(&a.qm.cfg) * 2, size, sizeof size));
    printf("calib      %ld samples, %ld tokens%s%s%s\n", a.prov.calib_samples, a.prov.calib_tokens,
           tmp_stats[0] ? " (calibrated here, statistics not kept)" : ", statistics in ", tmp_stats[0] ? "" : stats,
           extra ? " (+ one extra pass for the fused statistics)" : "");
    printf("time       %s\n", dur);
    art_close(&a);
    return 0;
}
