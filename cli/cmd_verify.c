/* mambaq verify --artifact DIR --data FILE: runs the float model the artifact was made from and the
 * int8 pass of the artifact on the same windows and reports how far apart they are:
 *   - perplexity of both (the eval protocol: non-overlapping windows, every token after the first),
 *   - top-1 next-token agreement and mean KL(float || int8) per scored token,
 *   - per-layer cosine similarity of the block outputs (the residual stream after each block, as
 *     each forward reports it: MQ_ACT_RESID; rotated back first when the artifact rotates it) on
 *     the first --check-windows windows,
 *   - the deviation of the int8 GPU pass from the CPU simulation of the artifact (ssm/qsim.c),
 *     teacher-forced (quantize/check.h): per quantized activation the share of int8 codes that
 *     differ and the largest difference in quantization steps, and the largest logit and per-token
 *     NLL differences, which must stay at FP16-rounding level; plus the free-running simulation's
 *     perplexity on the same windows.
 * Both sides are ssm/backend.h forwards: with a GPU (--device cuda, or auto when one is usable) the
 * int8 pass and the FP16 forward; on the CPU (--device cpu) the simulation and the FP32 reference,
 * a check of the artifact itself (exit 0 when it passes). --device auto without a GPU does the CPU
 * check, says the GPU pass was not verified, and exits 3.
 * Exit status: 0 verified; 1 the artifact fails validation, the model or data cannot be read, the
 * int8 perplexity is not finite, or the int8 pass deviates from the simulation beyond rounding;
 * 2 usage; 3 no GPU under --device auto. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli/args.h"
#include "cli/cmds.h"
#include "cli/eval.h"
#include "cli/fwd.h"
#include "cli/task.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/progress.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "export/art.h"
#include "hadamard/had.h"
#include "quantize/check.h"
#include "ssm/backend.h"
#include "ssm/ops.h"

/* check thresholds (the same as tests/test_int8.c) */
#define MAX_STEPS 1.001     /* an int8 code may differ from the simulation's by one step */
#define MAX_FLIPS 0.01      /* ... in at most 1% of an activation's values */
#define MAX_LOGIT_REL 5e-3  /* forced logits: max |diff| / max |logit| */

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1 : 0);
}

/* ---- the residual stream after each block (MQ_ACT_RESID): the int8 side stores it ([L x T x D]),
 * the float side compares with the stored one (cos[l]); anything else goes on to `next` */
typedef struct {
    float *store;
    const float *ref;
    double *cos;
    float *tmp;
    size_t per_layer;
    mq_hooks next;
} resid_ctx;

static int resid_hook(void *ctx, const mq_act *a) {
    resid_ctx *r = ctx;
    if (a->role != MQ_ACT_RESID) return r->next.fn ? r->next.fn(r->next.ctx, a) : 0;
    if (a->layer < 0) return 0;
    float *dst = r->store ? r->store + (size_t)a->layer * r->per_layer : r->tmp;
    if (be_act_download(a, dst)) return -1;
    if (r->ref) r->cos[a->layer] = cosine(dst, r->ref + (size_t)a->layer * r->per_layer, r->per_layer);
    return 0;
}

/* ---- scoring of row blocks: float logits lf, int8 logits l8, optionally the forced simulation's ls */
typedef struct {
    double nll_f, nll_8, kl, nll_s_forced;
    double sq_f, sq_8;      /* sums of squared per-token NLLs (standard errors) */
    long rows, agree;
    double max_dlogit, max_logit, max_dnll;
} score;

