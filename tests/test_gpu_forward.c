/* The whole FP16 GPU forward on the two proxy checkpoints: hidden states, logits and NLL against the
 * CPU reference (ssm/forward.c) on reference.safetensors' 256 tokens; the hook calls against the
 * CPU's; prefill == decode (graph and hooked steps, batched, continuing a prefill) on the GPU; and
 * the perplexity protocol (32 windows x 1024 of valid.txt) within 0.2% of reference.json's fp16
 * value. Skips without a GPU or without ../shared (MQ_SHARED). */
#include "tests/test.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/st.h"
#include "datasets/ds.h"
#include "datasets/tok.h"
#include "ssm/backend.h"
#include "ssm/model.h"
#include <cjson/cJSON.h>
#include <stdint.h>
#include <time.h>

static const char *proxies[2] = {"models/mamba1-proxy", "models/mamba2-proxy"};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ||a - b|| / ||b|| and max |a - b| / rms(b); NaN anywhere gives +inf. */
static double rel_l2(const float *a, const float *b, size_t n, double *max_rms) {
    double d2 = 0, b2 = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        d2 += d * d;
        b2 += (double)b[i] * b[i];
        if (!(fabs(d) <= mx)) mx = isnan(d) ? INFINITY : fabs(d);
    }
    if (max_rms) *max_rms = mx / sqrt(b2 / (n ? n : 1) + 1e-30);
    return isnan(d2) ? INFINITY : sqrt(d2 / (b2 + 1e-30));
}

typedef struct {
    mq_model m;
    int32_t tokens[256];
    int ok;
} proxy;

/* Loads proxy i plus its reference tokens; ok = 0 (and a skip reason) if absent. The tests open
 * the FP16 GPU forward of p->m with the workspace each needs. */
static int proxy_open(int i, proxy *p) {
    memset(p, 0, sizeof *p);
    const char *dir = t_shared(proxies[i]);
    if (!dir) return 0;
    char d[4096], ref[4200];
    snprintf(d, sizeof d, "%s", dir);
    snprintf(ref, sizeof ref, "%s/reference.safetensors", d);
    if (ssm_load(d, &p->m)) { T_CHECK(0, "loading %s: %s", d, mq_errmsg()); return 0; }
    st_file *f = st_open(ref);
    const st_tensor *t = f ? st_find(f, "tokens") : NULL;
    T_CHECK(t && t->dtype == MQ_I32 && t->numel == 256, "%s: tokens int32 [256]", ref);
    if (!t) { if (f) st_close(f); ssm_free(&p->m); return 0; }
    memcpy(p->tokens, t->data, sizeof p->tokens);
    st_close(f);
    return p->ok = 1;
}
static void proxy_close(proxy *p) {
    if (p->ok) ssm_free(&p->m);
}
/* the FP16 GPU forward of p for calls of up to batch x seqlen */
static be *gpu_open(proxy *p, int batch, int seqlen) {
    be *g = be_open_model(&p->m, BE_CUDA_F16, batch, seqlen);
    T_CHECK(g != NULL, "FP16 GPU forward: %s", mq_errmsg());
    return g;
}

