/* mambaq generate (--artifact DIR | --model DIR) --prompt TEXT: streaming text generation.
 * The prompt is encoded with the tokenizer, prefilled in one call, then tokens are sampled one at a
 * time (greedy at --temperature 0, else softmax(logits / T) restricted to the smallest set of tokens
 * whose probability reaches --top-p) and printed as soon as they form complete UTF-8 text, until
 * --max-tokens or the end-of-text token. Backends, by --device (auto = the GPU when there is one):
 *   artifact, GPU: the int8 pass (ssm/int8.h), decode steps through a CUDA graph
 *   artifact, CPU: the CPU simulation of the artifact (quantize/sim.c)
 *   model, GPU:    the FP16 forward (ssm/gpu.h)
 *   model, CPU:    the FP32 reference forward (ssm/model.h)
 * Timing goes to stderr at the end (prefill ms, decode tokens/s). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "core/err.h"
#include "core/gpu.h"
#include "datasets/tok.h"
#include "export/art.h"
#include "ssm/gpu.h"
#include "ssm/int8.h"
#include "ssm/model.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One interface over the four backends: prefill the prompt (logits of its last token), then steps. */
typedef struct {
    int kind; /* 0 int8 GPU, 1 simulation CPU, 2 FP16 GPU, 3 FP32 CPU */
    const char *name;
    mq_model m;              /* CPU backends (the simulation's model for kind 1) */
    mq_hooks hooks;          /* kind 1 */
    q_sim_ctx sc;
    mq_state *cs;
    float *hidden;
    i8g_model *g8;
    i8g_ws *w8;
    i8g_state *s8;
    ssmg_model *gf;
    ssmg_ws *wf;
    ssmg_state *sf;
    int V, D;
} backend;

static int be_prefill(backend *b, const int32_t *tok, int T, float *logits) {
    switch (b->kind) {
    case 0:
        if (i8g_prefill(b->g8, b->w8, tok, 1, T, b->s8, NULL, NULL)) return -1;
        return i8g_logits(b->g8, b->w8, T - 1, 1, logits);
    case 2:
        if (ssmg_prefill(b->gf, b->wf, tok, 1, T, b->sf, NULL, NULL)) return -1;
        return ssmg_logits(b->gf, b->wf, T - 1, 1, logits);
    default: {
        float *h = mq_malloc((size_t)T * b->D * sizeof(float));
        int rc = ssm_prefill(&b->m, b->cs, tok, T, b->kind == 1 ? &b->hooks : NULL, h);
        if (!rc) ssm_logits(&b->m, h + (size_t)(T - 1) * b->D, 1, logits);
        free(h);
        return rc;
    }
    }
}

static int be_step(backend *b, int32_t tok, float *logits) {
    switch (b->kind) {
    case 0: return i8g_step_graph(b->g8, b->w8, b->s8, &tok, logits);
    case 2: return ssmg_step(b->gf, b->wf, b->sf, &tok, NULL, NULL, logits);
    default:
        if (ssm_step(&b->m, b->cs, tok, b->kind == 1 ? &b->hooks : NULL, b->hidden)) return -1;
        ssm_logits(&b->m, b->hidden, 1, logits);
        return 0;
    }
}

