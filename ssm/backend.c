/* ssm/backend.h: the dispatch shared by every kind, and the two CPU kinds, which run the reference
 * forward of ssm/model.h: BE_CPU_F32 on the caller's model, BE_CPU_SIM on the simulation's FP32 model
 * of a q_model with its quantizing hooks ahead of the caller's. Sequences of a batch run one forward
 * each, in parallel over the cores when no caller hook has to see them in order. */
#include "ssm/backend.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "core/err.h"
#include "core/gpu.h"
#include "core/mat.h"
#include "ssm/be_impl.h"
#include "ssm/ops.h"

/* ---------------------------------------------------------------- names, devices */

static const char *kind_names[BE_NKINDS] = {"cpu-f32", "cpu-sim", "cuda-f16", "cuda-int8"};
static const char *kind_texts[BE_NKINDS] = {"FP32 on the CPU", "simulated W8A8 on the CPU", "FP16 on the GPU",
                                            "int8 on the GPU"};

const char *be_kind_name(be_kind k) { return (unsigned)k < BE_NKINDS ? kind_names[k] : "?"; }
const char *be_kind_text(be_kind k) { return (unsigned)k < BE_NKINDS ? kind_texts[k] : "?"; }
int be_kind_is_cuda(be_kind k) { return k == BE_CUDA_F16 || k == BE_CUDA_INT8; }

int be_device_parse(const char *device, int *cuda) {
    const char *why = "";
    const int gpu = gpu_available(&why);
    if (!strcmp(device, "cpu")) *cuda = 0;
    else if (!strcmp(device, "auto")) *cuda = gpu;
    else if (!strcmp(device, "cuda")) {
        if (!gpu) return mq_fail("--device cuda: no usable GPU (%s)", why);
        *cuda = 1;
    } else {
        return mq_fail("--device: expected cpu, cuda or auto, got '%s'", device);
    }
    return 0;
}

/* ---------------------------------------------------------------- the CPU kinds */

typedef struct {
    const mq_model *m;     /* the model the forward runs: the caller's, or &sim */
    mq_model sim;          /* BE_CPU_SIM: dequantized weights of qm */
    q_sim_ctx sc;
    mq_hooks simh;         /* BE_CPU_SIM: quantize every activation as the int8 pass does */
    float *hidden;         /* [batch*seqlen x d_model]: norm_f output of the last call */
    float *logits;         /* [batch x vocab]: be_step_async's lm_head output */
    int last_rows;
} cpu_impl;

typedef struct {
    be_state base;
    mq_state **seq;        /* one per sequence */
} cpu_state;

/* The simulation's hooks first (they rewrite the activation), then the caller's (they see it
 * quantized, as they would on the int8 pass). */
typedef struct {
    const mq_hooks *first, *then;
} hook_chain;
static int chain_fn(void *ctx, const mq_act *a) {
    const hook_chain *c = ctx;
    if (c->first && c->first->fn && c->first->fn(c->first->ctx, a)) return -1;
    return c->then && c->then->fn ? c->then->fn(c->then->ctx, a) : 0;
}
/* The hooks a CPU call runs: none, the caller's, the simulation's, or both chained in *store. */
static const mq_hooks *cpu_hooks(const be *b, const mq_hooks *hk, hook_chain *chain, mq_hooks *store) {
    const cpu_impl *c = b->impl;
    const int user = hk && hk->fn, sim = b->kind == BE_CPU_SIM;
    if (!sim) return user ? hk : NULL;
    if (!user) return &c->simh;
    chain->first = &c->simh, chain->then = hk;
    store->fn = chain_fn, store->ctx = chain;
    return store;
}

static int check_call(const be *b, int B, int T, const be_state *s) {
    if (B < 1 || T < 1 || B > b->batch || T > b->seqlen)
        return mq_fail("%s forward: batch %d x %d tokens does not fit the workspace (%d x %d)", be_kind_name(b->kind), B,
                       T, b->batch, b->seqlen);
    if (s && (s->owner != b || s->batch != B))
        return mq_fail("%s forward: the state is for batch %d of %s backend, the call has batch %d",
                       be_kind_name(b->kind), s->batch, s->owner == b ? "this" : "another", B);
    return 0;
}