/* GPU vs CPU on the 256 reference tokens: norm_f output, logits of the first 8 rows, per-token NLL. */
static void test_gpu_vs_cpu(void) {
    NEED_GPU();
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        proxy p;
        if (!proxy_open(i, &p)) continue;
        ran++;
        const int T = 256, D = p.m.cfg.d_model, V = p.m.cfg.vocab_size;
        float *hc = mq_malloc(sizeof(float) * T * D), *hg = mq_malloc(sizeof(float) * T * D);
        float *lc = mq_malloc(sizeof(float) * 8 * V), *lg = mq_malloc(sizeof(float) * 8 * V);
        float *nc = mq_malloc(sizeof(float) * (T - 1)), *ng = mq_malloc(sizeof(float) * (T - 1));
        T_CHECK(ssm_forward(&p.m, p.tokens, T, NULL, hc) == 0, "%s", mq_errmsg());
        ssm_logits(&p.m, hc, 8, lc);
        double sc = ssm_nll(&p.m, p.tokens, T, NULL, nc), sg = 0;
        be *g = gpu_open(&p, 1, T);
        T_CHECK(g && be_prefill(g, p.tokens, 1, T, NULL, NULL, hg) == 0, "%s", mq_errmsg());
        T_CHECK(g && be_logits(g, 0, 8, lg) == 0, "%s", mq_errmsg());
        T_CHECK(g && be_nll(g, p.tokens, 1, T, NULL, ng, &sg) == 0, "%s", mq_errmsg());
        double mh, ml, mn = 0;
        double eh = rel_l2(hg, hc, (size_t)T * D, &mh), el = rel_l2(lg, lc, (size_t)8 * V, &ml);
        for (int t = 0; t < T - 1; t++) mn = fmax(mn, fabs((double)ng[t] - nc[t]));
        printf("    %s: hidden rel L2 %.2e (max %.2e rms), logits[0:8] rel L2 %.2e, mean NLL gpu %.5f cpu %.5f, "
               "max |dNLL| %.4f\n", proxies[i], eh, mh, el, sg / (T - 1), sc / (T - 1), mn);
        /* FP16 weights and activations over 20-24 layers: ~1e-3 expected; the bounds leave 5x room */
        T_CHECK(eh < 1e-2, "%s hidden rel L2 %.3g", proxies[i], eh);
        T_CHECK(el < 1e-2, "%s logits rel L2 %.3g", proxies[i], el);
        T_CHECK(fabs(sg - sc) / sc < 2e-3, "%s mean NLL gpu %.6f cpu %.6f", proxies[i], sg / (T - 1), sc / (T - 1));
        T_CHECK(mn < 0.05, "%s max per-token NLL difference %.4f", proxies[i], mn);
        be_free(g);
        free(hc), free(hg), free(lc), free(lg), free(nc), free(ng);
        proxy_close(&p);
    }
    if (!ran) T_SKIP("proxies not found under ../shared/models");
}

/* ---- hooks: the GPU calls them at the same points, with the same shapes, as the CPU ---- */
typedef struct { int layer, role, rows, cols; } hook_call;
typedef struct {
    hook_call calls[1024];
    int n;
    float *ssm_x;       /* a copy of layer 1's MQ_ACT_SSM_X */
    int rows, cols;
} hook_log;
static void log_call(hook_log *h, int layer, int role, int rows, int cols) {
    if (h->n < 1024) h->calls[h->n++] = (hook_call){layer, role, rows, cols};
}
static int cpu_hook(void *ctx, const mq_act *a) {
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    float *x = a->x;
    hook_log *h = ctx;
    log_call(h, layer, role, rows, cols);
    if (layer == 1 && role == MQ_ACT_SSM_X && !h->ssm_x) {
        h->ssm_x = mq_malloc(sizeof(float) * rows * cols);
        for (int r = 0; r < rows; r++) memcpy(h->ssm_x + (size_t)r * cols, x + (size_t)r * ld, sizeof(float) * cols);
    }
    return 0;
}
static int gpu_hook(void *ctx, const mq_act *a) {
    hook_log *h = ctx;
    log_call(h, a->layer, a->role, a->rows, a->cols);
    if (a->layer == 1 && a->role == MQ_ACT_SSM_X && !h->ssm_x) {
        h->ssm_x = mq_malloc(sizeof(float) * a->rows * a->cols);
        if (be_act_download(a, h->ssm_x)) return -1;
    }
    return 0;
}

static void test_gpu_hooks(void) {
    NEED_GPU();
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        proxy p;
        if (!proxy_open(i, &p)) continue;
        ran++;
        const int T = 64, D = p.m.cfg.d_model;
        hook_log *hc = calloc(1, sizeof *hc), *hg = calloc(1, sizeof *hg);
        float *hid = mq_malloc(sizeof(float) * T * D);
        mq_hooks ch = {cpu_hook, hc};
        mq_hooks gh = {gpu_hook, hg};
        T_CHECK(ssm_forward(&p.m, p.tokens, T, &ch, hid) == 0, "%s", mq_errmsg());
        be *g = gpu_open(&p, 1, T);
        T_CHECK(g && be_prefill(g, p.tokens, 1, T, NULL, &gh, NULL) == 0, "%s", mq_errmsg());
        T_CHECK(hc->n == hg->n, "%s: %d CPU hook calls, %d GPU", proxies[i], hc->n, hg->n);
        for (int k = 0; k < hc->n && k < hg->n; k++) {
            hook_call a = hc->calls[k], b = hg->calls[k];
            T_CHECK(!memcmp(&a, &b, sizeof a), "%s call %d: CPU (layer %d, %s, %dx%d), GPU (layer %d, %s, %dx%d)",
                    proxies[i], k, a.layer, ssm_act_role_name(a.role), a.rows, a.cols, b.layer,
                    ssm_act_role_name(b.role), b.rows, b.cols);
            if (memcmp(&a, &b, sizeof a)) break;
        }
        if (hc->ssm_x && hg->ssm_x) {
            size_t n = (size_t)T * p.m.cfg.d_inner;
            double mx, e = rel_l2(hg->ssm_x, hc->ssm_x, n, &mx);
            printf("    %s: %d hook calls; layer 1 ssm_x GPU vs CPU rel L2 %.2e (max %.2e rms)\n", proxies[i], hg->n,
                   e, mx);
            T_CHECK(e < 5e-3, "%s layer-1 ssm_x rel L2 %.3g", proxies[i], e);
        } else {
            T_CHECK(0, "%s: no layer-1 ssm_x seen (cpu %p gpu %p)", proxies[i], (void *)hc->ssm_x, (void *)hg->ssm_x);
        }
        be_free(g);
        free(hc->ssm_x), free(hg->ssm_x), free(hc), free(hg), free(hid);
        proxy_close(&p);
    }
    if (!ran) T_SKIP("proxies not found under ../shared/models");
}

