/* mambaq eval: perplexity of a model on a text or token file (protocol in cli/eval.h), printed for
 * people or as one JSON object. eval_run() is also what `mambaq run` calls. */
#include "cli/eval.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/fwd.h"
#include "cli/task.h"
#include "core/err.h"
#include "core/progress.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "ssm/ops.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* c: the source's config; untied: the model has an lm_head of its own */
static double count_params(const mq_config *c, int untied) {
    double per = (double)c->d_model                                   /* norm */
                 + (double)cfg_in_proj_dim(c) * c->d_model + (double)cfg_conv_dim(c) * (c->d_conv + 1)
                 + (double)c->d_model * c->d_inner;
    if (c->arch == MQ_MAMBA1)
        per += (double)c->d_inner * c->d_state * 1 + c->d_inner
               + (double)(c->dt_rank + 2 * c->d_state) * c->d_inner + (double)c->d_inner * (c->dt_rank + 1);
    else
        per += 3.0 * c->n_heads + c->d_inner;
    double total = per * c->n_layer + (double)c->vocab_size * c->d_model + c->d_model;
    if (untied) total += (double)c->vocab_size * c->d_model;   /* untied (by the source or the residual rotation) */
    return total;
}

typedef struct {
    prog_bar bar;
    int window;
} eval_prog;
static void eval_progress(void *ctx, int done, int total) {
    (void)total;
    eval_prog *p = ctx;
    prog_update(&p->bar, done, (int64_t)done * p->window);
}

/* Windows per call: the GPU kinds batch 8; the CPU kinds run the windows of a call in parallel, two
 * per thread (a progress line can come every few seconds: a call is about two windows' time). */
static int eval_batch(int cuda) {
#ifdef _OPENMP
    const int th = omp_get_max_threads();
#else
    const int th = 1;
#endif
    return cuda ? 8 : (th * 2 > 4 ? th * 2 : 4);
}

double eval_nll_stderr(double sum, double sum_sq, long n) {
    const double mean = sum / n, var = sum_sq / n - mean * mean;
    return n > 1 && var > 0 ? sqrt(var / (n - 1)) : 0;
}

int eval_run(const eval_spec *spec, eval_result *res) {
    memset(res, 0, sizeof *res);
    if (spec->window < 2) return mq_fail("window must be at least 2 tokens, got %d", spec->window);
    double t0 = prog_now();
    int32_t *ids = NULL;
    size_t n = 0;
    if (ds_load_tokens(spec->data, spec->tokenizer, spec->field, &ids, &n)) return -1;
    if (n < (size_t)spec->window) {
        free(ids);
        return mq_fail("%s has %zu tokens, fewer than one window of %d", spec->data, n, spec->window);
    }
    const char *device = spec->device ? spec->device : "cpu";
    int cuda;
    if (be_device_parse(device, &cuda)) {
        free(ids);
        return -1;
    }
    long full = (long)(n / spec->window);
    res->windows = spec->windows > 0 && spec->windows < full ? spec->windows : (int)full;
    if (spec->windows > full)
        fprintf(stderr, "mambaq %s: warning: %s has %zu tokens, only %ld full windows of %d: scoring %ld, not the %d asked for\n",
                spec->cmd ? spec->cmd : "eval", spec->data, n, full, spec->window, full, spec->windows);
    const int batch = eval_batch(cuda) < res->windows ? eval_batch(cuda) : res->windows;
    fwd f;
    if (fwd_open(&f, spec->model, device, batch, spec->window)) {
        free(ids);
        return -1;
    }
    const mq_config *c = be_config(f.b);
    res->kind = be_kind_of(f.b);
    fwd_describe(&f, res->forward, sizeof res->forward);
    res->arch = cfg_arch_name(c->arch);
    /* an artifact's own config (the simulation's unties an int8 lm_head it dequantizes) */
    res->params = f.art ? count_params(&f.art->qm.cfg, q_head_untied(&f.art->qm.cfg, f.art->qm.opt.method))
                        : count_params(c, !c->tie_embeddings);
    res->method = f.art ? q_method_name(f.art->qm.opt.method) : NULL;
    res->data_tokens = (long)n;
    res->load_seconds = prog_now() - t0;

    eval_prog pg = {.window = spec->window};
    prog_start(&pg.bar, "eval", "windows", res->windows, !spec->progress);
    double t1 = prog_now(), total = 0, sq = 0;
    long scored = 0;
    int rc = be_eval_windows(f.b, ids, n, spec->window, res->windows, &total, &scored, &sq, eval_progress, &pg);
    if (!rc) prog_finish(&pg.bar);
    fwd_close(&f);
    free(ids);
    if (rc) return -1;
    res->seconds = prog_now() - t1;
    res->tokens_scored = scored;
    res->nll_mean = total / scored;
    res->ppl = exp(res->nll_mean);
    /* llama-perplexity: the standard error of the mean NLL, and ppl * that as the error of ppl */
    res->nll_stderr = eval_nll_stderr(total, sq, scored);
    res->ppl_err = res->ppl * res->nll_stderr;
    return 0;
}

