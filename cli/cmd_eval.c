/* mambaq eval: perplexity of a model on a text or token file (protocol in cli/eval.h), printed for
 * people or as one JSON object. eval_run() is also what `mambaq run` calls. */
#include "cli/eval.h"
#include "cli/args.h"
#include "cli/cmds.h"
#include "core/err.h"
#include "core/mat.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "export/art.h"
#include "quantize/q.h"
#include "ssm/model.h"
#include "ssm/gpu.h"
#include "ssm/int8.h"
#include "core/gpu.h"
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

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The model under evaluation and the hooks that define it: the FP32 checkpoint without hooks, or
 * an artifact's dequantized weights with its simulated-int8 hooks (quantize/sim.c). */
typedef struct {
    mq_model m;
    const mq_hooks *hooks;
    art_artifact *art;
    q_sim_ctx sim;
    mq_hooks sim_hooks;
} eval_model;

static int eval_open_model(const eval_spec *spec, eval_model *em) {
    memset(em, 0, sizeof *em);
    if (spec->artifact) {
        em->art = mq_malloc(sizeof *em->art);
        if (art_open(spec->artifact, em->art)) {
            free(em->art);
            return mq_fail_ctx("loading artifact %s", spec->artifact);
        }
        q_sim_build(&em->art->qm, &em->m);
        em->sim_hooks = q_sim_hooks(&em->sim, &em->art->qm);
        em->hooks = &em->sim_hooks;
        return 0;
    }
    if (ssm_load(spec->model, &em->m)) return mq_fail_ctx("loading model %s", spec->model);
    return 0;
}