/* Sequences run in parallel (whole forwards per thread, the ops inside single-threaded) only when
 * no caller hook must see them one at a time. */
static int outer_parallel(int B, const mq_hooks *hk) {
    if (B < 2 || (hk && hk->fn) || mat_threads() < 2) return 0;
#ifdef _OPENMP
    omp_set_max_active_levels(1);
#endif
    return 1;
}

static int cpu_prefill(be *b, const int32_t *tokens, int B, int T, be_state *s, const mq_hooks *hk, float *hidden) {
    cpu_impl *c = b->impl;
    if (check_call(b, B, T, s)) return -1;
    hook_chain chain;
    mq_hooks store;
    const mq_hooks *h = cpu_hooks(b, hk, &chain, &store);
    const int D = b->cfg.d_model, outer = outer_parallel(B, hk);
    int failed = 0;
    char err[1024] = "";
#pragma omp parallel for schedule(dynamic, 1) if (outer)
    for (int i = 0; i < B; i++) {
        if (failed) continue;
        float *hid = c->hidden + (size_t)i * T * D;
        int rc = s ? ssm_prefill(c->m, ((cpu_state *)s)->seq[i], tokens + (size_t)i * T, T, h, hid)
                   : ssm_forward(c->m, tokens + (size_t)i * T, T, h, hid);
        if (rc) {
#pragma omp critical(be_cpu_err)
            if (!failed) {
                failed = 1;
                if (B > 1) snprintf(err, sizeof err, "sequence %d: %s", i, mq_errmsg());
                else snprintf(err, sizeof err, "%s", mq_errmsg());
            }
        }
    }
    if (failed) return mq_fail("%s", err);
    c->last_rows = B * T;
    if (hidden) memcpy(hidden, c->hidden, (size_t)B * T * D * sizeof(float));
    return 0;
}

static int cpu_logits(be *b, int row0, int nrows, float *logits) {
    cpu_impl *c = b->impl;
    if (row0 < 0 || nrows < 0 || row0 + nrows > c->last_rows)
        return mq_fail("logits: rows %d..%d beyond the %d rows of the last forward", row0, row0 + nrows, c->last_rows);
    ssm_logits(c->m, c->hidden + (size_t)row0 * b->cfg.d_model, nrows, logits);
    return 0;
}

static int cpu_step(be *b, be_state *s, const int32_t *tokens, const mq_hooks *hk, float *hidden, float *logits) {
    cpu_impl *c = b->impl;
    if (!s) return mq_fail("%s step: no state", be_kind_name(b->kind));
    if (check_call(b, s->batch, 1, s)) return -1;
    hook_chain chain;
    mq_hooks store;
    const mq_hooks *h = cpu_hooks(b, hk, &chain, &store);
    const int D = b->cfg.d_model;
    for (int i = 0; i < s->batch; i++)
        if (ssm_step(c->m, ((cpu_state *)s)->seq[i], tokens[i], h, c->hidden + (size_t)i * D)) return -1;
    c->last_rows = s->batch;
    if (hidden) memcpy(hidden, c->hidden, (size_t)s->batch * D * sizeof(float));
    if (logits) ssm_logits(c->m, c->hidden, s->batch, logits);
    return 0;
}

static int cpu_step_async(be *b, be_state *s, const int32_t *tokens, int with_logits) {
    cpu_impl *c = b->impl;
    return cpu_step(b, s, tokens, NULL, NULL, with_logits ? c->logits : NULL);
}

static void cpu_sync(be *b) { (void)b; }

