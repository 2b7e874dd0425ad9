/* mambaq verify --artifact DIR --data FILE: runs the float model the artifact was made from and the
 * int8 pass of the artifact on the same windows and reports how far apart they are:
 *   - perplexity of both (the eval protocol: non-overlapping windows, every token after the first),
 *   - top-1 next-token agreement and mean KL(float || int8) per scored token,
 *   - per-layer cosine similarity of the block outputs (the residual stream after each block; rotated
 *     back first when the artifact rotates it) on the first --check-windows windows,
 *   - the deviation of the int8 GPU pass from the CPU simulation of the artifact (quantize/sim.c),
 *     teacher-forced (ssm/int8_check.h): per quantized activation the share of int8 codes that
 *     differ and the largest difference in quantization steps, and the largest logit and per-token
 *     NLL differences, which must stay at FP16-rounding level; plus the free-running simulation's
 *     perplexity on the same windows.
 * The float model: FP16 on the GPU (ssm/gpu.h) when there is one, else the FP32 CPU reference.
 * Without a GPU the int8 side is the CPU simulation, every number is printed with a note saying so,
 * and the exit status is 3: the GPU pass was not verified.
 * Exit status: 0 verified; 1 the artifact fails validation, the model or data cannot be read, the
 * int8 perplexity is not finite, or the int8 pass deviates from the simulation beyond rounding;
 * 2 usage; 3 no GPU. */
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
#include "core/err.h"
#include "core/gpu.h"
#include "core/mat.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "export/art.h"
#include "hadamard/had.h"
#include "ssm/gpu.h"
#include "ssm/gpu_ops.h"
#include "ssm/int8.h"
#include "ssm/int8_check.h"
#include "ssm/int8_ops.h"
#include "ssm/ops.h"

/* check thresholds (the same as tests/test_int8.c) */
#define MAX_STEPS 1.001     /* an int8 code may differ from the simulation's by one step */
#define MAX_FLIPS 0.01      /* ... in at most 1% of an activation's values */
#define MAX_LOGIT_REL 5e-3  /* forced logits: max |diff| / max |logit| */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* ---- the residual stream after each block, rebuilt from the out_proj input (hook at OUT_PROJ_IN):
 * resid = embedding + sum of out_proj(y) over the blocks so far. store: [L x T x D] to fill; ref:
 * [L x T x D] to compare with (cos[l]). */
typedef struct {
    const mq_model *m;
    const mq_hooks *inner;  /* run first (the simulation's own hooks) */
    int T;
    float *resid, *tmp, *y;
    float *store;
    const float *ref;
    double *cos;
} rtrack;