/* ---- the prefill scans across their chunk boundaries ----
 * Mamba2's chunked SSD form (ssm/ssd.cuh, chunk_size 256) and Mamba1's scan parallel over time
 * (ssm/pscan.cuh, chunks of 256 tokens), one sequence of 320 tokens (the reference text and its
 * first 64 again): a one-call prefill (two chunks) against the same tokens one step at a time (the
 * sequential recurrence), and against a 300-token prefill into a state continued by 20 steps (the
 * final state of a two-chunk call). FP16 rounding apart, as the test below. */
static void test_gpu_prefill_long(void) {
    NEED_GPU();
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        proxy p;
        if (!proxy_open(i, &p)) continue;
        ran++;
        enum { T = 320, T0 = 300 };
        const int D = p.m.cfg.d_model;
        int32_t tok[T];
        memcpy(tok, p.tokens, sizeof(int32_t) * 256);
        memcpy(tok + 256, p.tokens, sizeof(int32_t) * (T - 256));
        float *hp = mq_malloc(sizeof(float) * T * D), *hd = mq_malloc(sizeof(float) * T * D);
        float *hc = mq_malloc(sizeof(float) * T * D);
        be *g = gpu_open(&p, 1, T);
        be_state *s = g ? be_state_new(g, 1) : NULL;
        T_CHECK(g && s, "%s", mq_errmsg());
        if (g && s) {
            T_CHECK(be_prefill(g, tok, 1, T, NULL, NULL, hp) == 0, "%s", mq_errmsg());
            for (int t = 0; t < T; t++) T_CHECK(be_step(g, s, tok + t, NULL, hd + (size_t)t * D, NULL) == 0, "%s", mq_errmsg());
            be_state_reset(s);
            T_CHECK(be_prefill(g, tok, 1, T0, s, NULL, hc) == 0, "%s", mq_errmsg());
            for (int t = T0; t < T; t++) T_CHECK(be_step(g, s, tok + t, NULL, hc + (size_t)t * D, NULL) == 0, "%s", mq_errmsg());
            double m1, e1 = rel_l2(hd, hp, (size_t)T * D, &m1), m2, e2 = rel_l2(hc, hp, (size_t)T * D, &m2);
            double m3, e3 = rel_l2(hd + (size_t)256 * D, hp + (size_t)256 * D, (size_t)(T - 256) * D, &m3);
            printf("    %s, %d tokens: steps vs prefill rel L2 %.2e (max %.2e rms), second chunk %.2e (%.2e); "
                   "prefill %d + steps %.2e (%.2e)\n", proxies[i], T, e1, m1, e3, m3, T0, e2, m2);
            T_CHECK(e1 < 2e-3 && m1 < 2e-2, "%s: steps vs prefill %.3g / %.3g", proxies[i], e1, m1);
            T_CHECK(e3 < 2e-3 && m3 < 2e-2, "%s: second chunk: steps vs prefill %.3g / %.3g", proxies[i], e3, m3);
            T_CHECK(e2 < 2e-3 && m2 < 2e-2, "%s: prefill + steps vs prefill %.3g / %.3g", proxies[i], e2, m2);
        }
        be_state_free(s);
        be_free(g);
        free(hp), free(hd), free(hc);
        proxy_close(&p);
    }
    if (!ran) T_SKIP("proxies not found under ../shared/models");
}

