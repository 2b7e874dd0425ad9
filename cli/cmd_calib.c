/* mambaq calib: run the model over calibration text and write activation statistics (absmax,
 * percentiles, EMA, histograms, per-head maxima) to a stats file for the quantizer. Thin: option
 * parsing, defaults and the summary; the work is calib_run (calib/calib.c). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calib/calib.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/fwd.h"
#include "core/err.h"
#include "core/fio.h"
#include "core/gpu.h"
#include "core/progress.h"
#include "ssm/backend.h"

/* "99,99.9,100" -> pct[]; exits 2 naming the bad item. */
static int parse_percentiles(const char *list, double *pct) {
    int n = 0;
    const char *p = list;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || (*end && *end != ',') || !(v >= 0 && v <= 100)) {
            fprintf(stderr, "mambaq calib: --record-percentiles expects comma-separated numbers in [0, 100], got '%s'\n", list);
            exit(2);
        }
        for (int i = 0; i < n; i++)
            if (pct[i] == v) { fprintf(stderr, "mambaq calib: --record-percentiles lists %g twice\n", v); exit(2); }
        if (n == OBS_MAX_Q) { fprintf(stderr, "mambaq calib: --record-percentiles takes at most %d values\n", OBS_MAX_Q); exit(2); }
        pct[n++] = v;
        p = *end ? end + 1 : end;
    }
    if (!n) { fprintf(stderr, "mambaq calib: --record-percentiles is empty\n"); exit(2); }
    return n;
}

int cmd_calib(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_MODEL("Hugging Face Mamba/Mamba2 checkpoint directory (default: <shared>/models/mamba1-proxy)"),
        CLI_OUT("FILE", "stats file to write (safetensors)", 2),
        CLI_DATA_OPTS(NULL),
        CLI_CALIB_OPTS("512"),
        {.name = "--batch", .metavar = "N", .help = "sequences per GPU forward call (default 8 on cuda; the CPU runs one at a time; each "
                                                    "sequence is one sample either way)"},
        CLI_DEVICE("auto"),
        {.name = "--record-percentiles", .metavar = "LIST", .help = "percentiles of |v| to record, in percent",
         .def = "99,99.9,99.95,99.99,99.995,99.999,100"},
        {.name = "--percentiles", .metavar = "LIST", .alias_of = "--record-percentiles"},
        {.name = "--seed", .metavar = "N", .help = "shuffle the windows with this seed (default: consecutive windows from the start)"},
        CLI_FORCE,
        {.name = "--record-paths", .help = "record the model, data and tokenizer paths in the stats file's metadata (default: their "
                                           "names and hashes only, so that the same inputs give the same bytes on every host)"},
        CLI_RUN_OPTS,
        CLI_END,
    };
    cli_parse(argc, argv, opts,
              "mambaq calib [MODEL] OUT [--data FILE] [--samples 512] [--seqlen 512] [--device cpu|cuda|auto] [options]",
              "Runs the model (FP32 on the CPU, FP16 on the GPU) over --samples windows of --seqlen tokens of the data and\n"
              "records, for every activation the Quamba recipes quantize (named like Quamba's observers, e.g.\n"
              "backbone.layers.3.mixer.x_proj:input), absmax, exact per-sample percentiles (running max and Quamba's\n"
              "EMA), a log histogram and per-head maxima. The statistics are the same on both devices.\n"
              "--data defaults to <shared>/datasets/calib.txt. Inspect the result with 'mambaq stats OUT';\n"
              "'mambaq quantize MODEL ART --stats OUT' quantizes with it ('mambaq quantize MODEL ART' calibrates itself).",
              NULL, 0);

    calib_options o;
    calib_defaults(&o);
    o.model_dir = cli_flag(opts, "--model") ? cli_get(opts, "--model") : cli_default_path("models/mamba1-proxy");
    o.data_path = cli_flag(opts, "--data") ? cli_abspath(cli_get(opts, "--data")) : cli_default_path("datasets/calib.txt");
    if (!o.model_dir) mq_die("calib: no MODEL given and no default model at <shared>/models/mamba1-proxy (" CLI_SHARED_HINT ")");
    if (!o.data_path) mq_die("calib: no --data given and no default data at <shared>/datasets/calib.txt (" CLI_SHARED_HINT ")");
    if (!cli_get(opts, "--out")) {
        fprintf(stderr, "mambaq calib: where do the statistics go? give OUT (e.g. 'mambaq calib %s stats.safetensors') or --out FILE\n",
                o.model_dir);
        return 2;
    }
    if (fwd_require_model(o.model_dir, "calib")) mq_die("%s", mq_errmsg());
    o.tokenizer_path = cli_tokenizer(o.model_dir, cli_get(opts, "--tokenizer"));
    o.field = cli_get(opts, "--field");
    o.samples = (int)cli_int(opts, "--samples", 1, 1 << 20);
    o.seqlen = (int)cli_int(opts, "--seqlen", 1, 1 << 20);
    o.batch = cli_flag(opts, "--batch") ? (int)cli_int(opts, "--batch", 1, 4096) : 0;   /* 0: calib_run's default */
    o.device = cli_get(opts, "--device");
    o.npct = parse_percentiles(cli_get(opts, "--record-percentiles"), o.pct);
    if (cli_flag(opts, "--seed")) {
        o.seeded = 1;
        o.seed = (uint64_t)cli_int(opts, "--seed", 0, __LONG_MAX__);
    }
    o.out_path = cli_get(opts, "--out");
    o.quiet = cli_flag(opts, "--quiet");
    o.record_paths = cli_flag(opts, "--record-paths");
    /* before any work: an existing --out is kept unless --force, and the folder must be writable */
    if (fio_check_out(o.out_path, cli_flag(opts, "--force"), 0)) mq_die("calib: --out: %s", mq_errmsg());
    o.tool = "mambaq " MQ_VERSION;
    cli_threads(opts);
    int cuda;
    if (be_device_parse(o.device, &cuda)) mq_die("calib: --device: %s", mq_errmsg());

    calib_result r;
    if (calib_run(&o, &r)) mq_die("%s", mq_errmsg());
    if (cli_flag(opts, "--json")) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "stats", o.out_path);
        cJSON_AddStringToObject(j, "model", o.model_dir);
        cJSON_AddStringToObject(j, "data", o.data_path);
        cJSON_AddNumberToObject(j, "n_layer", r.n_layer);
        cJSON_AddNumberToObject(j, "activations", r.ntensors);
        cJSON_AddNumberToObject(j, "samples", o.samples);
        cJSON_AddNumberToObject(j, "seqlen", o.seqlen);
        cJSON_AddNumberToObject(j, "tokens", (double)r.tokens);
        cJSON_AddStringToObject(j, "device", r.device);
        cJSON_AddNumberToObject(j, "batch", r.batch);
        cJSON_AddNumberToObject(j, "seconds", r.seconds);
        cJSON_AddNumberToObject(j, "tokens_per_s", r.seconds > 0 ? r.tokens / r.seconds : 0);
        cJSON_AddStringToObject(j, "weights_sha256", r.model_sha256);
        cJSON_AddStringToObject(j, "data_sha256", r.data_sha256);
        cli_json_print(j, 0);
        return 0;
    }
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