static void be_close(backend *b) {
    i8g_state_free(b->s8), i8g_ws_free(b->w8), i8g_model_free(b->g8);
    ssmg_state_free(b->sf), ssmg_ws_free(b->wf), ssmg_model_free(b->gf);
    ssm_state_free(b->cs);
    free(b->hidden);
    if (b->m.arena) ssm_free(&b->m);
}

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
        {.name = "--artifact", .metavar = "DIR", .help = "an int8 artifact (mambaq quantize)"},
        {.name = "--model", .metavar = "DIR", .help = "a float checkpoint instead of --artifact"},
        {.name = "--prompt", .metavar = "TEXT", .help = "the prompt", .def = "The"},
        {.name = "--prompt-file", .metavar = "FILE", .help = "read the prompt from a file"},
        {.name = "--max-tokens", .metavar = "N", .help = "tokens to generate", .def = "64"},
        {.name = "--temperature", .metavar = "T", .help = "0 = greedy", .def = "0"},
        {.name = "--top-p", .metavar = "P", .help = "nucleus sampling mass", .def = "0.9"},
        {.name = "--seed", .metavar = "N", .help = "sampling seed", .def = "1"},
        {.name = "--device", .metavar = "D", .help = "auto, cuda or cpu", .def = "auto"},
        {.name = "--tokenizer", .metavar = "FILE", .help = "tokenizer.json (default: the artifact's or DIR/tokenizer.json, "
                                                           "else ../shared/models/tokenizer.json)"},
        {.name = "--ignore-eos", .help = "do not stop at the end-of-text token"},
        {0},
    };
    cli_parse(argc, argv, opts, "mambaq generate (--artifact DIR | --model DIR) [--prompt TEXT] [options]",
              "Streams text generated from the prompt by an int8 artifact (the int8 GPU pass, or its CPU\n"
              "simulation) or a float model (FP16 on the GPU, FP32 on the CPU).", NULL, 0);
    const char *art = cli_get(opts, "--artifact"), *model = cli_get(opts, "--model");
    if (!!art == !!model) {
        fprintf(stderr, "mambaq generate: give exactly one of --artifact and --model\n");
        return 2;
    }
    const int max_tokens = (int)cli_int(opts, "--max-tokens", 0, 1 << 20);
    const double temp = cli_double(opts, "--temperature", 0, 100), top_p = cli_double(opts, "--top-p", 1e-6, 1);
    g_rng = (uint64_t)cli_int(opts, "--seed", 0, 1L << 62) * 0x9E3779B97F4A7C15ull + 1;
    const char *dev = cli_get(opts, "--device");
    if (strcmp(dev, "auto") && strcmp(dev, "cuda") && strcmp(dev, "cpu")) {
        fprintf(stderr, "mambaq generate: --device: expected auto, cuda or cpu, got '%s'\n", dev);
        return 2;
    }
    const char *why = "";
    int gpu = strcmp(dev, "cpu") && gpu_available(&why);
    if (!strcmp(dev, "cuda") && !gpu) {
        fprintf(stderr, "mambaq generate: --device cuda: no usable GPU (%s)\n", why);
        return 1;
    }

    /* tokenizer and prompt */
    char tp[4200];
    struct stat st;
    const char *tokpath = cli_get(opts, "--tokenizer");
    if (!tokpath) {
        snprintf(tp, sizeof tp, "%s/tokenizer.json", art ? art : model);
        tokpath = stat(tp, &st) == 0 ? tp : cli_default_path("models/tokenizer.json");
    }
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
    if (tok_encode(tok, prompt, strlen(prompt), &pids, &np) || np == 0) {
        fprintf(stderr, "mambaq generate: the prompt encodes to no tokens%s%s\n", np ? ": " : "", np ? mq_errmsg() : "");
        return 1;
    }

    /* backend */
    backend b;
    memset(&b, 0, sizeof b);
    static art_artifact a;
    int have_art = 0;
    double t0 = now();
    if (art) {
        if (art_open(art, &a)) {
            fprintf(stderr, "mambaq generate: the artifact %s failed validation: %s\n", art, mq_errmsg());
            return 1;
        }
        have_art = 1;
        if (gpu) {
            b.kind = 0, b.name = "int8 GPU pass";
            if (!(b.g8 = i8g_upload(&a.qm)) || !(b.w8 = i8g_ws_new(b.g8, 1, (int)np)) || !(b.s8 = i8g_state_new(b.g8, 1))) {
                fprintf(stderr, "mambaq generate: %s\n", mq_errmsg());
                return 1;
            }
        } else {
            b.kind = 1, b.name = "CPU simulation of the int8 artifact";
            q_sim_build(&a.qm, &b.m);
            b.hooks = q_sim_hooks(&b.sc, &a.qm);
        }
    } else if (ssm_load(model, &b.m)) {
        fprintf(stderr, "mambaq generate: loading %s: %s\n", model, mq_errmsg());
        return 1;
    } else if (gpu) {
        b.kind = 2, b.name = "FP16 GPU forward";
        if (!(b.gf = ssmg_upload(&b.m)) || !(b.wf = ssmg_ws_new(b.gf, 1, (int)np)) || !(b.sf = ssmg_state_new(b.gf, 1))) {
            fprintf(stderr, "mambaq generate: %s\n", mq_errmsg());
            return 1;
        }
        ssm_free(&b.m);
        memset(&b.m, 0, sizeof b.m);
    } else {
        b.kind = 3, b.name = "FP32 CPU forward";
    }
    const mq_config *c = art ? &a.qm.cfg : (b.gf ? ssmg_config(b.gf) : &b.m.cfg);
    b.V = c->vocab_size, b.D = c->d_model;
    if (b.kind == 1 || b.kind == 3) {
        b.cs = ssm_state_new(&b.m);
        b.hidden = mq_malloc((size_t)b.D * sizeof(float));
    }
    const double load_s = now() - t0;
    /* sample only ids the tokenizer can print (the vocabulary is padded) */
    int nv = tok_vocab_size(tok) < b.V ? tok_vocab_size(tok) : b.V;
    const int32_t eos = cli_flag(opts, "--ignore-eos") ? -1 : tok_token_to_id(tok, "<|endoftext|>");

    float *logits = mq_malloc((size_t)b.V * sizeof(float));
    cand *cb = mq_malloc((size_t)b.V * sizeof(cand));
    int32_t *out = mq_malloc(((size_t)max_tokens + 1) * sizeof(int32_t));
    size_t printed = 0;
    fputs(prompt, stdout);
    fflush(stdout);
    double t1 = now();
    if (be_prefill(&b, pids, (int)np, logits)) {
        fprintf(stderr, "\nmambaq generate: %s\n", mq_errmsg());
        return 1;
    }
    double t2 = now();
    int n = 0;
    while (n < max_tokens) {
        int32_t id = sample(logits, nv, temp, top_p, cb);
        if (id == eos) break;
        out[n++] = id;
        stream(tok, out, (size_t)n, &printed, 0);
        if (n == max_tokens) break;
        if (be_step(&b, id, logits)) {
            fprintf(stderr, "\nmambaq generate: %s\n", mq_errmsg());
            return 1;
        }
    }
    stream(tok, out, (size_t)n, &printed, 1);
    double t3 = now();
    printf("\n");
    fprintf(stderr, "[%s%s%s: %zu prompt tokens prefilled in %.1f ms, %d tokens generated at %.1f tokens/s; loading %.2f s]\n",
            b.name, gpu ? ", " : "", gpu ? gpu_describe() : "", np, (t2 - t1) * 1e3, n,
            n > 1 ? (n - 1) / (t3 - t2) : 0.0, load_s);
    free(logits), free(cb), free(out), free(pids), free(prompt);
    be_close(&b);
    if (have_art) art_close(&a);
    tok_free(tok);
    return 0;
}