static void eval_close_model(eval_model *em) {
    ssm_free(&em->m);
    if (em->art) {
        art_close(em->art);
        free(em->art);
    }
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* Token ids of the whole data file (ds_tokens: id files as they are, text through the tokenizer,
 * which is loaded only when needed). */
static int read_tokens(const eval_spec *spec, int32_t **ids, size_t *n) {
    tok_tokenizer *tok = NULL;
    if (!has_suffix(spec->data, ".bin") && !has_suffix(spec->data, ".ids")) {
        if (!spec->tokenizer)
            return mq_fail("%s is text and no tokenizer was found (give --tokenizer FILE)", spec->data);
        if (!(tok = tok_load(spec->tokenizer))) return -1;
    }
    ds_options opt = {.field = spec->field ? spec->field : "text"};
    int rc = ds_tokens(spec->data, &opt, tok, ids, n);
    tok_free(tok);
    return rc;
}

static double count_params(const mq_model *m) {
    const mq_config *c = &m->cfg;
    double per = (double)c->d_model                                   /* norm */
                 + (double)cfg_in_proj_dim(c) * c->d_model + (double)cfg_conv_dim(c) * (c->d_conv + 1)
                 + (double)c->d_model * c->d_inner;
    if (c->arch == MQ_MAMBA1)
        per += (double)c->d_inner * c->d_state * 1 + c->d_inner
               + (double)(c->dt_rank + 2 * c->d_state) * c->d_inner + (double)c->d_inner * (c->dt_rank + 1);
    else
        per += 3.0 * c->n_heads + c->d_inner;
    double total = per * c->n_layer + (double)c->vocab_size * c->d_model + c->d_model;
    if (m->lm_head != m->embed) total += (double)c->vocab_size * c->d_model;   /* untied (by the source or the residual rotation) */
    return total;
}

int eval_run(const eval_spec *spec, eval_result *res) {
    memset(res, 0, sizeof *res);
    if (spec->window < 2) return mq_fail("window must be at least 2 tokens, got %d", spec->window);
    double t0 = now();
    int32_t *ids = NULL;
    size_t n = 0;
    if (read_tokens(spec, &ids, &n)) return -1;
    if (n < (size_t)spec->window) {
        free(ids);
        return mq_fail("%s has %zu tokens, fewer than one window of %d", spec->data, n, spec->window);
    }
    eval_model em;
    if (eval_open_model(spec, &em)) { free(ids); return -1; }
    res->arch = em.m.cfg.arch == MQ_MAMBA1 ? "mamba1" : "mamba2";
    res->params = count_params(&em.m);
    res->method = em.art ? q_method_name(em.art->qm.opt.method) : NULL;
    res->data_tokens = (long)n;
    long full = (long)(n / spec->window);
    res->windows = spec->windows > 0 && spec->windows < full ? spec->windows : (int)full;
    res->load_seconds = now() - t0;

    if (spec->cuda && em.art) { /* the int8 GPU pass (ssm/int8.h); batches of 8 windows */
        i8g_model *g = i8g_upload(&em.art->qm);
        eval_close_model(&em);
        i8g_ws *ws = g ? i8g_ws_new(g, 8, spec->window) : NULL;
        if (!ws) {
            i8g_model_free(g);
            free(ids);
            return mq_fail_ctx("--device cuda (int8 artifact)");
        }
        res->load_seconds = now() - t0;
        double t1 = now(), total = 0;
        int rc = 0;
        for (int w0 = 0; w0 < res->windows && !rc; w0 += 8) {
            int nb = res->windows - w0 < 8 ? res->windows - w0 : 8;
            double s = 0;
            rc = i8g_nll(g, ws, ids + (size_t)w0 * spec->window, nb, spec->window, NULL, NULL, &s);
            total += s;
        }
        i8g_ws_free(ws);
        i8g_model_free(g);
        free(ids);
        if (rc) return mq_fail_ctx("--device cuda (int8 artifact)");
        res->seconds = now() - t1;
        res->tokens_scored = (long)res->windows * (spec->window - 1);
        res->nll_mean = total / res->tokens_scored;
        res->ppl = exp(res->nll_mean);
        return 0;
    }
    if (spec->cuda) { /* FP16 weights on the GPU; batches of 8 windows (ssmg_eval_windows) */
        if (em.hooks) {
            eval_close_model(&em);
            free(ids);
            return mq_fail(spec->artifact ? "--device cuda: the int8 GPU pass for artifacts is not built yet; "
                                            "--device cpu evaluates the artifact by simulation"
                                          : "--device cuda evaluates the FP16 checkpoint only; hooks run on the CPU");
        }
        ssmg_model *g = ssmg_upload(&em.m);
        ssm_free(&em.m);
        if (!g) { free(ids); return mq_fail_ctx("--device cuda"); }
        res->load_seconds = now() - t0;
        double t1 = now(), total = 0;
        long scored = 0;
        int rc = ssmg_eval_windows(g, ids, n, spec->window, res->windows, 8, &total, &scored);
        ssmg_model_free(g);
        free(ids);
        if (rc) return mq_fail_ctx("--device cuda");
        res->seconds = now() - t1;
        res->tokens_scored = scored;
        res->nll_mean = total / scored;
        res->ppl = exp(res->nll_mean);
        return 0;
    }

    /* Windows are independent: with two or more threads each thread scores whole windows on its
     * own (the ops inside run single-threaded as nested regions), which needs no barrier per op
     * and keeps both cores busy even when other processes share them. */
    double t1 = now(), *sums = mq_calloc(res->windows, sizeof(double));
    int outer = res->windows > 1 && mat_threads() > 1, done = 0, failed = 0;
    char err[1024] = "";
#ifdef _OPENMP
    if (outer) omp_set_max_active_levels(1);
#endif
#pragma omp parallel for schedule(dynamic, 1) if (outer)
    for (int w = 0; w < res->windows; w++) {
        if (failed) continue;
        sums[w] = ssm_nll(&em.m, ids + (size_t)w * spec->window, spec->window, em.hooks, NULL);
#pragma omp critical(eval_progress)
        {
            if (isnan(sums[w]) && !failed) {
                failed = 1;
                snprintf(err, sizeof err, "window %d: %s", w, mq_errmsg());
            }
            done++;
            if (spec->progress && !failed) {
                fprintf(stderr, "\r  window %d/%d  %.0f tokens/s ", done, res->windows,
                        (double)done * spec->window / (now() - t1));
                fflush(stderr);
            }
        }
    }
    if (spec->progress) fprintf(stderr, "\n");
    double total = 0;
    for (int w = 0; w < res->windows; w++) total += sums[w];  /* in order: the same sum every run */
    free(sums);
    if (failed) {
        eval_close_model(&em);
        free(ids);
        return mq_fail("%s", err);
    }
    res->seconds = now() - t1;
    res->tokens_scored = (long)res->windows * (spec->window - 1);
    res->nll_mean = total / res->tokens_scored;
    res->ppl = exp(res->nll_mean);
    eval_close_model(&em);
    free(ids);
    return 0;
}

static const char *default_tokenizer(const char *model) {
    char buf[4200];
    struct stat st;
    snprintf(buf, sizeof buf, "%s/tokenizer.json", model);
    if (stat(buf, &st) == 0) return strdup(buf);
    return cli_default_path("models/tokenizer.json");
}

int cmd_eval(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--model", .metavar = "DIR", .help = "model directory (default: ../shared/models/mamba1-proxy)"},
        {.name = "--artifact", .metavar = "DIR", .help = "an int8 artifact (mambaq quantize) instead of --model: the int8 GPU pass, or its CPU simulation"},
        {.name = "--data", .metavar = "FILE", .help = "text (.txt, .jsonl, .gz) or int32 token ids (.bin) (default: ../shared/datasets/valid.txt)"},
        {.name = "--tokenizer", .metavar = "FILE", .help = "tokenizer.json (default: DIR/tokenizer.json, else ../shared/models/tokenizer.json)"},
        {.name = "--field", .metavar = "NAME", .help = "JSON-lines field holding the text", .def = "text"},
        {.name = "--window", .metavar = "N", .help = "tokens per window", .def = "1024"},
        {.name = "--windows", .metavar = "N", .help = "number of windows scored, 0 = all", .def = "32"},
        {.name = "--threads", .metavar = "N", .help = "CPU threads (default: all)"},
        {.name = "--device", .metavar = "D", .help = "cpu (FP32 reference; an artifact simulated), cuda (FP16 on the GPU; an artifact by the int8 GPU pass), auto (cuda for an artifact when a GPU is usable, else cpu)", .def = "auto"},
        {.name = "--json", .help = "print one JSON object instead of the summary"},
        {0},
    };
    cli_parse(argc, argv, opts, "mambaq eval [options]",
              "Perplexity: non-overlapping windows, every token after the first of each window scored,\n"
              "ppl = exp(mean NLL) over the first --windows windows.", NULL, 0);
    eval_spec spec = {0};
    spec.artifact = cli_get(opts, "--artifact");
    if (spec.artifact && cli_flag(opts, "--model")) mq_die("give --model or --artifact, not both");
    spec.model = spec.artifact ? spec.artifact
                 : cli_flag(opts, "--model") ? cli_get(opts, "--model") : cli_default_path("models/mamba1-proxy");
    spec.data = cli_flag(opts, "--data") ? cli_get(opts, "--data") : cli_default_path("datasets/valid.txt");
    if (!spec.model) mq_die("no --model given and ../shared/models/mamba1-proxy not found (set MQ_SHARED)");
    if (!spec.data) mq_die("no --data given and ../shared/datasets/valid.txt not found (set MQ_SHARED)");
    spec.tokenizer = cli_flag(opts, "--tokenizer") ? cli_get(opts, "--tokenizer") : default_tokenizer(spec.model);
    spec.field = cli_get(opts, "--field");
    spec.window = (int)cli_int(opts, "--window", 2, 1 << 20);
    spec.windows = (int)cli_int(opts, "--windows", 0, 1 << 24);
    if (cli_flag(opts, "--threads")) {
        int th = (int)cli_int(opts, "--threads", 1, 1024);
#ifdef _OPENMP
        omp_set_num_threads(th);
#else
        (void)th;
#endif
    }
    const char *dev = cli_get(opts, "--device");
    if (strcmp(dev, "cpu") && strcmp(dev, "cuda") && strcmp(dev, "auto")) mq_die("--device: expected cpu, cuda or auto, got '%s'", dev);
    spec.cuda = !strcmp(dev, "cuda") || (!strcmp(dev, "auto") && spec.artifact && gpu_available(NULL));
    int json = cli_flag(opts, "--json");
    spec.progress = isatty(2);

    eval_result r;
    if (eval_run(&spec, &r)) {
        fprintf(stderr, "mambaq eval: %s\n", mq_errmsg());
        return 1;
    }
    if (r.windows < spec.windows)
        fprintf(stderr, "mambaq eval: note: %s has %ld tokens, only %d full windows of %d (asked for %d)\n",
                spec.data, r.data_tokens, r.windows, spec.window, spec.windows);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "ppl", r.ppl);
        cJSON_AddNumberToObject(o, "nll_mean", r.nll_mean);
        cJSON_AddNumberToObject(o, "tokens_scored", (double)r.tokens_scored);
        cJSON_AddNumberToObject(o, "window", spec.window);
        cJSON_AddNumberToObject(o, "windows", r.windows);
        cJSON_AddNumberToObject(o, "seconds", r.seconds);
        cJSON_AddNumberToObject(o, "load_seconds", r.load_seconds);
        cJSON_AddNumberToObject(o, "tokens_per_s", (double)r.windows * spec.window / r.seconds);
        cJSON_AddStringToObject(o, "model", spec.model);
        cJSON_AddStringToObject(o, "arch", r.arch);
        cJSON_AddStringToObject(o, "device", spec.cuda ? "cuda" : "cpu");
        cJSON_AddStringToObject(o, "data", spec.data);
        cJSON_AddNumberToObject(o, "data_tokens", (double)r.data_tokens);
        if (spec.tokenizer) cJSON_AddStringToObject(o, "tokenizer", spec.tokenizer);
        if (spec.artifact) {
            cJSON_AddStringToObject(o, "artifact", spec.artifact);
            cJSON_AddStringToObject(o, "method", r.method);
            cJSON_AddStringToObject(o, "int8", spec.cuda ? "gpu" : "cpu simulation");
        }
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("model          %s (%s, %.1fM parameters)\n", spec.model, r.arch, r.params * 1e-6);
        if (spec.artifact) printf("quantization   %s, %s\n", r.method, spec.cuda ? "int8 GPU pass" : "simulated W8A8 on the CPU");
        printf("data           %s (%ld tokens)\n", spec.data, r.data_tokens);
        printf("windows        %d x %d tokens, %ld tokens scored\n", r.windows, spec.window, r.tokens_scored);
        printf("perplexity     %.4f (mean NLL %.6f nats)\n", r.ppl, r.nll_mean);
        printf("time           %.2f s scoring (%.0f tokens/s), %.2f s loading\n", r.seconds,
               (double)r.windows * spec.window / r.seconds, r.load_seconds);
    }
    return 0;
}