/* ---- prefill == decode on the GPU ----
 * Two sequences of T tokens (different parts of the reference text): a batched prefill; the same
 * one token at a time (CUDA graph steps); a prefill of the first half continued by steps; steps
 * through the hooked (non-graph) path; and each sequence prefilled alone. All must agree up to FP16
 * rounding differences (the chunked scan vs the step recurrence round differently). */
static void test_gpu_prefill_equals_decode(void) {
    NEED_GPU();
    int ran = 0;
    for (int i = 0; i < 2; i++) {
        proxy p;
        if (!proxy_open(i, &p)) continue;
        ran++;
        enum { B = 2, T = 96, T0 = 37 };
        const int D = p.m.cfg.d_model;
        int32_t tok[B * T];
        memcpy(tok, p.tokens, sizeof(int32_t) * T);
        memcpy(tok + T, p.tokens + 150, sizeof(int32_t) * T);
        float *hp = mq_malloc(sizeof(float) * B * T * D), *hd = mq_malloc(sizeof(float) * B * T * D);
        float *hc = mq_malloc(sizeof(float) * B * T * D), *h1 = mq_malloc(sizeof(float) * T * D);
        float *row = mq_malloc(sizeof(float) * B * D);
        be *g = gpu_open(&p, B, T);
        be_state *s = g ? be_state_new(g, B) : NULL;
        T_CHECK(g && s, "%s", mq_errmsg());
        if (!g || !s) { be_free(g); proxy_close(&p); continue; }
        T_CHECK(be_prefill(g, tok, B, T, NULL, NULL, hp) == 0, "%s", mq_errmsg());
        /* token-by-token with the graph, from an empty state; hd in prefill's row order */
        for (int t = 0; t < T; t++) {
            int32_t st[B] = {tok[t], tok[T + t]};
            T_CHECK(be_step(g, s, st, NULL, row, NULL) == 0, "%s", mq_errmsg());
            for (int b = 0; b < B; b++) memcpy(hd + ((size_t)b * T + t) * D, row + (size_t)b * D, sizeof(float) * D);
        }
        double m1, e1 = rel_l2(hd, hp, (size_t)B * T * D, &m1);
        /* prefill of T0 tokens into the state, then steps; last half of the steps through hooks */
        be_state_reset(s);
        int32_t first[B * T0];
        for (int b = 0; b < B; b++) memcpy(first + b * T0, tok + b * T, sizeof(int32_t) * T0);
        float *hf = mq_malloc(sizeof(float) * B * T0 * D);
        T_CHECK(be_prefill(g, first, B, T0, s, NULL, hf) == 0, "%s", mq_errmsg());
        for (int b = 0; b < B; b++)
            memcpy(hc + (size_t)b * T * D, hf + (size_t)b * T0 * D, sizeof(float) * T0 * D);
        hook_log *hl = calloc(1, sizeof *hl);
        mq_hooks gh = {gpu_hook, hl};
        for (int t = T0; t < T; t++) {
            int32_t st[B] = {tok[t], tok[T + t]};
            T_CHECK(be_step(g, s, st, t >= (T0 + T) / 2 ? &gh : NULL, row, NULL) == 0, "%s", mq_errmsg());
            for (int b = 0; b < B; b++) memcpy(hc + ((size_t)b * T + t) * D, row + (size_t)b * D, sizeof(float) * D);
        }
        double m2, e2 = rel_l2(hc, hp, (size_t)B * T * D, &m2);
        /* the second sequence alone (batch 1 chooses other scan chunks) */
        T_CHECK(be_prefill(g, tok + T, 1, T, NULL, NULL, h1) == 0, "%s", mq_errmsg());
        double m3, e3 = rel_l2(h1, hp + (size_t)T * D, (size_t)T * D, &m3);
        printf("    %s: decode vs prefill rel L2 %.2e (max %.2e rms); prefill %d + steps (graph, hooks) %.2e (%.2e); "
               "batch 1 vs 2 %.2e (%.2e)\n", proxies[i], e1, m1, T0, e2, m2, e3, m3);
        T_CHECK(e1 < 2e-3 && m1 < 2e-2, "%s decode vs prefill %.3g / %.3g", proxies[i], e1, m1);
        T_CHECK(e2 < 2e-3 && m2 < 2e-2, "%s prefill+decode vs prefill %.3g / %.3g", proxies[i], e2, m2);
        T_CHECK(e3 < 2e-3 && m3 < 2e-2, "%s batch 1 vs batch 2 %.3g / %.3g", proxies[i], e3, m3);
        free(hl->ssm_x), free(hl), free(hf);
        be_state_free(s);
        be_free(g);
        free(hp), free(hd), free(hc), free(h1), free(row);
        proxy_close(&p);
    }
    if (!ran) T_SKIP("proxies not found under ../shared/models");
}