static int cpu_nll(be *b, const int32_t *tokens, int B, int T, const mq_hooks *hk, float *nll, double *sum) {
    cpu_impl *c = b->impl;
    if (T < 2) return mq_fail("NLL: windows of %d tokens score nothing", T);
    if (check_call(b, B, T, NULL)) return -1;
    hook_chain chain;
    mq_hooks store;
    const mq_hooks *h = cpu_hooks(b, hk, &chain, &store);
    double *sums = mq_calloc((size_t)B, sizeof(double));
    const int outer = outer_parallel(B, hk);
    int failed = 0;
    char err[1024] = "";
#pragma omp parallel for schedule(dynamic, 1) if (outer)
    for (int i = 0; i < B; i++) {
        if (failed) continue;
        sums[i] = ssm_nll(c->m, tokens + (size_t)i * T, T, h, nll ? nll + (size_t)i * (T - 1) : NULL);
        if (isnan(sums[i])) {
#pragma omp critical(be_cpu_err)
            if (!failed) {
                failed = 1;
                if (B > 1) snprintf(err, sizeof err, "sequence %d: %s", i, mq_errmsg());
                else snprintf(err, sizeof err, "%s", mq_errmsg());
            }
        }
    }
    double total = 0;
    for (int i = 0; i < B; i++) total += sums[i]; /* in order: the same sum every run */
    free(sums);
    if (failed) return mq_fail("%s", err);
    *sum = total;
    return 0;
}

static void cpu_profile(be *b, int on) { (void)b, (void)on; }
static int cpu_profile_report(be *b, char *buf, size_t n) {
    (void)b;
    if (n) buf[0] = 0;
    return 0;
}

static be_state *cpu_state_new(be *b, int batch) {
    cpu_impl *c = b->impl;
    if (batch < 1 || batch > b->batch) {
        mq_fail("state: batch %d outside 1..%d", batch, b->batch);
        return NULL;
    }
    cpu_state *s = mq_calloc(1, sizeof *s);
    s->base.owner = b, s->base.batch = batch;
    s->seq = mq_calloc((size_t)batch, sizeof *s->seq);
    for (int i = 0; i < batch; i++) s->seq[i] = ssm_state_new(c->m);
    return &s->base;
}
static void cpu_state_reset(be_state *s) {
    for (int i = 0; i < s->batch; i++) ssm_state_reset(((cpu_state *)s)->seq[i]);
}
static void cpu_state_free(be_state *s) {
    for (int i = 0; i < s->batch; i++) ssm_state_free(((cpu_state *)s)->seq[i]);
    free(((cpu_state *)s)->seq);
    free(s);
}

static void cpu_destroy(be *b) {
    cpu_impl *c = b->impl;
    if (b->kind == BE_CPU_SIM) q_sim_free(&c->sim);
    free(c->hidden);
    free(c->logits);
    free(c);
}

static const be_ops cpu_ops = {cpu_destroy, cpu_state_new, cpu_state_reset, cpu_state_free, cpu_prefill, cpu_logits,
                               cpu_step, cpu_step_async, cpu_sync, cpu_nll, cpu_profile, cpu_profile_report};

static size_t model_bytes(const mq_model *m) { return m->arena_bytes; }

static be *cpu_open(const mq_model *m, be_kind kind, int batch, int seqlen, cpu_impl *c) {
    be *b = mq_calloc(1, sizeof *b);
    b->ops = &cpu_ops;
    b->kind = kind;
    b->cfg = m->cfg;
    b->batch = batch, b->seqlen = seqlen;
    c->m = m;
    c->hidden = mq_malloc((size_t)batch * seqlen * m->cfg.d_model * sizeof(float));
    c->logits = mq_malloc((size_t)batch * m->cfg.vocab_size * sizeof(float));
    b->impl = c;
    b->weight_bytes = b->decode_bytes = model_bytes(m);
    b->ws_bytes = ((size_t)batch * seqlen * m->cfg.d_model + (size_t)batch * m->cfg.vocab_size) * sizeof(float);
    return b;
}

static int check_caps(int batch, int seqlen) {
    if (batch < 1 || seqlen < 1) return mq_fail("backend: batch %d x seqlen %d", batch, seqlen);
    return 0;
}