int cmd_eval(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_MODEL("a model directory or an int8 artifact (default: <shared>/models/mamba1-proxy)"),
        CLI_ARTIFACT_SYNONYM,
        CLI_DATA_OPTS(NULL),
        CLI_WINDOWS("32"),
        CLI_DEVICE("auto"),
        CLI_RUN_OPTS,
        CLI_TASK("zero-shot accuracy instead of perplexity: lambada ({\"text\"}) or choice ({\"context\", \"choices\", \"label\"}), "
                 "scored as lm-eval-harness (default --data: " CLI_TASK_DEFAULT_DATA ")"),
        CLI_TASK_LIMIT,
        {.name = "--state-format", .metavar = "fp32|fp16|bf16|int8|int8g16",
         .help = "store the SSM state between tokens in this format (CPU forward only; int8: one scale per state row, "
                 "int8g16: one per 16 states of a row): what a cheaper decode state costs",
         .def = "fp32"},
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq eval [MODEL] [--data FILE] [options]",
              "Perplexity: non-overlapping windows, every token after the first of each window scored,\n"
              "ppl = exp(mean NLL) over the first --windows windows, with its standard error (as llama-perplexity:\n"
              "the standard error of the mean NLL, times ppl). MODEL is a float checkpoint (FP32 on the CPU, FP16\n"
              "on the GPU) or an int8 artifact (simulated W8A8 on the CPU, the int8 pass on the GPU).\n"
              "--data defaults to <shared>/datasets/valid.txt.\n"
              "With --task: accuracy on jsonl examples, scored as lm-eval-harness does (no special tokens):\n"
              "continuation tokens = tok(context + continuation)[len(tok(context)):], log p summed over them.\n"
              "lambada: acc = every target token is the argmax, ppl = exp(-mean log p(target)); choice: acc =\n"
              "argmax of the summed log p is the label, acc_norm = the same with log p / UTF-8 bytes of the choice.\n"
              "Standard errors: acc sqrt(acc (1 - acc) / (n - 1)); ppl ppl * stderr(mean log p) (delta method).", NULL, 0);
    const int state_fmt = op_state_format_parse(cli_get(opts, "--state-format"));
    if (state_fmt < 0) {
        fprintf(stderr, "mambaq eval: --state-format: expected fp32, fp16, bf16, int8 or int8g16, got '%s'\n",
                cli_get(opts, "--state-format"));
        return 2;
    }
    if (cli_flag(opts, "--task")) {
        if (state_fmt != OP_STATE_F32) {
            fprintf(stderr, "mambaq eval: --state-format is for perplexity; --task scores with the FP32 state\n");
            return 2;
        }
        return task_eval_main(opts);
    }
    if (cli_flag(opts, "--limit")) mq_die("--limit counts examples of --task (perplexity takes --windows)");
    eval_spec spec = {.cmd = "eval"};
    spec.model = cli_flag(opts, "--model") ? cli_get(opts, "--model") : cli_default_path("models/mamba1-proxy");
    spec.data = cli_flag(opts, "--data") ? cli_get(opts, "--data") : cli_default_path("datasets/valid.txt");
    if (!spec.model) mq_die("eval: no MODEL given and <shared>/models/mamba1-proxy not found (" CLI_SHARED_HINT ")");
    if (!spec.data) mq_die("eval: no --data given and <shared>/datasets/valid.txt not found (" CLI_SHARED_HINT ")");
    spec.tokenizer = cli_tokenizer(spec.model, cli_get(opts, "--tokenizer"));
    spec.field = cli_get(opts, "--field");
    spec.window = (int)cli_int(opts, "--window", 2, 1 << 20);
    spec.windows = (int)cli_int(opts, "--windows", 0, 1 << 24);
    cli_threads(opts);
    spec.device = cli_get(opts, "--device");
    if (state_fmt != OP_STATE_F32) {
        if (spec.device && !strcmp(spec.device, "cuda")) {
            fprintf(stderr, "mambaq eval: --state-format %s is simulated by the CPU forward only (give --device cpu)\n",
                    op_state_format_name(state_fmt));
            return 2;
        }
        spec.device = "cpu";
        op_set_state_format(state_fmt);
    }
    int json = cli_flag(opts, "--json");
    spec.progress = !cli_flag(opts, "--quiet"); /* core/progress: a bar on a terminal, a line every few seconds in logs */

    eval_result r;
    if (eval_run(&spec, &r)) {
        fprintf(stderr, "mambaq eval: %s\n", mq_errmsg());
        return 1;
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "ppl", r.ppl);
        cJSON_AddNumberToObject(o, "ppl_stderr", r.ppl_err);
        cJSON_AddNumberToObject(o, "nll_mean", r.nll_mean);
        cJSON_AddNumberToObject(o, "nll_stderr", r.nll_stderr);
        cJSON_AddNumberToObject(o, "tokens_scored", (double)r.tokens_scored);
        cJSON_AddNumberToObject(o, "window", spec.window);
        cJSON_AddNumberToObject(o, "windows", r.windows);
        cJSON_AddNumberToObject(o, "seconds", r.seconds);
        cJSON_AddNumberToObject(o, "load_seconds", r.load_seconds);
        cJSON_AddNumberToObject(o, "tokens_per_s", (double)r.windows * spec.window / r.seconds);
        cJSON_AddStringToObject(o, "model", spec.model);
        cJSON_AddStringToObject(o, "arch", r.arch);
        cJSON_AddStringToObject(o, "device", be_kind_is_cuda(r.kind) ? "cuda" : "cpu");
        cJSON_AddStringToObject(o, "forward", be_kind_name(r.kind));
        cJSON_AddStringToObject(o, "data", spec.data);
        cJSON_AddStringToObject(o, "state_format", op_state_format_name(state_fmt));
        cJSON_AddNumberToObject(o, "data_tokens", (double)r.data_tokens);
        if (spec.tokenizer) cJSON_AddStringToObject(o, "tokenizer", spec.tokenizer);
        if (r.method) {
            cJSON_AddStringToObject(o, "artifact", spec.model);
            cJSON_AddStringToObject(o, "method", r.method);
            cJSON_AddStringToObject(o, "int8", be_kind_is_cuda(r.kind) ? "gpu" : "cpu simulation");
        }
        cli_json_print(o, 0);
    } else {
        printf("model          %s (%s, %.1fM parameters)\n", spec.model, r.arch, r.params * 1e-6);
        if (r.method) printf("quantization   %s, %s\n", r.method, be_kind_is_cuda(r.kind) ? "int8 GPU pass" : r.forward);
        printf("forward        %s\n", r.forward);
        printf("data           %s (%ld tokens)\n", spec.data, r.data_tokens);
        printf("windows        %d x %d tokens, %ld tokens scored\n", r.windows, spec.window, r.tokens_scored);
        if (state_fmt != OP_STATE_F32)
            printf("state          stored as %s after every token (CPU simulation)\n", op_state_format_name(state_fmt));
        printf("perplexity     %.4f +/- %.4f (mean NLL %.6f +/- %.6f nats)\n", r.ppl, r.ppl_err, r.nll_mean, r.nll_stderr);
        printf("time           %.2f s scoring (%.0f tokens/s), %.2f s loading\n", r.seconds,
               (double)r.windows * spec.window / r.seconds, r.load_seconds);
    }
    return 0;
}