/* reference.json's valid fp16 perplexity */
static double ref_ppl(const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    char *text = mq_read_file(path, NULL);
    if (!text) return NAN;
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "valid"), "fp16"), "ppl");
    double r = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    cJSON_Delete(j);
    return r;
}

/* valid.txt's token ids: tokenized with tokenizer.json, or (where the text and tokenizer are not at
 * hand, e.g. a trimmed copy of ../shared on a GPU machine) read from datasets/valid.ids (int32 ids
 * written by `mambaq tokenize`). 0, or -1 with *why set. */
static int valid_ids(int32_t **ids, size_t *n, const char **why) {
    char tpath[4096], vpath[4096];
    const char *tp = t_shared("models/tokenizer.json"), *vp;
    if (tp) snprintf(tpath, sizeof tpath, "%s", tp);
    vp = t_shared("datasets/valid.txt");
    if (tp && vp) {
        snprintf(vpath, sizeof vpath, "%s", vp);
        tok_tokenizer *tk = tok_load(tpath);
        if (!tk) { *why = mq_errmsg(); return -1; }
        int rc = ds_tokens(vpath, NULL, tk, ids, n);
        tok_free(tk);
        if (rc) *why = mq_errmsg();
        return rc;
    }
    vp = t_shared("datasets/valid.ids");
    if (!vp) { *why = "neither tokenizer.json + valid.txt nor valid.ids under ../shared"; return -1; }
    snprintf(vpath, sizeof vpath, "%s", vp);
    if (ds_tokens(vpath, NULL, NULL, ids, n)) { *why = mq_errmsg(); return -1; }
    return 0;
}

static void test_gpu_ppl_valid(void) {
    NEED_GPU();
    int32_t *ids = NULL;
    size_t n = 0;
    const char *why = "";
    if (valid_ids(&ids, &n, &why)) T_SKIP("valid.txt tokens: %s", why);
    int ran = 0;
    for (int i = 0; i < 2 && ids; i++) {
        const char *dir = t_shared(proxies[i]);
        if (!dir) continue;
        char d[4096];
        snprintf(d, sizeof d, "%s", dir);
        mq_model m;
        if (ssm_load(d, &m)) { T_CHECK(0, "%s", mq_errmsg()); continue; }
        be *g = be_open_model(&m, BE_CUDA_F16, 8, 1024);
        ssm_free(&m);
        T_CHECK(g != NULL, "%s", mq_errmsg());
        if (!g) continue;
        ran++;
        double sum = 0, t0 = now_s();
        long cnt = 0;
        T_CHECK(be_eval_windows(g, ids, n, 1024, 32, &sum, &cnt, NULL, NULL, NULL) == 0, "%s", mq_errmsg());
        double secs = now_s() - t0, ppl = exp(sum / cnt), ref = ref_ppl(d);
        printf("    %s: valid ppl %.4f over %ld tokens (reference fp16 %.4f, %+.4f%%), %.2f s, %.0f tok/s\n",
               proxies[i], ppl, cnt, ref, 100 * (ppl / ref - 1), secs, cnt / secs);
        T_CHECK(cnt == 32736, "%s scored %ld tokens, protocol says 32736", proxies[i], cnt);
        T_CHECK(fabs(ppl / ref - 1) < 2e-3, "%s ppl %.4f vs reference %.4f", proxies[i], ppl, ref);
        be_free(g);
    }
    free(ids);
    if (!ran) T_SKIP("proxies not found under ../shared/models");
}

int main(void) {
    printf("# GPU: %s\n", gpu_describe());
    T_RUN(test_gpu_vs_cpu);
    T_RUN(test_gpu_hooks);
    T_RUN(test_gpu_prefill_equals_decode);
    T_RUN(test_gpu_prefill_long);
    T_RUN(test_gpu_ppl_valid);
    return t_summary();
}