/* ---------------------------------------------------------------- opening */

be *be_open_model(const mq_model *m, be_kind kind, int batch, int seqlen) {
    if (check_caps(batch, seqlen)) return NULL;
    if (kind == BE_CPU_F32) return cpu_open(m, kind, batch, seqlen, mq_calloc(1, sizeof(cpu_impl)));
    if (kind == BE_CUDA_F16) return be_cuda_open_f16(m, batch, seqlen);
    mq_fail("a float model runs on %s or %s, not %s", be_kind_name(BE_CPU_F32), be_kind_name(BE_CUDA_F16),
            be_kind_name(kind));
    return NULL;
}

be *be_open_qmodel(const q_model *qm, be_kind kind, int batch, int seqlen) {
    if (check_caps(batch, seqlen)) return NULL;
    /* quamba2: W4A16 runs on the FP16 pass with 4-bit in_proj / out_proj; W8A8 and W4A8 on the int8 pass
     * (its scales per column, and W4A8's int4 in_proj / out_proj through the 4-bit GEMV) */
    if (kind == BE_CUDA_INT8 && qm->opt.method == Q_QUAMBA2 && qm->opt.abits == 16)
        return be_cuda_open_w4a16(qm, batch, seqlen);
    if (kind == BE_CUDA_INT8) return be_cuda_open_int8(qm, batch, seqlen);
    if (kind != BE_CPU_SIM) {
        mq_fail("a quantized model runs on %s or %s, not %s", be_kind_name(BE_CPU_SIM), be_kind_name(BE_CUDA_INT8),
                be_kind_name(kind));
        return NULL;
    }
    cpu_impl *c = mq_calloc(1, sizeof *c);
    if (q_sim_build(qm, &c->sim)) {
        free(c);
        return NULL;
    }
    c->simh = q_sim_hooks(&c->sc, qm);
    return cpu_open(&c->sim, kind, batch, seqlen, c);
}

be *be_open_random(const mq_config *cfg, be_kind kind, int hadamard, uint64_t seed, int batch, int seqlen) {
    if (check_caps(batch, seqlen)) return NULL;
    if (!be_kind_is_cuda(kind)) {
        mq_fail("random models are made on the GPU (%s, %s), not %s", be_kind_name(BE_CUDA_F16),
                be_kind_name(BE_CUDA_INT8), be_kind_name(kind));
        return NULL;
    }
    return be_cuda_open_random(cfg, kind, hadamard, seed, batch, seqlen);
}

be *be_open_random_q2(const mq_config *cfg, int w4_group, uint64_t seed, int batch, int seqlen) {
    if (check_caps(batch, seqlen)) return NULL;
    return be_cuda_open_random_q2(cfg, w4_group, seed, batch, seqlen);
}

be *be_open_random_w4a16(const mq_config *cfg, int group, uint64_t seed, int batch, int seqlen) {
    if (check_caps(batch, seqlen)) return NULL;
    return be_cuda_open_random_w4a16(cfg, group, seed, batch, seqlen);
}

void be_free(be *b) {
    if (b) b->ops->destroy(b);
}

be_kind be_kind_of(const be *b) { return b->kind; }
const mq_config *be_config(const be *b) { return &b->cfg; }
int be_max_batch(const be *b) { return b->batch; }
int be_max_seqlen(const be *b) { return b->seqlen; }
size_t be_weight_bytes(const be *b) { return b->weight_bytes; }
size_t be_decode_bytes(const be *b) { return b->decode_bytes; }
size_t be_ws_bytes(const be *b) { return b->ws_bytes; }

/* ---------------------------------------------------------------- dispatch */

be_state *be_state_new(be *b, int batch) { return b->ops->state_new(b, batch); }
void be_state_reset(be_state *s) {
    if (s) s->owner->ops->state_reset(s);
}
void be_state_free(be_state *s) {
    if (s) s->owner->ops->state_free(s);
}