static void score_rows(score *sc, const float *lf, const float *l8, const float *ls, const int32_t *targets, int n, int V) {
    double nf = 0, n8 = 0, kl = 0, ns = 0, mdl = 0, ml = 0, mdn = 0, qf = 0, q8 = 0;
    long agree = 0;
#pragma omp parallel for schedule(static) reduction(+ : nf, n8, kl, ns, agree, qf, q8) reduction(max : mdl, ml, mdn)
    for (int r = 0; r < n; r++) {
        const float *a = lf + (size_t)r * V, *b = l8 + (size_t)r * V;
        const double la = op_logsumexp(a, V), lb = op_logsumexp(b, V);
        const int t = targets[r];
        nf += la - a[t];
        n8 += lb - b[t];
        qf += (la - a[t]) * (la - a[t]);
        q8 += (lb - b[t]) * (lb - b[t]);
        int ia = 0, ib = 0;
        double k = 0;
        for (int v = 0; v < V; v++) {
            if (a[v] > a[ia]) ia = v;
            if (b[v] > b[ib]) ib = v;
            const double lpa = a[v] - la;
            k += exp(lpa) * (lpa - (b[v] - lb));
        }
        kl += k;
        agree += ia == ib;
        if (ls) {
            const float *c = ls + (size_t)r * V;
            const double lc = op_logsumexp(c, V);
            ns += lc - c[t];
            for (int v = 0; v < V; v++) {
                mdl = fmax(mdl, fabs((double)b[v] - c[v]));
                ml = fmax(ml, fabs((double)c[v]));
            }
            mdn = fmax(mdn, fabs((lb - b[t]) - (lc - c[t])));
        }
    }
    sc->sq_f += qf, sc->sq_8 += q8;
    sc->nll_f += nf, sc->nll_8 += n8, sc->kl += kl, sc->nll_s_forced += ns, sc->agree += agree, sc->rows += n;
    sc->max_dlogit = fmax(sc->max_dlogit, mdl), sc->max_logit = fmax(sc->max_logit, ml), sc->max_dnll = fmax(sc->max_dnll, mdn);
}

/* ---- the command */

typedef struct {
    const char *artifact, *model, *data, *tokenizer, *field;
    int window, windows, check_windows, json;
} vspec;

static int same_shape(const mq_config *a, const mq_config *b) {
    return a->arch == b->arch && a->d_model == b->d_model && a->n_layer == b->n_layer && a->vocab_size == b->vocab_size &&
           a->d_inner == b->d_inner && a->d_state == b->d_state && a->d_conv == b->d_conv;
}

