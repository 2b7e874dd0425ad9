/* mambaq calib: run the model over calibration text and write activation statistics (absmax,
 * percentiles, EMA, histograms, per-head maxima) to a stats file for the quantizer. Thin: option
 * parsing, defaults and the summary; the work is calib_run (calib/calib.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "calib/calib.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "core/err.h"
#include "core/fio.h"
#include "core/gpu.h"
#include "core/progress.h"

/* "99,99.9,100" -> pct[]; exits 2 naming the bad item. */
static int parse_percentiles(const char *list, double *pct) {
    int n = 0;
    const char *p = list;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !(v >= 0 && v <= 100)) {
            fprintf(stderr, "mambaq calib: --percentiles expects comma-separated numbers in [0, 100], got '%s'\n", list);
            exit(2);
        }
        for (int i = 0; i < n; i++)
            if (pct[i] == v) { fprintf(stderr, "mambaq calib: --percentiles lists %g twice\n", v); exit(2); }
        if (n == OBS_MAX_Q) { fprintf(stderr, "mambaq calib: --percentiles takes at most %d values\n", OBS_MAX_Q); exit(2); }
        pct[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (!n) { fprintf(stderr, "mambaq calib: --percentiles is empty\n"); exit(2); }
    return n;
}

static int exists(const char *p) { struct stat st; return p && stat(p, &st) == 0; }

int cmd_calib(int argc, char **argv) {
    cli_opt opts[] = {
        {"--model", "DIR", "Hugging Face Mamba/Mamba2 checkpoint directory", NULL, NULL, 0},
        {"--data", "FILE", "calibration data: .txt/.jsonl(.gz) text, or .bin/.ids int32 token ids", NULL, NULL, 0},
        {"--tokenizer", "FILE", "tokenizer.json for text data (default: DIR/tokenizer.json, else ../shared/models/tokenizer.json)", NULL, NULL, 0},
        {"--samples", "N", "calibration samples (token windows)", "512", NULL, 0},
        {"--seqlen", "N", "tokens per sample", "512", NULL, 0},
        {"--batch", "N", "sequences per GPU forward call (default 8 on cuda; the CPU runs one at a time; each sequence is "
                         "one sample either way)", NULL, NULL, 0},
        {"--device", "cpu|cuda|auto", "where the forward runs (auto: cuda when a GPU is usable, else cpu)", "auto", NULL, 0},
        {"--percentiles", "LIST", "percentiles of |v| to record, in percent", "99,99.9,99.95,99.99,99.995,99.999,100", NULL, 0},
        {"--seed", "N", "shuffle the windows with this seed (default: consecutive windows from the start)", NULL, NULL, 0},
        {"--out", "FILE", "stats file to write (safetensors)", "stats.safetensors", NULL, 0},
        {"--force", NULL, "replace an existing --out", NULL, NULL, 0},
        {"--quiet", NULL, "no progress bar", NULL, NULL, 0},
        {NULL, NULL, NULL, NULL, NULL, 0},
    };
    opts[0].def = cli_default_path("models/mamba1-proxy");
    opts[1].def = cli_default_path("datasets/calib.txt");
    cli_parse(argc, argv, opts,
              "mambaq calib [--model DIR] [--data FILE] [--samples 512] [--seqlen 512] [--batch N] [--device cpu|cuda|auto] "
              "[--percentiles LIST] [--seed N] [--out stats.safetensors]",
              "Runs the model (FP32 on the CPU, FP16 on the GPU) over --samples windows of --seqlen tokens of the data and\n"
              "records, for every activation the Quamba recipes quantize (named like Quamba's observers, e.g.\n"
              "backbone.layers.3.mixer.x_proj:input), absmax, exact per-sample percentiles (running max and Quamba's\n"
              "EMA), a log histogram and per-head maxima. The statistics are the same on both devices.\n"
              "Inspect the result with 'mambaq stats FILE'.",
              NULL, 0);

    calib_options o;
    calib_defaults(&o);
    o.model_dir = cli_get(opts, "--model");
    o.data_path = cli_get(opts, "--data");
    if (!o.model_dir) mq_die("calib: no --model given and no default model at ../shared/models/mamba1-proxy");
    if (!o.data_path) mq_die("calib: no --data given and no default data at ../shared/datasets/calib.txt");
    o.tokenizer_path = cli_get(opts, "--tokenizer");
    if (!o.tokenizer_path) {
        static char buf[4096];
        snprintf(buf, sizeof buf, "%s/tokenizer.json", o.model_dir);
        o.tokenizer_path = exists(buf) ? buf : cli_default_path("models/tokenizer.json");
    }
    o.samples = (int)cli_int(opts, "--samples", 1, 1 << 20);
    o.seqlen = (int)cli_int(opts, "--seqlen", 1, 1 << 20);
    o.batch = cli_flag(opts, "--batch") ? (int)cli_int(opts, "--batch", 1, 4096) : 0;   /* 0: calib_run's default */
    o.device = cli_get(opts, "--device");
    o.npct = parse_percentiles(cli_get(opts, "--percentiles"), o.pct);
    if (cli_flag(opts, "--seed")) {
        o.seeded = 1;
        o.seed = (uint64_t)cli_int(opts, "--seed", 0, __LONG_MAX__);
    }
    o.out_path = cli_get(opts, "--out");
    o.quiet = cli_flag(opts, "--quiet");
    /* before any work: an existing --out is kept unless --force, and the folder must be writable */
    if (fio_check_out(o.out_path, cli_flag(opts, "--force"), 0)) mq_die("calib: --out: %s", mq_errmsg());
    o.tool = "mambaq " MQ_VERSION;

    if (!strcmp(o.device, "cuda")) {
        const char *why = NULL;
        if (!gpu_available(&why)) mq_die("calib: --device cuda: not available: %s; use --device cpu", why ? why : "no GPU");
    }
    if (strcmp(o.device, "cpu") && strcmp(o.device, "cuda") && strcmp(o.device, "auto"))
        mq_die("calib: --device expects cpu, cuda or auto, got '%s'", o.device);

    calib_result r;
    if (calib_run(&o, &r)) mq_die("%s", mq_errmsg());
    char dur[32], rate[32];
    prog_fmt_duration(r.seconds, dur, sizeof dur);
    prog_fmt_rate(r.seconds > 0 ? r.tokens / r.seconds : 0, rate, sizeof rate);
    char where[700];
    if (!strcmp(r.device, "cuda")) snprintf(where, sizeof where, "the GPU (%s), batch %d", gpu_describe(), r.batch);
    else snprintf(where, sizeof where, "the cpu");
    printf("calib: %s: %d layers, %d activations observed over %d samples x %d tokens (%s) in %s, %s tok/s on %s\n",
           o.model_dir, r.n_layer, r.ntensors, o.samples, o.seqlen, o.seeded ? "shuffled windows" : "consecutive windows",
           dur, rate, where);
    printf("wrote %s (weights sha256 %.12s..., data sha256 %.12s...); inspect with: mambaq stats %s\n", o.out_path,
           r.model_sha256, r.data_sha256, o.out_path);
    return 0;
}
