/* mambaq generate MODEL --prompt TEXT: streaming text generation (MODEL: an artifact or a checkpoint).
 * The prompt is encoded with the tokenizer, prefilled in one call, then tokens are sampled one at a
 * time (greedy at --temperature 0, else softmax(logits / T) restricted to the smallest set of tokens
 * whose probability reaches --top-p) and printed as soon as they form complete UTF-8 text, until
 * --max-tokens or the end-of-text token. The forward is cli/fwd.h's by --device (auto = the GPU when
 * there is one): the int8 pass or its CPU simulation for an artifact, FP16 on the GPU or FP32 on
 * the CPU for a float model; decode steps on the GPU run as CUDA graphs. Timing goes to stderr at
 * the end (prefill ms, decode tokens/s). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/fwd.h"
#include "core/err.h"
#include "core/progress.h"
#include "datasets/tok.h"


/* ---- sampling */

static uint64_t g_rng;
static double urand(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct { float p; int id; } cand;
static int cmp_cand(const void *a, const void *b) {
    float x = ((const cand *)a)->p, y = ((const cand *)b)->p;
    return (x < y) - (x > y);
}

/* greedy (temp <= 0) or nucleus sampling over ids [0, n) */
static int32_t sample(const float *logits, int n, double temp, double top_p, cand *buf) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    if (temp <= 0) return best;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        buf[i].p = (float)exp((logits[i] - logits[best]) / temp);
        buf[i].id = i;
        sum += buf[i].p;
    }
    qsort(buf, n, sizeof *buf, cmp_cand);
    double keep = 0;
    int k = 0;
    while (k < n && (k == 0 || keep < top_p * sum)) keep += buf[k++].p;
    double r = urand() * keep, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += buf[i].p;
        if (r < acc) return buf[i].id;
    }
    return buf[k - 1].id;
}

/* 1 when logits[0..n) are all finite; else 0 + a message naming the step (NaN/Inf logits would
 * make sample() print nonsense, e.g. the same token again and again). */
static int logits_finite(const float *logits, int n, int step) {
    for (int i = 0; i < n; i++)
        if (!isfinite(logits[i]))
            return !mq_fail("the logits of generated token %d are not finite (logit %d = %g): the model's activations "
                            "overflow float32, or its weights or scales are broken", step, i, (double)logits[i]);
    return 1;
}

/* Prints the decoded text of ids[0..n) beyond *printed bytes, holding back a trailing U+FFFD (a
 * character whose bytes have not all been generated yet) unless final. */
static void stream(const tok_tokenizer *t, const int32_t *ids, size_t n, size_t *printed, int final) {
    size_t len;
    char *s = tok_decode(t, ids, n, &len);
    if (!s) return;
    size_t end = len;
    if (!final)
        while (end >= 3 && !memcmp(s + end - 3, "\xEF\xBF\xBD", 3)) end -= 3;
    if (end > *printed) {
        fwrite(s + *printed, 1, end - *printed, stdout);
        fflush(stdout);
        *printed = end;
    }
    free(s);
}