int cmd_verify(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--artifact", .metavar = "DIR", .help = "the int8 artifact (mambaq quantize)", .pos = 1},
        {.name = "--model", .metavar = "DIR", .help = "the float model (default: the source model the artifact records, a path "
                                                      "when quantized with --record-paths); an artifact here is taken as --artifact"},
        CLI_DATA_OPTS(NULL),
        CLI_WINDOWS("8"),
        {.name = "--check-windows", .metavar = "N",
         .help = "windows with the per-layer cosine and the check against the CPU simulation (CPU time)", .def = "1"},
        CLI_DEVICE_HELP("auto", "cuda: the int8 GPU pass against the FP16 forward and the simulation; cpu: the simulation against "
                                "the FP32 reference; auto: cuda when a GPU is usable"),
        CLI_RUN_OPTS,
        CLI_TASK_OPTS("also float vs int8 accuracy and agreement on a zero-shot task"),
        CLI_END,
    };
    cli_parse(argc, argv, opts, "mambaq verify ARTIFACT [--data FILE] [--device cpu|cuda|auto] [options]",
              "Runs the float source model and the int8 artifact on the same windows: perplexity of both (+/- their\n"
              "standard errors), top-1 agreement, mean KL(float || int8), per-layer cosine of block outputs, and the\n"
              "deviation of the int8 GPU pass from the CPU simulation of the artifact (teacher-forced).\n"
              "--data defaults to <shared>/datasets/valid.txt. --device cpu checks the artifact itself on the CPU.\n"
              "Exit 0 verified, 1 failed (invalid artifact, non-finite int8 ppl, deviation beyond rounding),\n"
              "2 usage, 3 no GPU under --device auto (the CPU simulation stands in for the int8 pass).",
              NULL, 0);
    vspec v = {0};
    v.artifact = cli_get(opts, "--artifact");
    if (!v.artifact && cli_get(opts, "--model") && fwd_is_artifact(cli_get(opts, "--model"))) v.artifact = cli_get(opts, "--model");
    if (!v.artifact) v.artifact = cli_need(opts, "verify", "--artifact");
    v.data = cli_flag(opts, "--data") ? cli_get(opts, "--data") : cli_default_path("datasets/valid.txt");
    if (!v.data) {
        fprintf(stderr, "mambaq verify: no --data given and <shared>/datasets/valid.txt not found (" CLI_SHARED_HINT ")\n");
        return 2;
    }
    cli_threads(opts);
    const int quiet = cli_flag(opts, "--quiet");
    v.field = cli_get(opts, "--field");
    v.window = (int)cli_int(opts, "--window", 2, 1 << 20);
    v.windows = (int)cli_int(opts, "--windows", 0, 1 << 24);
    v.check_windows = (int)cli_int(opts, "--check-windows", 0, 1 << 24);
    v.json = cli_flag(opts, "--json");

    double t0 = prog_now();
    int cuda;
    const char *dev = cli_get(opts, "--device");
    if (be_device_parse(dev, &cuda)) {
        fprintf(stderr, "mambaq verify: %s\n", mq_errmsg());
        return 2;
    }
    const char *why = "";
    const int no_gpu_auto = !cuda && !strcmp(dev, "auto") && !gpu_available(&why);
    static art_artifact a;
    if (art_open(v.artifact, &a)) {
        fprintf(stderr, "mambaq verify: the artifact %s failed validation: %s\n", v.artifact, mq_errmsg());
        return 1;
    }
    const q_model *qm = &a.qm;
    const mq_config *c = &qm->cfg;
    v.model = cli_get(opts, "--model") && strcmp(cli_get(opts, "--model"), v.artifact) ? cli_get(opts, "--model") : a.prov.source_model;
    if (!v.model || !*v.model) {
        fprintf(stderr, "mambaq verify: the artifact names no source model; give --model DIR\n");
        art_close(&a);
        return 1;
    }
    v.tokenizer = cli_tokenizer(v.artifact, cli_get(opts, "--tokenizer"));
    task_probe *tp = task_probe_open(opts, v.tokenizer, cuda, v.json);   /* NULL without --task */

    mq_model m, sm;
    if (ssm_load(v.model, &m)) {
        if (v.model != a.prov.source_model)
            fprintf(stderr, "mambaq verify: loading the float model %s: %s\n", v.model, mq_errmsg());
        else if (!strchr(v.model, '/'))   /* a name only: quantize records whole paths with --record-paths */
            fprintf(stderr, "mambaq verify: %s records its source model by name only ('%s'; quantize records the path with "
                            "--record-paths): give the float model with --model DIR\n", v.artifact, v.model);
        else
            fprintf(stderr, "mambaq verify: the source model %s records, %s, cannot be loaded (%s): give the float model with "
                            "--model DIR\n", v.artifact, v.model, mq_errmsg());
        art_close(&a);
        return 1;
    }
    if (!same_shape(&m.cfg, c)) {
        fprintf(stderr, "mambaq verify: %s is not the model of %s (shapes differ); give the source with --model\n",
                v.model, v.artifact);
        ssm_free(&m), art_close(&a);
        return 1;
    }
    int32_t *ids = NULL;
    size_t nids = 0;
    if (ds_load_tokens(v.data, v.tokenizer, v.field, &ids, &nids)) {
        fprintf(stderr, "mambaq verify: %s\n", mq_errmsg());
        ssm_free(&m), art_close(&a);
        return 1;
    }
    const int T = v.window, V = c->vocab_size, D = c->d_model, L = c->n_layer;
    long full = (long)(nids / (size_t)T);
    int nw = v.windows > 0 && v.windows < full ? v.windows : (int)full;
    if (v.windows > full && full >= 1)
        fprintf(stderr, "mambaq verify: warning: %s has %zu tokens, only %ld full windows of %d: scoring %ld, not the %d asked for\n",
                v.data, nids, full, T, full, v.windows);
    if (nw < 1) {
        fprintf(stderr, "mambaq verify: %s has %zu tokens, fewer than one window of %d\n", v.data, nids, T);
        free(ids), ssm_free(&m), art_close(&a);
        return 1;
    }
    int ncheck = v.check_windows < nw ? v.check_windows : nw;

    /* the two forwards; on the GPU also the simulation, teacher-forced by the int8 pass */
    if (no_gpu_auto)
        fprintf(stderr, "mambaq verify: no usable GPU (%s): the int8 GPU pass is NOT verified; the CPU simulation of "
                        "the artifact stands in for it below (exit status 3)\n", why);
    be *b8 = be_open_qmodel(qm, cuda ? BE_CUDA_INT8 : BE_CPU_SIM, 1, T);
    if (!b8) {
        fprintf(stderr, "mambaq verify: the int8 forward: %s\n", mq_errmsg());
        return 1;
    }
    be *bf = be_open_model(&m, cuda ? BE_CUDA_F16 : BE_CPU_F32, 1, T);
    if (!bf && cuda) { /* the CPU FP32 forward instead */
        fprintf(stderr, "mambaq verify: note: FP16 GPU forward unavailable (%s); the float model runs on the CPU\n",
                mq_errmsg());
        bf = be_open_model(&m, BE_CPU_F32, 1, T);
    }
    if (!bf) {
        fprintf(stderr, "mambaq verify: the float forward: %s\n", mq_errmsg());
        return 1;
    }
    const int forced = cuda && ncheck; /* the simulation check needs the GPU pass to compare with */
    q_sim_ctx scx;
    mq_hooks simh = {0};
    if (forced) {
        q_sim_build(qm, &sm);
        simh = q_sim_hooks(&scx, qm);
    }
    const double load_s = prog_now() - t0;

    /* per window: float and int8 logits in row blocks, scored together */
    enum { BLK = 256 };
    float *lf = mq_malloc((size_t)BLK * V * 4), *l8 = mq_malloc((size_t)BLK * V * 4);
    float *ls = forced ? mq_malloc((size_t)BLK * V * 4) : NULL;
    float *hids = forced ? mq_malloc((size_t)T * D * 4) : NULL;
    float *store = ncheck ? mq_malloc((size_t)L * T * D * 4) : NULL, *rtmp = mq_malloc((size_t)T * D * 4);
    double *cos = mq_calloc((size_t)L, sizeof(double)), *cos_min = mq_malloc((size_t)L * sizeof(double));
    for (int l = 0; l < L; l++) cos_min[l] = 2;
    score all = {0}, chk = {0};
    double nll_8_check = 0, nll_sim_check = 0;
    qchk *ck = NULL;
    char rep[4096] = "";
    int check_bad = 0;
    char check_msg[512] = "";
    double t1 = prog_now();
    prog_bar bar;
    prog_start(&bar, "verify", "windows", nw, quiet);
    for (int w = 0; w < nw; w++) {
        const int32_t *tok = ids + (size_t)w * T;
        const int checking = w < ncheck;
        /* int8: the residual after each block into store, the rest to the check */
        resid_ctx r8 = {store, NULL, NULL, rtmp, (size_t)T * D, {NULL, NULL}};
        if (checking && forced) {
            qchk_free(ck);
            ck = qchk_new(qm, T);
            r8.next = qchk_pass_hooks(ck);
        }
        mq_hooks h8 = {resid_hook, &r8};
        if (be_prefill(b8, tok, 1, T, NULL, checking ? &h8 : NULL, NULL)) mq_die("verify: %s", mq_errmsg());
        /* a rotated residual stream (quamba-rot) is r H: rotate it back (H is its own inverse) */
        if (checking && qm->resid_n && had_transform_f32(store, L * T, D)) mq_die("verify: %s", mq_errmsg());
        /* float: the cosine of each block's residual with the int8 one */
        if (checking) memset(cos, 0, (size_t)L * sizeof(double));
        resid_ctx rf = {NULL, store, cos, rtmp, (size_t)T * D, {NULL, NULL}};
        mq_hooks hf = {resid_hook, &rf};
        if (be_prefill(bf, tok, 1, T, NULL, checking ? &hf : NULL, NULL)) mq_die("verify: %s", mq_errmsg());
        if (checking)
            for (int l = 0; l < L; l++) cos_min[l] = fmin(cos_min[l], cos[l]);
        /* the simulation, teacher-forced by the int8 pass, and free-running */
        if (checking && forced) {
            mq_hooks fh = qchk_sim_hooks(ck);
            if (ssm_forward(&sm, tok, T, &fh, hids)) mq_die("verify: %s", mq_errmsg());
            nll_sim_check += ssm_nll(&sm, tok, T, &simh, NULL);
        }
        score *sc = checking && forced ? &chk : &all;
        for (int r0 = 0; r0 < T - 1; r0 += BLK) {
            const int n = T - 1 - r0 < BLK ? T - 1 - r0 : BLK;
            if (be_logits(b8, r0, n, l8) || be_logits(bf, r0, n, lf)) mq_die("verify: %s", mq_errmsg());
            if (checking && forced) ssm_logits(&sm, hids + (size_t)r0 * D, n, ls);
            score_rows(sc, lf, l8, checking && forced ? ls : NULL, tok + r0 + 1, n, V);
        }
        if (checking && forced) {
            char part[4096];
            qchk_format(ck, part, sizeof part);
            snprintf(rep, sizeof rep, "%s", part);
            const qchk_role *rs = qchk_stats(ck);
            for (int r = 0; r < MQ_ACT_NROLES; r++) {
                if (!rs[r].n || !rs[r].is_int8) continue;
                if (rs[r].max_steps > MAX_STEPS || rs[r].flips > MAX_FLIPS * rs[r].n) {
                    check_bad = 1;
                    snprintf(check_msg, sizeof check_msg, "window %d, %s: %.3g%% of codes differ, up to %.3g steps (layer %d)",
                             w, ssm_act_role_name((mq_act_role)r), 100.0 * rs[r].flips / rs[r].n, rs[r].max_steps,
                             rs[r].worst_layer);
                }
            }
        }
        prog_update(&bar, w + 1, (int64_t)(w + 1) * T);
    }
    prog_finish(&bar);
    const double run_s = prog_now() - t1;
    /* totals: the check windows were scored into chk */
    score tot = all;
    tot.nll_f += chk.nll_f, tot.nll_8 += chk.nll_8, tot.kl += chk.kl, tot.rows += chk.rows, tot.agree += chk.agree;
    tot.sq_f += chk.sq_f, tot.sq_8 += chk.sq_8;
    nll_8_check = chk.nll_8;
    const double ppl_f = exp(tot.nll_f / tot.rows), ppl_8 = exp(tot.nll_8 / tot.rows);
    const double err_f = ppl_f * eval_nll_stderr(tot.nll_f, tot.sq_f, tot.rows), err_8 = ppl_8 * eval_nll_stderr(tot.nll_8, tot.sq_8, tot.rows);
    const double top1 = (double)tot.agree / tot.rows, kl = tot.kl / tot.rows;
    int min_l = 0;
    for (int l = 0; l < L; l++)
        if (cos_min[l] < cos_min[min_l]) min_l = l;
    if (forced && chk.max_logit > 0 && chk.max_dlogit > MAX_LOGIT_REL * chk.max_logit && !check_bad) {
        check_bad = 1;
        snprintf(check_msg, sizeof check_msg, "forced logits differ by %.3g (max |logit| %.3g)", chk.max_dlogit,
                 chk.max_logit);
    }
    const int finite = isfinite(ppl_8);
    if (tp && (task_probe_model(tp, 0, &m) || task_probe_qmodel(tp, 1, qm))) mq_die("verify: --task: %s", mq_errmsg());
    const char *float_kind = be_kind_text(be_kind_of(bf));
    const int w4a16 = qm->opt.method == Q_QUAMBA2 && qm->opt.wbits == 4 && qm->opt.abits == 16;
    const char *int8_kind = cuda ? (w4a16 ? "W4A16 GPU pass" : "int8 GPU pass")
                                 : no_gpu_auto ? "CPU simulation (NO GPU)" : "CPU simulation";
    if (v.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "artifact", v.artifact);
        cJSON_AddStringToObject(o, "model", v.model);
        cJSON_AddStringToObject(o, "method", q_method_name(qm->opt.method));
        cJSON_AddStringToObject(o, "arch", cfg_arch_name(c->arch));
        cJSON_AddStringToObject(o, "data", v.data);
        cJSON_AddStringToObject(o, "device", cuda ? gpu_describe() : "cpu");
        cJSON_AddStringToObject(o, "float", float_kind);
        cJSON_AddStringToObject(o, "int8", int8_kind);
        cJSON_AddBoolToObject(o, "gpu_verified", cuda);
        cJSON_AddNumberToObject(o, "window", T);
        cJSON_AddNumberToObject(o, "windows", nw);
        cJSON_AddNumberToObject(o, "tokens_scored", (double)tot.rows);
        cJSON_AddNumberToObject(o, "ppl_float", ppl_f);
        cJSON_AddNumberToObject(o, "ppl_int8", ppl_8);
        cJSON_AddNumberToObject(o, "ppl_float_stderr", err_f);
        cJSON_AddNumberToObject(o, "ppl_int8_stderr", err_8);
        cJSON_AddNumberToObject(o, "top1_agreement", top1);
        cJSON_AddNumberToObject(o, "kl_mean", kl);
        cJSON *cl = cJSON_AddArrayToObject(o, "layer_cosine");
        for (int l = 0; l < L && ncheck; l++) cJSON_AddItemToArray(cl, cJSON_CreateNumber(cos_min[l]));
        if (forced) {
            cJSON *s = cJSON_AddObjectToObject(o, "simulation_check");
            cJSON_AddNumberToObject(s, "windows", ncheck);
            cJSON_AddNumberToObject(s, "max_logit_diff", chk.max_dlogit);
            cJSON_AddNumberToObject(s, "max_logit", chk.max_logit);
            cJSON_AddNumberToObject(s, "max_nll_diff", chk.max_dnll);
            cJSON_AddNumberToObject(s, "ppl_int8", exp(nll_8_check / chk.rows));
            cJSON_AddNumberToObject(s, "ppl_simulation_forced", exp(chk.nll_s_forced / chk.rows));
            cJSON_AddNumberToObject(s, "ppl_simulation", exp(nll_sim_check / chk.rows));
            cJSON *roles = cJSON_AddObjectToObject(s, "roles");
            const qchk_role *rs = qchk_stats(ck);
            for (int r = 0; r < MQ_ACT_NROLES; r++) {
                if (!rs[r].n) continue;
                cJSON *e = cJSON_AddObjectToObject(roles, ssm_act_role_name((mq_act_role)r));
                cJSON_AddNumberToObject(e, "values", (double)rs[r].n);
                if (rs[r].is_int8) {
                    cJSON_AddNumberToObject(e, "codes_differing", (double)rs[r].flips);
                    cJSON_AddNumberToObject(e, "max_steps", rs[r].max_steps);
                } else {
                    cJSON_AddNumberToObject(e, "max_rel_diff", rs[r].max_rel);
                }
                cJSON_AddNumberToObject(e, "worst_layer", rs[r].worst_layer);
            }
            cJSON_AddBoolToObject(s, "ok", !check_bad);
        }
        if (tp) task_probe_json_pair(tp, 0, 1, o, "task");
        cJSON_AddNumberToObject(o, "seconds", run_s);
        cJSON_AddNumberToObject(o, "load_seconds", load_s);
        cli_json_print(o, 0);
    } else {
        printf("artifact       %s (%s, %s, %d layers)\n", v.artifact, q_method_name(qm->opt.method),
               cfg_arch_name(c->arch), L);
        printf("float model    %s, %s\n", v.model, float_kind);
        printf("int8           %s%s%s\n", int8_kind, cuda ? ", " : "", cuda ? gpu_describe() : "");
        printf("data           %s: %d windows x %d tokens, %ld tokens scored\n", v.data, nw, T, tot.rows);
        printf("perplexity     float %.4f +/- %.4f   int8 %.4f +/- %.4f   (%+.2f%%)\n", ppl_f, err_f, ppl_8, err_8,
               100 * (ppl_8 / ppl_f - 1));
        printf("top-1 agree    %.2f%% of next-token predictions\n", 100 * top1);
        printf("KL(float||int8) %.5f nats per token (mean)\n", kl);
        if (ncheck) {
            printf("block cosine   first %d window(s), residual stream after each block, int8 vs float: min %.5f (layer %d)\n",
                   ncheck, cos_min[min_l], min_l);
            printf("              ");
            for (int l = 0; l < L; l++) printf(" %d:%.4f", l, cos_min[l]);
            printf("\n");
        }
        if (forced) {
            printf("vs simulation  first %d window(s), teacher-forced (every op of the CPU simulation from the int8 pass's "
                   "inputs):\n%s", ncheck, rep);
            printf("               max |logit diff| %.3g (max |logit| %.3g), max per-token |NLL diff| %.3g%s\n",
                   chk.max_dlogit, chk.max_logit, chk.max_dnll, check_bad ? "" : ": rounding level");
            printf("               ppl on these windows: int8 %.4f, forced simulation %.4f, free-running simulation %.4f\n",
                   exp(nll_8_check / chk.rows), exp(chk.nll_s_forced / chk.rows), exp(nll_sim_check / chk.rows));
        }
        if (tp) task_probe_print_pair(tp, 0, 1);
        printf("time           %.1f s (%.1f s loading)\n", run_s, load_s);
    }
    int rc = 0;
    if (!finite) {
        fprintf(stderr, "mambaq verify: FAILED: the int8 perplexity is not finite (%g)\n", ppl_8);
        rc = 1;
    } else if (check_bad) {
        fprintf(stderr, "mambaq verify: FAILED: the int8 GPU pass deviates from the CPU simulation beyond rounding: %s\n",
                check_msg);
        rc = 1;
    } else if (no_gpu_auto) {
        fprintf(stderr, "mambaq verify: not verified on a GPU (%s); the int8 numbers above are the CPU simulation's\n", why);
        rc = 3;
    }
    qchk_free(ck);
    task_probe_free(tp);
    free(lf), free(l8), free(ls), free(hids), free(store), free(rtmp), free(cos), free(cos_min), free(ids);
    be_free(b8), be_free(bf);
    if (forced) q_sim_free(&sm);
    ssm_free(&m), art_close(&a);
    return rc;
}
