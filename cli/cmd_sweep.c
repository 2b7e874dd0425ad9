/* mambaq sweep: int8 perplexity of a model for several recipes and percentiles against the float
 * model, on the eval protocol (cli/eval.h: non-overlapping windows, first --windows), plus the
 * per-layer relative error of the SSM output y and of the out_proj output against FP32 on the first
 * window. Nothing is written to disk: each configuration is quantized in memory (q_quantize) and
 * run as `mambaq eval` runs an artifact (ssm/backend.h: the CPU simulation with --device cpu, the
 * default, or the int8 GPU pass against FP16 with --device cuda); the per-layer errors always come
 * from the CPU simulation and the FP32 reference. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/fwd.h"
#include "cli/qcli.h"
#include "cli/task.h"
#include "core/err.h"
#include "core/mat.h"
#include "core/progress.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "hadamard/had.h"
#include "quantize/cstats.h"
#include "quantize/q.h"
#include "ssm/backend.h"

#define MAX_CONF 64

typedef struct {
    q_method method;
    double pct;             /* percentile, or 0 for methods without one */
    int wbits, abits, gptq; /* quamba2's bit widths and int4 weight method */
    double ppl;
    double *y_err, *out_err;  /* [n_layer] relative errors on the first window */
} conf;

/* "quamba", or for quamba2 its mode: "quamba2 w4a8 gptq" */
static const char *conf_name(const conf *c, char *buf, size_t n) {
    if (c->method != Q_QUAMBA2) return q_method_name(c->method);
    snprintf(buf, n, "quamba2 w%da%d%s", c->wbits, c->abits, c->wbits == 4 ? (c->gptq ? " gptq" : " rtn") : "");
    return buf;
}

/* Per-layer capture of y (as produced, before any rotation) and of out_proj's output. */
typedef struct {
    const mq_model *m;
    const mq_hooks *inner;  /* simulation hooks or NULL */
    int T;
    float **y, **out;       /* [n_layer][T x d_inner], [n_layer][T x d_model] */
    int unrotate;           /* out_proj's output is rotated (residual rotation): rotate it back */
} capture;

static int cap_hook(void *vctx, const mq_act *a) {
    capture *c = vctx;
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    float *x = a->x;
    if (role == MQ_ACT_SSM_OUT && layer >= 0 && c->y)
        for (int r = 0; r < rows; r++) memcpy(c->y[layer] + (size_t)r * cols, x + (size_t)r * ld, (size_t)cols * sizeof(float));
    if (c->inner && c->inner->fn(c->inner->ctx, a)) return -1;
    if (role == MQ_ACT_OUT_PROJ_IN && layer >= 0 && c->out) {
        /* what out_proj computes from the (rotated, quantized) input, without its bias */
        float *dense = x;
        if (ld != cols) {
            dense = mq_malloc((size_t)rows * cols * sizeof(float));
            for (int r = 0; r < rows; r++) memcpy(dense + (size_t)r * cols, x + (size_t)r * ld, (size_t)cols * sizeof(float));
        }
        mat_linear(c->out[layer], dense, c->m->layers[layer].out_proj, NULL, rows, c->m->cfg.d_model, cols);
        if (dense != x) free(dense);
        if (c->unrotate && had_transform_f32(c->out[layer], rows, c->m->cfg.d_model))   /* H is its own inverse */
            return mq_fail_ctx("sweep, layer %d", layer);
    }
    return 0;
}

static float **alloc_layers(int n, size_t each) {
    float **p = mq_malloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) p[i] = mq_malloc(each * sizeof(float));
    return p;
}
static void free_layers(float **p, int n) {
    for (int i = 0; p && i < n; i++) free(p[i]);
    free(p);
}

static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

typedef struct {
    prog_bar *bar;
    int64_t *done;
    int window;
} sweep_prog;
static void on_progress(void *ctx, int done, int total) {
    (void)total;
    sweep_prog *p = ctx;
    prog_update(p->bar, *p->done + done, (*p->done + done) * p->window);
}