int cmd_generate(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_MODEL("an int8 artifact (mambaq quantize) or a float checkpoint"),
        CLI_ARTIFACT_SYNONYM,
        {.name = "--prompt", .metavar = "TEXT", .help = "the prompt", .def = "The"},
        {.name = "--prompt-file", .metavar = "FILE", .help = "read the prompt from a file"},
        {.name = "--max-tokens", .metavar = "N", .help = "tokens to generate", .def = "64"},
        {.name = "--temperature", .metavar = "T", .help = "0 = greedy", .def = "0"},
        {.name = "--top-p", .metavar = "P", .help = "nucleus sampling mass", .def = "0.9"},
        {.name = "--seed", .metavar = "N", .help = "sampling seed", .def = "1"},
        CLI_DEVICE("auto"),
        CLI_TOKENIZER,
        {.name = "--ignore-eos", .help = "do not stop at the end-of-text token"},
        CLI_THREADS,
        {.name = "--quiet", .help = "no timing line on stderr"},
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq generate MODEL [--prompt TEXT] [options]",
              "Streams text generated from the prompt by an int8 artifact (the int8 GPU pass, or its CPU\n"
              "simulation) or a float model (FP16 on the GPU, FP32 on the CPU).", NULL, 0);
    const char *path = cli_need(opts, "generate", "--model");
    const int max_tokens = (int)cli_int(opts, "--max-tokens", 0, 1 << 20);
    const double temp = cli_double(opts, "--temperature", 0, 100), top_p = cli_double(opts, "--top-p", 1e-6, 1);
    g_rng = (uint64_t)cli_int(opts, "--seed", 0, 1L << 62) * 0x9E3779B97F4A7C15ull + 1;
    const char *dev = cli_get(opts, "--device");
    cli_threads(opts);
    /* tokenizer and prompt */
    const char *tokpath = cli_tokenizer(path, cli_get(opts, "--tokenizer"));
    if (!tokpath) {
        fprintf(stderr, "mambaq generate: no tokenizer.json found (give --tokenizer FILE)\n");
        return 1;
    }
    tok_tokenizer *tok = tok_load(tokpath);
    if (!tok) {
        fprintf(stderr, "mambaq generate: %s\n", mq_errmsg());
        return 1;
    }
    char *prompt = NULL;
    if (cli_get(opts, "--prompt-file")) {
        if (!(prompt = mq_read_file(cli_get(opts, "--prompt-file"), NULL))) {
            fprintf(stderr, "mambaq generate: %s\n", mq_errmsg());
            return 1;
        }
    } else {
        prompt = strdup(cli_get(opts, "--prompt"));
    }
    int32_t *pids = NULL;
    size_t np = 0;
    const char *from = cli_get(opts, "--prompt-file") ? cli_get(opts, "--prompt-file") : "--prompt";
    if (tok_encode(tok, prompt, strlen(prompt), &pids, &np)) {
        fprintf(stderr, "mambaq generate: the prompt (%s) is not valid UTF-8 text: %s\n", from, mq_errmsg());
        return 1;
    }
    if (np == 0) {
        fprintf(stderr, "mambaq generate: the prompt (%s) encodes to no tokens\n", from);
        return 1;
    }

    /* the forward: one sequence, the prompt prefilled in one call */
    double t0 = prog_now();
    fwd f;
    if (fwd_open(&f, path, dev, 1, (int)np)) {
        fprintf(stderr, "mambaq generate: %s\n", mq_errmsg());
        return 1;
    }
    be_state *state = be_state_new(f.b, 1);
    if (!state) {
        fprintf(stderr, "mambaq generate: %s\n", mq_errmsg());
        return 1;
    }
    const int V = be_config(f.b)->vocab_size;
    const double load_s = prog_now() - t0;
    /* sample only ids the tokenizer can print (the vocabulary is padded) */
    int nv = tok_vocab_size(tok) < V ? tok_vocab_size(tok) : V;
    const int32_t eos = cli_flag(opts, "--ignore-eos") ? -1 : tok_token_to_id(tok, "<|endoftext|>");

    float *logits = mq_malloc((size_t)V * sizeof(float));
    cand *cb = mq_malloc((size_t)V * sizeof(cand));
    int32_t *out = mq_malloc(((size_t)max_tokens + 1) * sizeof(int32_t));
    size_t printed = 0;
    fputs(prompt, stdout);
    fflush(stdout);
    double t1 = prog_now();
    if (be_prefill(f.b, pids, 1, (int)np, state, NULL, NULL) || be_logits(f.b, (int)np - 1, 1, logits)) {
        fprintf(stderr, "\nmambaq generate: %s\n", mq_errmsg());
        return 1;
    }
    double t2 = prog_now();
    int n = 0;
    while (n < max_tokens) {
        if (!logits_finite(logits, nv, n)) {
            fprintf(stderr, "\nmambaq generate: %s\n", mq_errmsg());
            return 1;
        }
        int32_t id = sample(logits, nv, temp, top_p, cb);
        if (id == eos) break;
        out[n++] = id;
        stream(tok, out, (size_t)n, &printed, 0);
        if (n == max_tokens) break;
        if (be_step(f.b, state, &id, NULL, NULL, logits)) {
            fprintf(stderr, "\nmambaq generate: %s\n", mq_errmsg());
            return 1;
        }
    }
    stream(tok, out, (size_t)n, &printed, 1);
    double t3 = prog_now();
    printf("\n");
    char desc[512];
    if (!cli_flag(opts, "--quiet"))
        fprintf(stderr, "[%s: %zu prompt tokens prefilled in %.1f ms, %d tokens generated at %.1f tokens/s; loading %.2f s]\n",
            fwd_describe(&f, desc, sizeof desc), np, (t2 - t1) * 1e3, n, n > 1 ? (n - 1) / (t3 - t2) : 0.0, load_s);
    free(logits), free(cb), free(out), free(pids), free(prompt);
    be_state_free(state);
    fwd_close(&f);
    tok_free(tok);
    return 0;
}