int be_prefill(be *b, const int32_t *tokens, int batch, int T, be_state *s, const mq_hooks *hk, float *hidden) {
    return b->ops->prefill(b, tokens, batch, T, s, hk, hidden);
}
int be_logits(be *b, int row0, int nrows, float *logits) { return b->ops->logits(b, row0, nrows, logits); }
int be_step(be *b, be_state *s, const int32_t *tokens, const mq_hooks *hk, float *hidden, float *logits) {
    return b->ops->step(b, s, tokens, hk, hidden, logits);
}
int be_step_async(be *b, be_state *s, const int32_t *tokens, int with_logits) {
    return b->ops->step_async(b, s, tokens, with_logits);
}
void be_sync(be *b) { b->ops->sync(b); }
int be_nll(be *b, const int32_t *tokens, int batch, int T, const mq_hooks *hk, float *nll, double *sum) {
    return b->ops->nll(b, tokens, batch, T, hk, nll, sum);
}
void be_profile(be *b, int on) { b->ops->profile(b, on); }
int be_profile_report(be *b, char *buf, size_t n) { return b->ops->profile_report(b, buf, n); }

/* be_nll whose sum must be finite (every backend: the CPU's names the token, a GPU pass may not). */
static int finite_nll(be *b, const int32_t *tokens, int batch, int T, float *nll, double *sum) {
    if (be_nll(b, tokens, batch, T, NULL, nll, sum)) return -1;
    return isfinite(*sum) ? 0 : mq_fail("the NLL is not finite (%g): the logits hold NaN/Inf", *sum);
}

int be_eval_windows(be *b, const int32_t *ids, size_t n, int window, int max_windows, double *nll_sum,
                    long *n_scored, double *nll_sq_sum, void (*progress)(void *ctx, int done, int total), void *ctx) {
    if (window < 2 || window > b->seqlen)
        return mq_fail("eval: window %d outside 2..%d (the backend's sequence length)", window, b->seqlen);
    long nw = (long)(n / (size_t)window);
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    if (nw < 1) return mq_fail("eval: %zu tokens make no window of %d", n, window);
    double total = 0, sq = 0;
    float *nll = nll_sq_sum ? mq_malloc((size_t)b->batch * (window - 1) * sizeof *nll) : NULL;
    for (long w0 = 0; w0 < nw; w0 += b->batch) {
        const int nb = nw - w0 < b->batch ? (int)(nw - w0) : b->batch;
        double s;
        if (finite_nll(b, ids + (size_t)w0 * window, nb, window, nll, &s)) {
            free(nll);
            /* name the window: the batch's windows again one by one (an error path only) */
            for (long w = w0; nb > 1 && w < w0 + nb; w++)
                if (finite_nll(b, ids + (size_t)w * window, 1, window, NULL, &s)) return mq_fail_ctx("window %ld", w);
            return nb > 1 ? mq_fail_ctx("windows %ld..%ld", w0, w0 + nb - 1) : mq_fail_ctx("window %ld", w0);
        }
        total += s;
        for (size_t i = 0; nll && i < (size_t)nb * (window - 1); i++) sq += (double)nll[i] * nll[i];
        if (progress) progress(ctx, (int)(w0 + nb), (int)nw);
    }
    free(nll);
    if (nll_sq_sum) *nll_sq_sum = sq;
    *nll_sum = total;
    *n_scored = nw * (window - 1);
    return 0;
}

int be_act_download(const mq_act *a, float *dst) {
    if (a->device) return be_cuda_act_download(a, dst);
    for (int r = 0; r < a->rows; r++)
        for (int c = 0; c < a->cols; c++) {
            const size_t i = (size_t)r * a->ld + c;
            float v;
            switch (a->dtype) {
            case MQ_F32: v = ((const float *)a->x)[i]; break;
            case MQ_I8: v = (float)((const int8_t *)a->x)[i]; break;
            default: return mq_fail("layer %d %s: host %s data", a->layer, ssm_act_role_name(a->role), mq_dtype_name(a->dtype));
            }
            dst[(size_t)r * a->cols + c] = v;
        }
    return 0;
}