static double cosine(const float *a, const float *b, size_t n) {
    double ab = 0, aa = 0, bb = 0;
    for (size_t i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : (aa == bb ? 1 : 0);
}

static void rtrack_init(rtrack *r, const mq_model *m, const mq_hooks *inner, const int32_t *tokens, int T, float *store,
                        const float *ref, double *cos) {
    const int D = m->cfg.d_model;
    memset(r, 0, sizeof *r);
    r->m = m, r->inner = inner, r->T = T, r->store = store, r->ref = ref, r->cos = cos;
    r->resid = mq_malloc((size_t)T * D * sizeof(float));
    r->tmp = mq_malloc((size_t)T * D * sizeof(float));
    r->y = mq_malloc((size_t)T * m->cfg.d_inner * sizeof(float));
    for (int t = 0; t < T; t++) memcpy(r->resid + (size_t)t * D, m->embed + (size_t)tokens[t] * D, (size_t)D * sizeof(float));
}
static void rtrack_free(rtrack *r) { free(r->resid), free(r->tmp), free(r->y); }

static void rtrack_block(rtrack *r, int layer, const float *y, int rows, int cols) {
    const mq_layer *L = &r->m->layers[layer];
    const size_t n = (size_t)rows * r->m->cfg.d_model;
    mat_linear(r->tmp, y, L->out_proj, L->out_proj_b, rows, r->m->cfg.d_model, cols);
    for (size_t i = 0; i < n; i++) r->resid[i] += r->tmp[i];
    if (r->store) memcpy(r->store + (size_t)layer * n, r->resid, n * sizeof(float));
    if (r->ref) r->cos[layer] = cosine(r->resid, r->ref + (size_t)layer * n, n);
}

static void rtrack_hook(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    rtrack *r = ctx;
    if (r->inner && r->inner->fn) r->inner->fn(r->inner->ctx, layer, role, x, rows, cols, ld);
    if (role == MQ_ACT_OUT_PROJ_IN && layer >= 0) rtrack_block(r, layer, x, rows, cols); /* dense: ld == cols */
}

/* the FP16 GPU forward hands its out_proj input as a device FP16 tensor */
static void rtrack_gpu_hook(void *ctx, int layer, mq_act_role role, void *x, ssmg_dtype dt, int rows, int cols, int ld,
                            void *stream) {
    rtrack *r = ctx;
    if (role != MQ_ACT_OUT_PROJ_IN || layer < 0) return;
    if (gpuop_download_act(r->y, x, dt == SSMG_F32, rows, cols, ld, stream)) mq_die("verify: %s", mq_errmsg());
    rtrack_block(r, layer, r->y, rows, cols);
}

/* the int8 pass: residual after each block (I8G_RESID) into store, everything else to the check */
typedef struct {
    i8g_hooks chk;
    float *store;
    size_t per_layer;
} pass_ctx;
static void pass_hook(void *ctx, int layer, int role, const void *x, i8g_dtype dt, float scale, int rows, int cols,
                      int ld, void *stream) {
    pass_ctx *p = ctx;
    if (role == I8G_RESID) {
        if (p->store && layer >= 0 &&
            i8op_download(p->store + (size_t)layer * p->per_layer, x, I8G_F32, rows, cols, ld, stream))
            mq_die("verify: %s", mq_errmsg());
        return;
    }
    if (p->chk.fn) p->chk.fn(p->chk.ctx, layer, role, x, dt, scale, rows, cols, ld, stream);
}

/* ---- scoring of row blocks: float logits lf, int8 logits l8, optionally the forced simulation's ls */
typedef struct {
    double nll_f, nll_8, kl, nll_s_forced;
    long rows, agree;
    double max_dlogit, max_logit, max_dnll;
} score;

static void score_rows(score *sc, const float *lf, const float *l8, const float *ls, const int32_t *targets, int n, int V) {
    double nf = 0, n8 = 0, kl = 0, ns = 0, mdl = 0, ml = 0, mdn = 0;
    long agree = 0;
#pragma omp parallel for schedule(static) reduction(+ : nf, n8, kl, ns, agree) reduction(max : mdl, ml, mdn)
    for (int r = 0; r < n; r++) {
        const float *a = lf + (size_t)r * V, *b = l8 + (size_t)r * V;
        const double la = op_logsumexp(a, V), lb = op_logsumexp(b, V);
        const int t = targets[r];
        nf += la - a[t];
        n8 += lb - b[t];
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
    sc->nll_f += nf, sc->nll_8 += n8, sc->kl += kl, sc->nll_s_forced += ns, sc->agree += agree, sc->rows += n;
    sc->max_dlogit = fmax(sc->max_dlogit, mdl), sc->max_logit = fmax(sc->max_logit, ml), sc->max_dnll = fmax(sc->max_dnll, mdn);
}

/* ---- the command */

typedef struct {
    const char *artifact, *model, *data, *tokenizer, *field;
    int window, windows, check_windows, json;
} vspec;

static int read_tokens(const vspec *v, int32_t **ids, size_t *n) {
    tok_tokenizer *tok = NULL;
    if (!has_suffix(v->data, ".bin") && !has_suffix(v->data, ".ids")) {
        if (!(tok = tok_load(v->tokenizer))) return mq_fail_ctx("%s is text: loading the tokenizer", v->data);
    }
    ds_options opt = {.field = v->field ? v->field : "text"};
    int rc = ds_tokens(v->data, &opt, tok, ids, n);
    tok_free(tok);
    return rc;
}

static int same_shape(const mq_config *a, const mq_config *b) {
    return a->arch == b->arch && a->d_model == b->d_model && a->n_layer == b->n_layer && a->vocab_size == b->vocab_size &&
           a->d_inner == b->d_inner && a->d_state == b->d_state && a->d_conv == b->d_conv;
}

int cmd_verify(int argc, char **argv) {
    cli_opt opts[] = {
        {.name = "--artifact", .metavar = "DIR", .help = "the int8 artifact (mambaq quantize)"},
        {.name = "--data", .metavar = "FILE", .help = "text (.txt, .jsonl, .gz) or int32 token ids (.bin, .ids)"},
        {.name = "--model", .metavar = "DIR", .help = "the float model (default: the artifact's source model)"},
        {.name = "--tokenizer", .metavar = "FILE", .help = "tokenizer.json for text data (default: the artifact's)"},
        {.name = "--field", .metavar = "NAME", .help = "JSON-lines field holding the text", .def = "text"},
        {.name = "--window", .metavar = "N", .help = "tokens per window", .def = "1024"},
        {.name = "--windows", .metavar = "N", .help = "windows scored (0 = all)", .def = "8"},
        {.name = "--check-windows", .metavar = "N",
         .help = "windows with the per-layer cosine and the check against the CPU simulation (CPU time)", .def = "1"},
        {.name = "--json", .help = "print one JSON object instead of the report"},
        {0},
    };
    cli_parse(argc, argv, opts, "mambaq verify --artifact DIR --data FILE [options]",
              "Runs the float source model and the int8 artifact on the same windows: perplexity of both,\n"
              "top-1 agreement, mean KL(float || int8), per-layer cosine of block outputs, and the deviation\n"
              "of the int8 GPU pass from the CPU simulation of the artifact (teacher-forced).\n"
              "Exit 0 verified, 1 failed (invalid artifact, non-finite int8 ppl, deviation beyond rounding),\n"
              "2 usage, 3 no GPU (the CPU simulation stands in for the int8 pass; reported with a note).",
              NULL, 0);
    vspec v = {0};
    v.artifact = cli_get(opts, "--artifact");
    v.data = cli_get(opts, "--data");
    if (!v.artifact || !v.data) {
        fprintf(stderr, "mambaq verify: --artifact and --data are required (mambaq verify --help)\n");
        return 2;
    }
    v.field = cli_get(opts, "--field");
    v.window = (int)cli_int(opts, "--window", 2, 1 << 20);
    v.windows = (int)cli_int(opts, "--windows", 0, 1 << 24);
    v.check_windows = (int)cli_int(opts, "--check-windows", 0, 1 << 24);
    v.json = cli_flag(opts, "--json");

    double t0 = now();
    static art_artifact a;
    if (art_open(v.artifact, &a)) {
        fprintf(stderr, "mambaq verify: the artifact %s failed validation: %s\n", v.artifact, mq_errmsg());
        return 1;
    }
    const q_model *qm = &a.qm;
    const mq_config *c = &qm->cfg;
    v.model = cli_get(opts, "--model") ? cli_get(opts, "--model") : a.prov.source_model;
    if (!v.model || !*v.model) {
        fprintf(stderr, "mambaq verify: the artifact names no source model; give --model DIR\n");
        art_close(&a);
        return 1;
    }
    static char tokpath[4200];
    snprintf(tokpath, sizeof tokpath, "%s/tokenizer.json", v.artifact);
    v.tokenizer = cli_get(opts, "--tokenizer") ? cli_get(opts, "--tokenizer") : tokpath;

    mq_model m, sm;
    if (ssm_load(v.model, &m)) {
        fprintf(stderr, "mambaq verify: loading the float model %s: %s\n", v.model, mq_errmsg());
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
    if (read_tokens(&v, &ids, &nids)) {
        fprintf(stderr, "mambaq verify: %s\n", mq_errmsg());
        ssm_free(&m), art_close(&a);
        return 1;
    }
    const int T = v.window, V = c->vocab_size, D = c->d_model, L = c->n_layer;
    long full = (long)(nids / (size_t)T);
    int nw = v.windows > 0 && v.windows < full ? v.windows : (int)full;
    if (nw < 1) {
        fprintf(stderr, "mambaq verify: %s has %zu tokens, fewer than one window of %d\n", v.data, nids, T);
        free(ids), ssm_free(&m), art_close(&a);
        return 1;
    }
    int ncheck = v.check_windows < nw ? v.check_windows : nw;

    /* the int8 pass: the GPU, or the simulation standing in for it */
    const char *why = "";
    const int gpu = gpu_available(&why);
    q_sim_build(qm, &sm);
    q_sim_ctx scx;
    mq_hooks simh = q_sim_hooks(&scx, qm);
    i8g_model *g8 = NULL;
    i8g_ws *w8 = NULL;
    ssmg_model *gf = NULL;
    ssmg_ws *wf = NULL;
    if (gpu) {
        if (!(g8 = i8g_upload(qm)) || !(w8 = i8g_ws_new(g8, 1, T))) {
            fprintf(stderr, "mambaq verify: the int8 GPU pass: %s\n", mq_errmsg());
            return 1;
        }
        if (!(gf = ssmg_upload(&m)) || !(wf = ssmg_ws_new(gf, 1, T))) { /* the CPU FP32 forward instead */
            fprintf(stderr, "mambaq verify: note: FP16 GPU forward unavailable (%s); the float model runs on the CPU\n",
                    mq_errmsg());
            ssmg_ws_free(wf), ssmg_model_free(gf);
            gf = NULL, wf = NULL;
        }
    } else {
        fprintf(stderr, "mambaq verify: no usable GPU (%s): the int8 GPU pass is NOT verified; the CPU simulation of "
                        "the artifact stands in for it below (exit status 3)\n", why);
    }
    const double load_s = now() - t0;

    /* per window: float and int8 logits in row blocks, scored together */
    enum { BLK = 256 };
    float *lf = mq_malloc((size_t)BLK * V * 4), *l8 = mq_malloc((size_t)BLK * V * 4);
    float *ls = ncheck && gpu ? mq_malloc((size_t)BLK * V * 4) : NULL;
    float *hid8 = gpu ? NULL : mq_malloc((size_t)T * D * 4), *hidf = gf ? NULL : mq_malloc((size_t)T * D * 4);
    float *hids = ncheck && gpu ? mq_malloc((size_t)T * D * 4) : NULL;
    float *store = ncheck ? mq_malloc((size_t)L * T * D * 4) : NULL;
    double *cos = mq_calloc((size_t)L, sizeof(double)), *cos_min = mq_malloc((size_t)L * sizeof(double));
    for (int l = 0; l < L; l++) cos_min[l] = 2;
    score all = {0}, chk = {0};
    double nll_8_check = 0, nll_sim_check = 0;
    i8chk *ck = NULL;
    char rep[4096] = "";
    int check_bad = 0;
    char check_msg[512] = "";
    double t1 = now();
    for (int w = 0; w < nw; w++) {
        const int32_t *tok = ids + (size_t)w * T;
        const int checking = w < ncheck;
        /* int8 */
        if (gpu) {
            pass_ctx pc = {{NULL, NULL}, checking ? store : NULL, (size_t)T * D};
            if (checking) {
                i8chk_free(ck);
                ck = i8chk_new(qm, T, 0);
                pc.chk = i8chk_pass_hooks(ck);
            }
            i8g_hooks ph = {pass_hook, &pc};
            if (i8g_prefill(g8, w8, tok, 1, T, NULL, checking ? &ph : NULL, NULL)) mq_die("verify: %s", mq_errmsg());
        } else {
            rtrack rt;
            rtrack_init(&rt, &sm, &simh, tok, T, checking ? store : NULL, NULL, NULL);
            mq_hooks h = {rtrack_hook, &rt};
            if (ssm_forward(&sm, tok, T, &h, hid8)) mq_die("verify: %s", mq_errmsg());
            rtrack_free(&rt);
        }
        /* a rotated residual stream (quamba-rot) is r H: rotate it back (H is its own inverse) */
        if (checking && qm->resid_n && had_transform_f32(store, L * T, D)) mq_die("verify: %s", mq_errmsg());
        /* float */
        if (checking) memset(cos, 0, (size_t)L * sizeof(double));
        if (gf) {
            rtrack rt;
            rtrack_init(&rt, &m, NULL, tok, T, NULL, store, cos);
            ssmg_hooks h = {rtrack_gpu_hook, &rt};
            if (ssmg_prefill(gf, wf, tok, 1, T, NULL, checking ? &h : NULL, NULL)) mq_die("verify: %s", mq_errmsg());
            rtrack_free(&rt);
        } else {
            rtrack rt;
            rtrack_init(&rt, &m, NULL, tok, T, NULL, store, cos);
            mq_hooks h = {rtrack_hook, &rt};
            if (ssm_forward(&m, tok, T, checking ? &h : NULL, hidf)) mq_die("verify: %s", mq_errmsg());
            rtrack_free(&rt);
        }
        if (checking)
            for (int l = 0; l < L; l++) cos_min[l] = fmin(cos_min[l], cos[l]);
        /* the simulation, teacher-forced by the int8 pass, and free-running */
        if (checking && gpu) {
            mq_hooks fh = i8chk_sim_hooks(ck);
            if (ssm_forward(&sm, tok, T, &fh, hids)) mq_die("verify: %s", mq_errmsg());
            nll_sim_check += ssm_nll(&sm, tok, T, &simh, NULL);
        }
        score *sc = checking && gpu ? &chk : &all;
        for (int r0 = 0; r0 < T - 1; r0 += BLK) {
            const int n = T - 1 - r0 < BLK ? T - 1 - r0 : BLK;
            if (gpu) {
                if (i8g_logits(g8, w8, r0, n, l8)) mq_die("verify: %s", mq_errmsg());
            } else {
                ssm_logits(&sm, hid8 + (size_t)r0 * D, n, l8);
            }
            if (gf) {
                if (ssmg_logits(gf, wf, r0, n, lf)) mq_die("verify: %s", mq_errmsg());
            } else {
                ssm_logits(&m, hidf + (size_t)r0 * D, n, lf);
            }
            if (checking && gpu) ssm_logits(&sm, hids + (size_t)r0 * D, n, ls);
            score_rows(sc, lf, l8, checking && gpu ? ls : NULL, tok + r0 + 1, n, V);
        }
        if (checking && gpu) {
            char part[4096];
            i8chk_format(ck, part, sizeof part);
            snprintf(rep, sizeof rep, "%s", part);
            const i8chk_role *rs = i8chk_stats(ck);
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
        if (!v.json && isatty(2)) fprintf(stderr, "\r  window %d/%d ", w + 1, nw);
    }
    if (!v.json && isatty(2)) fprintf(stderr, "\n");
    const double run_s = now() - t1;
    /* totals: the check windows were scored into chk */
    score tot = all;
    tot.nll_f += chk.nll_f, tot.nll_8 += chk.nll_8, tot.kl += chk.kl, tot.rows += chk.rows, tot.agree += chk.agree;
    nll_8_check = chk.nll_8;
    const double ppl_f = exp(tot.nll_f / tot.rows), ppl_8 = exp(tot.nll_8 / tot.rows);
    const double top1 = (double)tot.agree / tot.rows, kl = tot.kl / tot.rows;
    int min_l = 0;
    for (int l = 0; l < L; l++)
        if (cos_min[l] < cos_min[min_l]) min_l = l;
    if (gpu && ncheck && chk.max_logit > 0 && chk.max_dlogit > MAX_LOGIT_REL * chk.max_logit && !check_bad) {
        check_bad = 1;
        snprintf(check_msg, sizeof check_msg, "forced logits differ by %.3g (max |logit| %.3g)", chk.max_dlogit,
                 chk.max_logit);
    }
    const int finite = isfinite(ppl_8);
    const char *float_kind = gf ? "FP16 on the GPU" : "FP32 on the CPU";
    const char *int8_kind = gpu ? "int8 GPU pass" : "CPU simulation (NO GPU)";

    if (v.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "artifact", v.artifact);
        cJSON_AddStringToObject(o, "model", v.model);
        cJSON_AddStringToObject(o, "method", q_method_name(qm->opt.method));
        cJSON_AddStringToObject(o, "arch", c->arch == MQ_MAMBA1 ? "mamba1" : "mamba2");
        cJSON_AddStringToObject(o, "data", v.data);
        cJSON_AddStringToObject(o, "device", gpu ? gpu_describe() : "none");
        cJSON_AddStringToObject(o, "float", float_kind);
        cJSON_AddStringToObject(o, "int8", int8_kind);
        cJSON_AddBoolToObject(o, "gpu_verified", gpu);
        cJSON_AddNumberToObject(o, "window", T);
        cJSON_AddNumberToObject(o, "windows", nw);
        cJSON_AddNumberToObject(o, "tokens_scored", (double)tot.rows);
        cJSON_AddNumberToObject(o, "ppl_float", ppl_f);
        cJSON_AddNumberToObject(o, "ppl_int8", ppl_8);
        cJSON_AddNumberToObject(o, "top1_agreement", top1);
        cJSON_AddNumberToObject(o, "kl_mean", kl);
        cJSON *cl = cJSON_AddArrayToObject(o, "layer_cosine");
        for (int l = 0; l < L && ncheck; l++) cJSON_AddItemToArray(cl, cJSON_CreateNumber(cos_min[l]));
        if (gpu && ncheck) {
            cJSON *s = cJSON_AddObjectToObject(o, "simulation_check");
            cJSON_AddNumberToObject(s, "windows", ncheck);
            cJSON_AddNumberToObject(s, "max_logit_diff", chk.max_dlogit);
            cJSON_AddNumberToObject(s, "max_logit", chk.max_logit);
            cJSON_AddNumberToObject(s, "max_nll_diff", chk.max_dnll);
            cJSON_AddNumberToObject(s, "ppl_int8", exp(nll_8_check / chk.rows));
            cJSON_AddNumberToObject(s, "ppl_simulation_forced", exp(chk.nll_s_forced / chk.rows));
            cJSON_AddNumberToObject(s, "ppl_simulation", exp(nll_sim_check / chk.rows));
            cJSON *roles = cJSON_AddObjectToObject(s, "roles");
            const i8chk_role *rs = i8chk_stats(ck);
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
        cJSON_AddNumberToObject(o, "seconds", run_s);
        cJSON_AddNumberToObject(o, "load_seconds", load_s);
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("artifact       %s (%s, %s, %d layers)\n", v.artifact, q_method_name(qm->opt.method),
               c->arch == MQ_MAMBA1 ? "Mamba1" : "Mamba2", L);
        printf("float model    %s, %s\n", v.model, float_kind);
        printf("int8           %s%s%s\n", int8_kind, gpu ? ", " : "", gpu ? gpu_describe() : "");
        printf("data           %s: %d windows x %d tokens, %ld tokens scored\n", v.data, nw, T, tot.rows);
        printf("perplexity     float %.4f   int8 %.4f   (%+.2f%%)\n", ppl_f, ppl_8, 100 * (ppl_8 / ppl_f - 1));
        printf("top-1 agree    %.2f%% of next-token predictions\n", 100 * top1);
        printf("KL(float||int8) %.5f nats per token (mean)\n", kl);
        if (ncheck) {
            printf("block cosine   first %d window(s), residual stream after each block, int8 vs float: min %.5f (layer %d)\n",
                   ncheck, cos_min[min_l], min_l);
            printf("              ");
            for (int l = 0; l < L; l++) printf(" %d:%.4f", l, cos_min[l]);
            printf("\n");
        }
        if (gpu && ncheck) {
            printf("vs simulation  first %d window(s), teacher-forced (every op of the CPU simulation from the int8 pass's "
                   "inputs):\n%s", ncheck, rep);
            printf("               max |logit diff| %.3g (max |logit| %.3g), max per-token |NLL diff| %.3g%s\n",
                   chk.max_dlogit, chk.max_logit, chk.max_dnll, check_bad ? "" : ": rounding level");
            printf("               ppl on these windows: int8 %.4f, forced simulation %.4f, free-running simulation %.4f\n",
                   exp(nll_8_check / chk.rows), exp(chk.nll_s_forced / chk.rows), exp(nll_sim_check / chk.rows));
        }
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
    } else if (!gpu) {
        fprintf(stderr, "mambaq verify: not verified on a GPU (%s); the int8 numbers above are the CPU simulation's\n", why);
        rc = 3;
    }
    i8chk_free(ck);
    free(lf), free(l8), free(ls), free(hid8), free(hidf), free(hids), free(store), free(cos), free(cos_min), free(ids);
    i8g_ws_free(w8), i8g_model_free(g8);
    ssmg_ws_free(wf), ssmg_model_free(gf);
    q_sim_free(&sm), ssm_free(&m), art_close(&a);
    return rc;
}