/* ppl of backend b over the first `windows` windows; NAN + mq_errmsg() on error. */
static double ppl_of(be *b, const int32_t *ids, size_t n, int window, int windows, prog_bar *bar, int64_t *done) {
    double sum;
    long scored;
    sweep_prog pg = {bar, done, window};
    if (!b || be_eval_windows(b, ids, n, window, windows, &sum, &scored, NULL, on_progress, &pg)) return NAN;
    *done += windows;
    return exp(sum / scored);
}

/* Windows per backend call (as eval: the CPU kinds score a call's windows in parallel, two per
 * thread, so progress lines come every few seconds). */
static int sweep_batch(int cuda, int windows) {
    int b = cuda ? 8 : 2 * mat_threads();
    if (b < 4) b = 4;
    return b < windows ? b : windows;
}

/* "a,b,c" -> items; the count, or -1 + a message for an empty list or item, an item of 32
 * characters or more, or more than max items (a value is never dropped or cut silently). */
static int parse_list(const char *s, char items[][32], int max) {
    int n = 0;
    if (!s || !*s) return mq_fail("the list is empty");
    for (;;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (!len) return mq_fail("item %d of the list is empty", n + 1);
        if (len >= 32) return mq_fail("'%.*s' is too long", (int)len, s);
        if (n == max) return mq_fail("more than %d items", max);
        memcpy(items[n], s, len);
        items[n++][len] = 0;
        if (!e) return n;
        s = e + 1;
    }
}

