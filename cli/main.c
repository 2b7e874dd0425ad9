/* mambaq: post-training int8 quantization of Mamba models (after Quamba / Quamba2).
 * Git-style entry point: `mambaq <command> [options]`; each pipeline stage is a command that reads
 * and writes files. The commands live in cli/cmd_*.c and only call into the modules. */
#include <stdio.h>
#include <string.h>
#include "cli/cmds.h"

static const struct { const char *name; int (*fn)(int, char **); const char *help; } commands[] = {
    {"run", cmd_run, "the main job on a model: FP32 eval, calib -> quantize -> simulated int8 eval, with a summary"},
    {"eval", cmd_eval, "perplexity of a model (or an int8 artifact) on a text or token file"},
    {"tokenize", cmd_tokenize, "text -> token ids with a tokenizer.json (GPT-NeoX byte-level BPE)"},
    {"detokenize", cmd_detokenize, "token ids -> text"},
    {"info", cmd_info, "a checkpoint's config, tensors and parameter count; checks that it loads"},
    {"calib", cmd_calib, "activation statistics (absmax, percentiles, EMA, histograms) of a model on calibration data"},
    {"stats", cmd_stats, "print a calibration stats file: per-layer table and how it was made"},
    {"quantize", cmd_quantize, "model + calibration stats -> int8 artifact (W8A8 after Quamba; --method, --percentile)"},
    {"sweep", cmd_sweep, "simulated int8 perplexity per recipe and percentile vs FP32, per-layer errors"},
    {"inspect", cmd_inspect, "validate an int8 artifact and summarize it: method, sizes, per-layer scales"},
    {"verify", cmd_verify, "float model vs the int8 artifact on the GPU: ppl, top-1 agreement, KL, layer cosine, check vs simulation"},
    {"generate", cmd_generate, "streaming text generation (greedy / temperature / top-p) with an int8 artifact or a float model"},
    {"report", cmd_report, "one self-contained HTML page: per layer and activation absmax vs clip, histograms, scales, verify results"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: mambaq <command> [options]   (mambaq <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) { printf("mambaq %s\n", MQ_VERSION); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mambaq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