int cmd_sweep(int argc, char **argv) {
    cli_opt opts[] = {
        CLI_MODEL("FP checkpoint directory"),
        {.name = "--stats", .metavar = "FILE", .help = "calibration statistics of that model (mambaq calib)"},
        {.name = "--calib", .metavar = "FILE", .help = "the calibration data of --stats, for recipes that repeat its windows "
                                                    "(default: found by its recorded name and sha256, as quantize --calib)"},
        CLI_DATA_OPTS(NULL),
        {.name = "--method", .metavar = "LIST", .help = "recipes, comma-separated: " CLI_METHOD_HELP, .def = "naive,quamba"},
        {.name = "--percentile", .metavar = "LIST", .help = "percentile clips of the SSM input x, comma-separated (each percentile method "
                                                            "runs once per value)", .def = "99.9,99.95,99.99,99.999,100"},
        {.name = "--methods", .metavar = "LIST", .alias_of = "--method"},
        {.name = "--percentiles", .metavar = "LIST", .alias_of = "--percentile"},
        CLI_WEIGHT_OPTS,
        {.name = "--bits", .metavar = "LIST", .help = "quamba2's bit widths, comma-separated: w8a8 | w4a8 | w4a16", .def = "w8a8"},
        {.name = "--weight-method", .metavar = "LIST", .help = "quamba2's int4 weights, comma-separated: gptq | rtn (each 4-bit width runs "
                                                               "once per method)", .def = "gptq"},
        CLI_QUAMBA2_LAYOUT_OPTS,
        CLI_WINDOWS("32"),
        CLI_DEVICE_HELP("cpu", "cpu: the CPU simulation against FP32; cuda: the int8 GPU pass against FP16; auto: cuda when a GPU is usable"),
        CLI_RUN_OPTS,
        CLI_TASK_OPTS("also the accuracy of every configuration on a zero-shot task"),
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq sweep MODEL --stats FILE [--data FILE] [--method LIST] [--percentile LIST] [options]",
              "Simulated W8A8 perplexity per recipe and percentile against FP32 (quamba2: per mode of --bits and\n"
              "--weight-method too), and per-layer relative errors of y and of the out_proj output on the first\n"
              "window (under quamba-rot the out_proj output is rotated back before the comparison). --data\n"
              "defaults to <shared>/datasets/valid.txt. Nothing is written.",
              NULL, 0);
    const char *model = cli_need(opts, "sweep", "--model"), *stats = cli_need(opts, "sweep", "--stats");
    const char *data = cli_flag(opts, "--data") ? cli_get(opts, "--data") : cli_default_path("datasets/valid.txt");
    if (!data) {
        fprintf(stderr, "mambaq sweep: no --data given and <shared>/datasets/valid.txt not found (" CLI_SHARED_HINT ")\n");
        return 2;
    }
    if (fwd_require_model(model, "sweep")) {
        fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg());
        return 1;
    }
    cli_threads(opts);
    int window = (int)cli_int(opts, "--window", 2, 1 << 20), windows = (int)cli_int(opts, "--windows", 1, 1 << 20);
    int json = cli_flag(opts, "--json"), quiet = cli_flag(opts, "--quiet"), cuda;
    if (be_device_parse(cli_get(opts, "--device"), &cuda)) {
        fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg());
        return 2;
    }
    q_options base;
    q_options_default(&base);
    if (q_gran_from_name(cli_get(opts, "--weight-granularity"), &base.weight_gran)) {
        fprintf(stderr, "mambaq sweep: --weight-granularity: %s\n", mq_errmsg());
        return 2;
    }
    base.quantize_embedding = cli_flag(opts, "--quantize-embedding");
    base.quantize_head = cli_flag(opts, "--quantize-head") || base.quantize_embedding;
    base.group_size = (int)cli_int(opts, "--group-size", -1, 1 << 20);
    if (base.group_size == 0) {
        fprintf(stderr, "mambaq sweep: --group-size: 0 is not a size (-1: one scale per row)\n");
        return 2;
    }
    base.cluster = !cli_flag(opts, "--no-cluster");
    base.state_groups = !cli_flag(opts, "--no-state-groups");

    /* the configurations */
    char mitems[16][32], pitems[32][32];
    int nm = parse_list(cli_get(opts, "--method"), mitems, 16);
    if (nm < 0) {
        fprintf(stderr, "mambaq sweep: --method: %s (give recipes, e.g. --method naive,quamba)\n", mq_errmsg());
        return 2;
    }
    int np = parse_list(cli_get(opts, "--percentile"), pitems, 32);
    if (np < 0) {
        fprintf(stderr, "mambaq sweep: --percentile: %s (give percentiles in (0, 100], e.g. --percentile 99.99,99.999)\n", mq_errmsg());
        return 2;
    }
    /* quamba2's modes: every --bits, the 4-bit ones once per --weight-method */
    char bitems[3][32], witems[2][32];
    int nb = parse_list(cli_get(opts, "--bits"), bitems, 3), nw = parse_list(cli_get(opts, "--weight-method"), witems, 2);
    if (nb < 0 || nw < 0) {
        fprintf(stderr, "mambaq sweep: %s: %s\n", nb < 0 ? "--bits" : "--weight-method", mq_errmsg());
        return 2;
    }
    int modes[3][2], gptqs[2]; /* [wbits, abits] */
    for (int i = 0; i < nb; i++)
        if (q_cli_bits(bitems[i], &modes[i][0], &modes[i][1])) {
            fprintf(stderr, "mambaq sweep: --bits: '%s' is not w8a8, w4a8 or w4a16\n", bitems[i]);
            return 2;
        }
    for (int i = 0; i < nw; i++) {
        if (strcmp(witems[i], "gptq") && strcmp(witems[i], "rtn")) {
            fprintf(stderr, "mambaq sweep: --weight-method: '%s' is not gptq or rtn\n", witems[i]);
            return 2;
        }
        gptqs[i] = !strcmp(witems[i], "gptq");
    }
    conf confs[MAX_CONF];
    int nc = 0, has_q2 = 0, need_hess = 0;
    for (int i = 0; i < nm; i++) {
        q_method meth;
        if (q_method_from_name(mitems[i], &meth)) {
            fprintf(stderr, "mambaq sweep: --method: %s\n", mq_errmsg());
            return 2;
        }
        const int q2 = meth == Q_QUAMBA2;
        has_q2 |= q2;
        for (int b = 0; b < (q2 ? nb : 1); b++)
            for (int w = 0; w < (q2 && modes[b][0] == 4 ? nw : 1); w++) {
                /* the percentile clips x only where it is quantized with one scale (quamba2: --no-cluster, not w4a16) */
                const int clips = q_method_uses_percentile(meth) && !(q2 && (base.cluster || modes[b][1] == 16));
                for (int k = 0; k < (clips ? np : 1); k++) {
                    if (nc == MAX_CONF) {
                        fprintf(stderr, "mambaq sweep: more than %d recipe x percentile configurations; sweep fewer at a time\n", MAX_CONF);
                        return 2;
                    }
                    conf *cf = &confs[nc++];
                    memset(cf, 0, sizeof *cf);
                    cf->method = meth;
                    cf->wbits = q2 ? modes[b][0] : 8, cf->abits = q2 ? modes[b][1] : 8;
                    cf->gptq = q2 && modes[b][0] == 4 ? gptqs[w] : 0;
                    need_hess |= cf->wbits == 4 && cf->gptq;
                    if (clips) {
                        char *end;
                        cf->pct = strtod(pitems[k], &end);
                        if (*end || !(cf->pct > 0 && cf->pct <= 100)) {
                            fprintf(stderr, "mambaq sweep: --percentile: '%s' is not a number in (0, 100]\n", pitems[k]);
                            return 2;
                        }
                    }
                }
            }
    }
    for (int i = 0; i < Q_CLI_NQ2_OPTS && !has_q2; i++)
        if (cli_flag(opts, q_cli_q2_opts[i])) {
            fprintf(stderr, "mambaq sweep: %s belongs to quamba2, which --method does not list\n", q_cli_q2_opts[i]);
            return 2;
        }
    if (!nc) {
        fprintf(stderr, "mambaq sweep: nothing to run (--method is empty)\n");
        return 2;
    }

    mq_config cfg;
    if (cfg_load(model, &cfg)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); return 1; }
    q_cstats cs;
    if (q_cstats_open(&cs, stats, model, &cfg)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); return 1; }
    const char *tokenizer = cli_tokenizer(model, cli_get(opts, "--tokenizer"));
    task_probe *tp = task_probe_open(opts, tokenizer, cuda, quiet);   /* NULL without --task */
    int32_t *ids = NULL;
    size_t n = 0;
    if (ds_load_tokens(data, tokenizer, cli_get(opts, "--field"), &ids, &n)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); return 1; }
    if (n / window < (size_t)windows) {
        if (n < (size_t)window) { fprintf(stderr, "mambaq sweep: %s has %zu tokens, fewer than one window of %d\n", data, n, window); return 1; }
        fprintf(stderr, "mambaq sweep: warning: %s has %zu tokens, only %zu full windows of %d: scoring %zu, not the %d asked for\n",
                data, n, n / window, window, n / window, windows);
        windows = (int)(n / window);
    }
    mq_model m;
    if (ssm_load(model, &m)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); return 1; }
    for (int i = 0; i < nc; i++) {
        q_options o = base;
        o.method = confs[i].method;
        o.wbits = confs[i].wbits, o.abits = confs[i].abits;
        if (q_cstats_missing(&cs, &o)) {
            if (!quiet) fprintf(stderr, "sweep: extra calibration pass for the fused statistics\n");
            if (q_cli_calib_data(&cs, cli_get(opts, "--calib")) || q_cstats_fused_pass(&cs, &m, tokenizer, !quiet)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); return 1; }
            break;
        }
    }

    int L = cfg.n_layer;
    prog_bar bar;
    int64_t done = 0;
    prog_start(&bar, "sweep", "windows", (int64_t)windows * (nc + 1), quiet);
    /* the float reference: ppl, then (FP32) y / out_proj output of the first window */
    const int batch = sweep_batch(cuda, windows);
    be *bf = be_open_model(&m, cuda ? BE_CUDA_F16 : BE_CPU_F32, batch, window);
    double ppl_fp = ppl_of(bf, ids, n, window, windows, &bar, &done);
    be_free(bf);
    if (isnan(ppl_fp)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); return 1; }
    if (tp && task_probe_model(tp, 0, &m)) { fprintf(stderr, "mambaq sweep: --task: %s\n", mq_errmsg()); return 1; }
    capture ref = {&m, NULL, window, alloc_layers(L, (size_t)window * cfg.d_inner), alloc_layers(L, (size_t)window * cfg.d_model), 0};
    mq_hooks hr = {cap_hook, &ref};
    float *hidden = mq_malloc((size_t)window * cfg.d_model * sizeof(float));
    ssm_forward(&m, ids, window, &hr, hidden);
    capture got = {NULL, NULL, window, alloc_layers(L, (size_t)window * cfg.d_inner), alloc_layers(L, (size_t)window * cfg.d_model), 0};

    q_stats qs = q_cstats_iface(&cs);
    q_hessians hess = {0};
    if (need_hess) { /* GPTQ: the Hessians of the int4 linears' inputs, once for every quamba2 mode */
        q_options o = base;
        o.method = Q_QUAMBA2, o.wbits = 4, o.gptq = 1;
        if (!quiet) fprintf(stderr, "sweep: Hessian pass for GPTQ over the calibration windows (at most %d tokens)\n", Q_HESS_MAX_TOKENS);
        if (q_cli_calib_data(&cs, cli_get(opts, "--calib")) || q_cstats_hessian_pass(&cs, &m, tokenizer, &o, !quiet, &hess)) {
            fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg());
            return 1;
        }
        qs.hess = &hess;
    }
    int failed = 0;
    for (int i = 0; i < nc && !failed; i++) {
        conf *cf = &confs[i];
        q_options o = base;
        o.method = cf->method;
        o.wbits = cf->wbits, o.abits = cf->abits, o.gptq = cf->gptq;
        if (cf->pct > 0) o.percentile = cf->pct;
        q_model qm;
        mq_model sm;
        if (q_quantize(&m, &qs, &o, &qm)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); failed = 1; break; }
        be *b8 = be_open_qmodel(&qm, cuda ? BE_CUDA_INT8 : BE_CPU_SIM, batch, window);
        cf->ppl = ppl_of(b8, ids, n, window, windows, &bar, &done);
        be_free(b8);
        if (tp && task_probe_qmodel(tp, i + 1, &qm)) { fprintf(stderr, "mambaq sweep: --task: %s\n", mq_errmsg()); failed = 1; }
        q_sim_build(&qm, &sm);
        q_sim_ctx sc;
        mq_hooks h = q_sim_hooks(&sc, &qm);
        got.m = &sm;
        got.inner = &h;
        got.unrotate = qm.resid_n != 0;
        mq_hooks hc = {cap_hook, &got};
        ssm_forward(&sm, ids, window, &hc, hidden);
        cf->y_err = mq_malloc((size_t)L * sizeof(double));
        cf->out_err = mq_malloc((size_t)L * sizeof(double));
        for (int l = 0; l < L; l++) {
            cf->y_err[l] = rel_err(got.y[l], ref.y[l], (size_t)window * cfg.d_inner);
            cf->out_err[l] = rel_err(got.out[l], ref.out[l], (size_t)window * cfg.d_model);
        }
        q_sim_free(&sm);
        q_model_free(&qm);
        if (isnan(cf->ppl)) { fprintf(stderr, "mambaq sweep: %s\n", mq_errmsg()); failed = 1; }
    }
    prog_finish(&bar);
    q_hessians_free(&hess);
    if (failed) return 1;

    if (json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", model);
        cJSON_AddStringToObject(j, "arch", cfg_arch_name(cfg.arch));
        cJSON_AddStringToObject(j, "stats", stats);
        cJSON_AddStringToObject(j, "data", data);
        cJSON_AddNumberToObject(j, "window", window);
        cJSON_AddNumberToObject(j, "windows", windows);
        cJSON_AddNumberToObject(j, "tokens_scored", (double)windows * (window - 1));
        cJSON_AddStringToObject(j, "weight_granularity", q_gran_name(base.weight_gran));
        cJSON_AddBoolToObject(j, "quantize_head", base.quantize_head);
        cJSON_AddBoolToObject(j, "quantize_embedding", base.quantize_embedding);
        cJSON_AddNumberToObject(j, "fp32_ppl", ppl_fp);
        if (tp) task_probe_json(tp, 0, j, "fp32_task");
        cJSON *res = cJSON_AddArrayToObject(j, "results");
        for (int i = 0; i < nc; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "method", q_method_name(confs[i].method));
            if (confs[i].pct > 0) cJSON_AddNumberToObject(r, "percentile", confs[i].pct);
            else cJSON_AddNullToObject(r, "percentile");
            if (confs[i].method == Q_QUAMBA2) {
                char b[16];
                snprintf(b, sizeof b, "w%da%d", confs[i].wbits, confs[i].abits);
                cJSON_AddStringToObject(r, "bits", b);
                if (confs[i].wbits == 4) cJSON_AddStringToObject(r, "weight_method", confs[i].gptq ? "gptq" : "rtn");
            }
            cJSON_AddNumberToObject(r, "ppl", confs[i].ppl);
            cJSON_AddItemToObject(r, "y_rel_err", cJSON_CreateDoubleArray(confs[i].y_err, L));
            cJSON_AddItemToObject(r, "out_proj_rel_err", cJSON_CreateDoubleArray(confs[i].out_err, L));
            if (tp) task_probe_json(tp, i + 1, r, "task");
            cJSON_AddItemToArray(res, r);
        }
        cli_json_print(j, 0);
    } else {
        printf("model   %s (%s)\ndata    %s: %d windows x %d tokens\nstats   %s\n\n", model, cfg_arch_name(cfg.arch),
               data, windows, window, stats);
        char tdesc[4400], cells[64];
        if (tp) printf("task    %s\n\n", task_probe_describe(tp, tdesc, sizeof tdesc));
        char nm_[48];
        printf("%-18s %10s %12s %10s%s\n", "method", "percentile", "ppl", "vs FP32", tp ? task_probe_header(tp) : "");
        printf("%-18s %10s %12.4f %10s%s\n", cuda ? "fp16" : "fp32", "-", ppl_fp, "-", tp ? task_probe_cells(tp, 0, cells, sizeof cells) : "");
        for (int i = 0; i < nc; i++) {
            char p[32];
            if (confs[i].pct > 0) snprintf(p, sizeof p, "%g", confs[i].pct);
            else snprintf(p, sizeof p, "-");
            printf("%-18s %10s %12.4f %+9.2f%%%s\n", conf_name(&confs[i], nm_, sizeof nm_), p, confs[i].ppl,
                   100 * (confs[i].ppl / ppl_fp - 1), tp ? task_probe_cells(tp, i + 1, cells, sizeof cells) : "");
        }
        printf("\nrelative L2 error vs FP32 on window 0, per layer: y (SSM output) / out_proj output\nlayer");
        for (int i = 0; i < nc; i++) {
            char h[80];
            const char *cn = conf_name(&confs[i], nm_, sizeof nm_);
            if (confs[i].pct > 0) snprintf(h, sizeof h, "%s@%.6g", cn, confs[i].pct);
            else snprintf(h, sizeof h, "%s", cn);
            printf(" %17s", h);
        }
        printf("\n");
        for (int l = 0; l < L; l++) {
            printf("%5d", l);
            for (int i = 0; i < nc; i++) printf("   %7.4f/%7.4f", confs[i].y_err[l], confs[i].out_err[l]);
            printf("\n");
        }
    }
    for (int i = 0; i < nc; i++) { free(confs[i].y_err); free(confs[i].out_err); }
    free_layers(ref.y, L);
    free_layers(ref.out, L);
    free_layers(got.y, L);
    free_layers(got.out, L);
    free(hidden);
    free(ids);
    ssm_free(&m);
    q_cstats_close(&cs);
    task_probe_free(tp);
    return 0;
}
