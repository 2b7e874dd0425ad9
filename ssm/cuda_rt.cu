/* The CUDA kinds of ssm/backend.h, written once for both passes (ssm/cuda_rt.h): device memory, the
 * workspace and decode state, prefill / logits / step / NLL around the pass's forward, the decode
 * graph, per-op profiling, hooks. Each object owns exactly its own allocations. */
#include <stdlib.h>
#include <string.h>
#include "ssm/cuda_rt.h"

/* ---------------------------------------------------------------- device memory */

void *rt_carve(rt_carver *c, size_t bytes) {
    const size_t o = (c->off + 255) & ~(size_t)255;
    c->off = o + bytes;
    return c->base ? c->base + o : NULL;
}

void rt_put(void *dst, const void *src, size_t bytes) { CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice)); }
void rt_put_f32(float *dst, const float *src, size_t n) { rt_put(dst, src, n * sizeof(float)); }
void rt_put_const(float *dst, size_t n, float v) {
    float *h = (float *)mq_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = v;
    rt_put_f32(dst, h, n);
    free(h);
}
void rt_carve_ssm(rt_carver *cv, const mq_config *c, rt_ssm *p) {
    const int E = c->d_inner, H = c->n_heads;
    memset(p, 0, sizeof *p);
    if (c->arch == MQ_MAMBA1) {
        p->A = RT_CARVE(cv, float, (size_t)E * c->d_state);
        p->D = RT_CARVE(cv, float, E);
    } else {
        p->A = RT_CARVE(cv, float, H);
        p->D = RT_CARVE(cv, float, H);
        p->dt_bias = RT_CARVE(cv, float, H);
        p->gnorm_w = RT_CARVE(cv, float, E);
    }
}
void rt_put_ssm(const rt_ssm *p, const mq_config *c, const float *A, const float *D, const float *dt_bias,
                const float *gnorm_w) {
    const int E = c->d_inner, H = c->n_heads;
    if (c->arch == MQ_MAMBA1) {
        rt_put_f32(p->A, A, (size_t)E * c->d_state);
        rt_put_f32(p->D, D, E);
    } else {
        rt_put_f32(p->A, A, H);
        rt_put_f32(p->D, D, H);
        rt_put_f32(p->dt_bias, dt_bias, H);
        rt_put_f32(p->gnorm_w, gnorm_w, E);
    }
}
void rt_put_ssm_random(const rt_ssm *p, const mq_config *c) {
    const int E = c->d_inner, N = c->d_state, H = c->n_heads;
    if (c->arch == MQ_MAMBA1) {
        float *A = (float *)mq_malloc(sizeof(float) * (size_t)E * N);
        for (int e = 0; e < E; e++)
            for (int n = 0; n < N; n++) A[(size_t)e * N + n] = -(float)(n + 1);
        rt_put_f32(p->A, A, (size_t)E * N);
        rt_put_const(p->D, E, 1.f);
        free(A);
    } else {
        float *A = (float *)mq_malloc(sizeof(float) * H);
        for (int h = 0; h < H; h++) A[h] = -(float)(1 + h % 16);
        rt_put_f32(p->A, A, H);
        rt_put_const(p->D, H, 1.f);
        rt_put_const(p->dt_bias, H, -4.f);
        rt_put_const(p->gnorm_w, E, 1.f);
        free(A);
    }
}
/* the staging buffer is reused by the next call: wait for the conversion */
void rt_put_f16(half *dst, const float *src, size_t n, float *stage) {
    rt_put(stage, src, n * sizeof(float));
    k_f32_to_f16(dst, stage, n, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
}

int rt_need_gpu(void) {
    const char *why;
    return gpu_available(&why) ? 0 : mq_fail("no usable GPU: %s", why);
}

int rt_check_shapes(const mq_config *c, int max_state, const char *who) {
    if (c->d_conv < 1 || c->d_conv > 8) return mq_fail("%s: d_conv %d unsupported (1..8)", who, c->d_conv);
    if (c->d_state < 1 || c->d_state > max_state)
        return mq_fail("%s: d_state %d unsupported (1..%d)", who, c->d_state, max_state);
    if (c->arch == MQ_MAMBA2 && (c->n_heads * c->head_dim != c->d_inner || c->n_groups < 1 || c->n_heads % c->n_groups))
        return mq_fail("%s: Mamba2 heads %d x %d, groups %d do not fit d_inner %d", who, c->n_heads, c->head_dim,
                       c->n_groups, c->d_inner);
    return 0;
}

int rt_carve_weights(rt_be *r, void (*layout)(rt_be *r, rt_carver *cv)) {
    CUDA_CHECK(cudaDeviceGetAttribute(&r->sm_count, cudaDevAttrMultiProcessorCount, 0));
    rt_carver cv = {NULL, 0};
    layout(r, &cv);
    r->base.weight_bytes = cv.off;
    if (gpu_malloc(&r->weights, cv.off, "the model's weights")) return -1;
    cv.base = (char *)r->weights, cv.off = 0;
    layout(r, &cv);
    return 0;
}

/* ---------------------------------------------------------------- decode state */

static unsigned long g_state_ids;

static void state_reset(be_state *bs) {
    rt_state *s = (rt_state *)bs;
    const int L = bs->owner->cfg.n_layer;
    CUDA_CHECK(cudaDeviceSynchronize()); /* no step still in flight on a workspace stream uses it */
    CUDA_CHECK(cudaMemset(s->conv, 0, ((rt_be *)bs->owner)->pass->conv_elem * s->conv_per_layer * L));
    CUDA_CHECK(cudaMemset(s->ssm, 0, sizeof(float) * s->ssm_per_layer * L));
    CUDA_CHECK(cudaDeviceSynchronize());
}

static void state_free(be_state *bs) {
    rt_state *s = (rt_state *)bs;
    if (s->conv) CUDA_CHECK(cudaFree(s->conv));
    if (s->ssm) CUDA_CHECK(cudaFree(s->ssm));
    free(s);
}

static be_state *state_new(be *b, int batch) {
    const rt_be *r = (const rt_be *)b;
    const mq_config *c = &b->cfg;
    if (batch < 1) {
        mq_fail("%s state: batch %d < 1", r->pass->name, batch);
        return NULL;
    }
    rt_state *s = (rt_state *)mq_calloc(1, sizeof *s);
    s->base.owner = b, s->base.batch = batch;
    s->id = __atomic_add_fetch(&g_state_ids, 1, __ATOMIC_RELAXED);
    s->conv_per_layer = (size_t)batch * cfg_conv_dim(c) * (c->d_conv - 1);
    s->ssm_per_layer = (size_t)batch * c->d_inner * c->d_state;
    if (gpu_malloc(&s->conv, r->pass->conv_elem * s->conv_per_layer * c->n_layer, "the conv state") ||
        gpu_malloc((void **)&s->ssm, sizeof(float) * s->ssm_per_layer * c->n_layer, "the SSM state")) {
        state_free(&s->base);
        return NULL;
    }
    state_reset(&s->base);
    return &s->base;
}

/* ---------------------------------------------------------------- workspace */

#define BLAS_WS_BYTES ((size_t)32 << 20)
#define LOGIT_BYTES ((size_t)256 << 20)
#define PROF_MAX 4096 /* profiling events per call */

static void layout_ws(rt_be *r, rt_carver *cv) {
    rt_ws *w = &r->ws;
    const mq_config *c = &r->base.cfg;
    const size_t R = w->rows, D = c->d_model, E = c->d_inner, S = E * c->d_state;
    const size_t nch = c->arch == MQ_MAMBA1 ? E : (size_t)c->n_heads;
    w->d_tokens = RT_CARVE(cv, int32_t, R);
    w->d_targets = RT_CARVE(cv, int32_t, R);
    w->resid = RT_CARVE(cv, float, R * D);
    w->hid32 = RT_CARVE(cv, float, R * D);
    w->nll = RT_CARVE(cv, float, R);
    w->hid16 = RT_CARVE(cv, half, R * D);
    w->cstate = RT_CARVE(cv, float, (size_t)w->chunk_cap * S);
    w->cdt = RT_CARVE(cv, float, (size_t)w->chunk_cap * nch);
    w->state_scratch = RT_CARVE(cv, float, (size_t)r->base.batch * S);
    w->logits = RT_CARVE(cv, float, (size_t)w->logit_rows * c->vocab_size);
    w->blas_ws = rt_carve(cv, BLAS_WS_BYTES);
    r->pass->layout_ws(r, cv);
}

static void destroy(be *b) {
    rt_be *r = (rt_be *)b;
    rt_ws *w = &r->ws;
    if (w->arena) {
        if (w->graph) CUDA_CHECK(cudaGraphExecDestroy(w->graph));
        if (w->prof_ev) {
            for (int i = 0; i < PROF_MAX; i++) CUDA_CHECK(cudaEventDestroy(w->prof_ev[i]));
            free(w->prof_ev), free(w->prof_cat);
        }
        r->pass->free_ws(r);
        CUBLAS_CHECK(cublasDestroy(w->blas));
        CUDA_CHECK(cudaStreamDestroy(w->stream));
        CUDA_CHECK(cudaFree(w->arena));
    }
    r->pass->free_weights(r);
    if (r->weights) CUDA_CHECK(cudaFree(r->weights));
    free(r);
}

extern const be_ops rt_ops;

void rt_discard(rt_be *r) { destroy(&r->base); }

be *rt_open(rt_be *r, int batch, int seqlen) {
    const mq_config *c = &r->base.cfg;
    const rt_pass *pass = r->pass;
    rt_ws *w = &r->ws;
    r->base.ops = &rt_ops;
    r->base.batch = batch, r->base.seqlen = seqlen;
    w->rows = batch * seqlen;
    const int q = k_scan_ssd_chunk(c, seqlen), ssd_chunks = q ? (seqlen + q - 1) / q : 0;
    for (int b = 1; b <= batch; b++) { /* the most chunk carries any call of this workspace needs */
        const int need = k_scan_chunks(c, b, seqlen, r->sm_count, pass->min_chunk) * b;
        if (need > w->chunk_cap) w->chunk_cap = need;
        if (ssd_chunks * b > w->chunk_cap) w->chunk_cap = ssd_chunks * b;
    }
    size_t lr = LOGIT_BYTES / ((size_t)c->vocab_size * sizeof(float));
    if (lr > (size_t)w->rows) lr = w->rows;
    w->logit_rows = lr < (size_t)batch ? batch : (int)lr;
    rt_carver cv = {NULL, 0};
    layout_ws(r, &cv);
    r->base.ws_bytes = cv.off;
    if (gpu_malloc(&w->arena, cv.off, "the workspace")) {
        destroy(&r->base);
        return NULL;
    }
    cv.base = (char *)w->arena, cv.off = 0;
    layout_ws(r, &cv);
    CUDA_CHECK(cudaStreamCreateWithFlags(&w->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&w->blas));
    CUBLAS_CHECK(cublasSetStream(w->blas, w->stream));
    CUBLAS_CHECK(cublasSetWorkspace(w->blas, w->blas_ws, BLAS_WS_BYTES));
    pass->init_ws(r);
    return &r->base;
}

/* ---------------------------------------------------------------- profiling */

static const char *prof_names[RT_P_NCAT] = {"", "embed", "rmsnorm", "in_proj", "conv", "x_proj", "dt_proj",
                                            "scan", "gated_norm", "y_quant", "out_proj", "lm_head", "nll"};

void rt_mark(rt_be *r, int cat) {
    rt_ws *w = &r->ws;
    if (!w->prof_on || w->prof_n >= PROF_MAX) return;
    cudaStreamCaptureStatus cs;
    CUDA_CHECK(cudaStreamIsCapturing(w->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) return;
    CUDA_CHECK(cudaEventRecord(w->prof_ev[w->prof_n], w->stream));
    w->prof_cat[w->prof_n++] = (unsigned char)cat;
}

/* after a sync of the stream */
static void prof_collect(rt_ws *w) {
    for (int i = 1; i < w->prof_n; i++) {
        if (w->prof_cat[i] == RT_P_START) continue;
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, w->prof_ev[i - 1], w->prof_ev[i]));
        w->prof_ms[w->prof_cat[i]] += ms;
    }
    w->prof_n = 0;
}

static void profile(be *b, int on) {
    rt_ws *w = &((rt_be *)b)->ws;
    if (on && !w->prof_ev) {
        w->prof_ev = (cudaEvent_t *)mq_malloc(sizeof(cudaEvent_t) * PROF_MAX);
        w->prof_cat = (unsigned char *)mq_malloc(PROF_MAX);
        for (int i = 0; i < PROF_MAX; i++) CUDA_CHECK(cudaEventCreate(&w->prof_ev[i]));
    }
    w->prof_on = on;
    w->prof_n = 0;
}

static int profile_report(be *b, char *buf, size_t n) {
    rt_ws *w = &((rt_be *)b)->ws;
    int k = 0;
    if (n) buf[0] = 0;
    for (int c = 1; c < RT_P_NCAT; c++)
        if (w->prof_ms[c] > 0 && (size_t)k < n)
            k += snprintf(buf + k, n - k, "%s%s %.2f", k ? ", " : "", prof_names[c], w->prof_ms[c]);
    memset(w->prof_ms, 0, sizeof w->prof_ms);
    return k;
}

/* ---------------------------------------------------------------- the forward's helpers */

int rt_chunks(const rt_be *r, int B, int T) {
    int nc = k_scan_chunks(&r->base.cfg, B, T, r->sm_count, r->pass->min_chunk);
    if (nc * B > r->ws.chunk_cap) nc = r->ws.chunk_cap / B > 0 ? r->ws.chunk_cap / B : 1;
    return nc;
}

int rt_ssd_chunk(const rt_be *r, int B, int T) {
    const int q = k_scan_ssd_chunk(&r->base.cfg, T);
    return q && (long)((T + q - 1) / q) * B <= r->ws.chunk_cap ? q : 0;
}

int rt_hook(rt_be *r, const mq_hooks *hk, int layer, mq_act_role role, const void *x, mq_dtype dt, float scale, int rows,
            int cols, int ld) {
    if (!hk || !hk->fn) return 0;
    mq_act a;
    a.layer = layer, a.role = role, a.dtype = dt, a.scale = scale, a.x = (void *)x;
    a.rows = rows, a.cols = cols, a.ld = ld, a.device = 1, a.stream = (void *)r->ws.stream;
    return hk->fn(hk->ctx, &a);
}

void rt_set_last(rt_be *r, int B, int T) { r->ws.last_B = B, r->ws.last_T = T; }

void rt_embed(rt_be *r, const half *embed, int R) {
    rt_mark(r, RT_P_START);
    k_embed(r->ws.resid, embed, r->ws.d_tokens, R, r->base.cfg.d_model, r->ws.stream);
    rt_mark(r, RT_P_EMBED);
}

int rt_after_norm(rt_be *r, const mq_hooks *hk, int layer, int R) {
    const int D = r->base.cfg.d_model;
    rt_mark(r, RT_P_NORM);
    return layer ? rt_hook(r, hk, layer - 1, MQ_ACT_RESID, r->ws.resid, MQ_F32, 0.f, R, D, D) : 0;
}

/* ---------------------------------------------------------------- prefill, logits, steps, NLL */

/* Checks ids and enqueues their upload to ws.d_tokens. */
static int upload_tokens(rt_be *r, const int32_t *tokens, int n) {
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= r->base.cfg.vocab_size)
            return mq_fail("%s: token %d at position %d is outside the vocabulary (%d)", r->pass->name, tokens[i], i,
                           r->base.cfg.vocab_size);
    CUDA_CHECK(cudaMemcpyAsync(r->ws.d_tokens, tokens, sizeof(int32_t) * n, cudaMemcpyHostToDevice, r->ws.stream));
    return 0;
}

static int check_call(const rt_be *r, int B, int T, const be_state *s) {
    const be *b = &r->base;
    if (B < 1 || T < 1 || B > b->batch || T > b->seqlen)
        return mq_fail("%s: batch %d x %d tokens does not fit the workspace (%d x %d)", r->pass->name, B, T, b->batch,
                       b->seqlen);
    if (s && (s->owner != b || s->batch != B))
        return mq_fail("%s: the state is for batch %d of %s backend, the call has batch %d", r->pass->name, s->batch,
                       s->owner == b ? "this" : "another", B);
    return 0;
}

/* The forward, then (on success or failure) the stream drained. */
static int run_forward(rt_be *r, int B, int T, be_state *s, const mq_hooks *hk) {
    const int rc = r->pass->forward(r, B, T, s, hk);
    if (rc) {
        CUDA_CHECK(cudaStreamSynchronize(r->ws.stream));
        r->ws.prof_n = 0;
    }
    return rc;
}

static int prefill(be *b, const int32_t *tokens, int B, int T, be_state *s, const mq_hooks *hk, float *hidden) {
    rt_be *r = (rt_be *)b;
    if (check_call(r, B, T, s) || upload_tokens(r, tokens, B * T) || run_forward(r, B, T, s, hk)) return -1;
    if (hidden)
        CUDA_CHECK(cudaMemcpyAsync(hidden, r->ws.hid32, sizeof(float) * (size_t)B * T * b->cfg.d_model,
                                   cudaMemcpyDeviceToHost, r->ws.stream));
    CUDA_CHECK(cudaStreamSynchronize(r->ws.stream));
    prof_collect(&r->ws);
    return 0;
}

static int logits(be *b, int row0, int nrows, float *out) {
    rt_be *r = (rt_be *)b;
    rt_ws *w = &r->ws;
    const int V = b->cfg.vocab_size;
    if (row0 < 0 || nrows < 0 || row0 + nrows > w->last_B * w->last_T)
        return mq_fail("%s logits: rows %d..%d beyond the %d rows of the last forward", r->pass->name, row0, row0 + nrows,
                       w->last_B * w->last_T);
    for (int i = 0; i < nrows; i += w->logit_rows) {
        const int n = nrows - i < w->logit_rows ? nrows - i : w->logit_rows;
        r->pass->lm_head(r, row0 + i, n);
        CUDA_CHECK(cudaMemcpyAsync(out + (size_t)i * V, w->logits, sizeof(float) * (size_t)n * V, cudaMemcpyDeviceToHost,
                                   w->stream));
        CUDA_CHECK(cudaStreamSynchronize(w->stream)); /* w->logits is reused by the next block */
    }
    return 0;
}

/* Decode graph: everything from the embedding to norm_f (and lm_head when asked) in one launch;
 * the tokens go to the fixed ws.d_tokens the graph reads before each launch. It is captured again
 * whenever the state (by id: a new state may get a freed one's addresses) or what is wanted differ. */
static int step_async(be *b, be_state *s, const int32_t *tokens, int with_logits) {
    rt_be *r = (rt_be *)b;
    rt_ws *w = &r->ws;
    if (!s) return mq_fail("%s step: no state", r->pass->name);
    const int B = s->batch;
    if (check_call(r, B, 1, s) || upload_tokens(r, tokens, B)) return -1;
    with_logits = with_logits != 0;
    const unsigned long sid = ((rt_state *)s)->id;
    if (!w->graph || w->graph_state != sid || w->graph_B != B || w->graph_logits != with_logits) {
        if (w->graph) CUDA_CHECK(cudaGraphExecDestroy(w->graph));
        w->graph = NULL;
        cudaGraph_t graph;
        CUDA_CHECK(cudaStreamBeginCapture(w->stream, cudaStreamCaptureModeThreadLocal));
        const int rc = r->pass->forward(r, B, 1, s, NULL); /* no hooks: cannot fail */
        if (with_logits) r->pass->lm_head(r, 0, B);
        CUDA_CHECK(cudaStreamEndCapture(w->stream, &graph));
        if (rc) {
            CUDA_CHECK(cudaGraphDestroy(graph));
            return -1;
        }
        CUDA_CHECK(cudaGraphInstantiate(&w->graph, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
        w->graph_state = sid, w->graph_B = B, w->graph_logits = with_logits;
    }
    CUDA_CHECK(cudaGraphLaunch(w->graph, w->stream));
    rt_set_last(r, B, 1);
    return 0;
}

static void stream_sync(be *b) { CUDA_CHECK(cudaStreamSynchronize(((rt_be *)b)->ws.stream)); }

static int step(be *b, be_state *s, const int32_t *tokens, const mq_hooks *hk, float *hidden, float *out_logits) {
    rt_be *r = (rt_be *)b;
    rt_ws *w = &r->ws;
    if (!s) return mq_fail("%s step: no state", r->pass->name);
    const int B = s->batch;
    if (hk && hk->fn) { /* hooks run on the host between the ops: no graph */
        if (check_call(r, B, 1, s) || upload_tokens(r, tokens, B) || run_forward(r, B, 1, s, hk)) return -1;
        if (out_logits) r->pass->lm_head(r, 0, B);
        rt_mark(r, RT_P_LM_HEAD);
    } else if (step_async(b, s, tokens, out_logits != NULL)) {
        return -1;
    }
    if (hidden)
        CUDA_CHECK(cudaMemcpyAsync(hidden, w->hid32, sizeof(float) * (size_t)B * b->cfg.d_model, cudaMemcpyDeviceToHost,
                                   w->stream));
    if (out_logits)
        CUDA_CHECK(cudaMemcpyAsync(out_logits, w->logits, sizeof(float) * (size_t)B * b->cfg.vocab_size,
                                   cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    prof_collect(w);
    return 0;
}

static int nll(be *b, const int32_t *tokens, int B, int T, const mq_hooks *hk, float *out, double *sum) {
    rt_be *r = (rt_be *)b;
    rt_ws *w = &r->ws;
    if (T < 2) return mq_fail("%s NLL: windows of %d tokens score nothing", r->pass->name, T);
    if (prefill(b, tokens, B, T, NULL, hk, NULL)) return -1;
    const int R = B * T, V = b->cfg.vocab_size;
    int32_t *tg = (int32_t *)mq_malloc(sizeof(int32_t) * R);
    float *h = (float *)mq_malloc(sizeof(float) * R);
    for (int i = 0; i < B; i++)
        for (int t = 0; t < T; t++) tg[i * T + t] = t < T - 1 ? tokens[i * T + t + 1] : -1;
    CUDA_CHECK(cudaMemcpyAsync(w->d_targets, tg, sizeof(int32_t) * R, cudaMemcpyHostToDevice, w->stream));
    rt_mark(r, RT_P_START);
    for (int r0 = 0; r0 < R; r0 += w->logit_rows) {
        const int n = R - r0 < w->logit_rows ? R - r0 : w->logit_rows;
        r->pass->lm_head(r, r0, n);
        rt_mark(r, RT_P_LM_HEAD);
        k_nll(w->nll + r0, w->logits, w->d_targets + r0, n, V, w->stream);
        rt_mark(r, RT_P_NLL);
    }
    CUDA_CHECK(cudaMemcpyAsync(h, w->nll, sizeof(float) * R, cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    prof_collect(w);
    double s = 0;
    for (int i = 0; i < B; i++)
        for (int t = 0; t < T - 1; t++) {
            s += h[i * T + t];
            if (out) out[i * (T - 1) + t] = h[i * T + t];
        }
    *sum = s;
    free(tg);
    free(h);
    return 0;
}

const be_ops rt_ops = {destroy, state_new,   state_reset, state_free, prefill, logits,
                       step,    step_async, stream_sync, nll,      profile, profile_report};

/* ---------------------------------------------------------------- hooks' data on the host */

__global__ void widen_kernel(float *dst, const void *src, int dtype, int rows, int cols, int ld) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)rows * cols;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t r = i / cols, c = i % cols, j = r * ld + c;
        dst[i] = dtype == MQ_F16 ? __half2float(((const half *)src)[j]) : (float)((const int8_t *)src)[j];
    }
}

int be_cuda_act_download(const mq_act *a, float *dst) {
    if (rt_need_gpu()) return -1;
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)a->stream));
    if (a->dtype == MQ_F32) {
        CUDA_CHECK(cudaMemcpy2D(dst, sizeof(float) * a->cols, a->x, sizeof(float) * a->ld, sizeof(float) * a->cols,
                                a->rows, cudaMemcpyDeviceToHost));
        return 0;
    }
    if (a->dtype != MQ_F16 && a->dtype != MQ_I8)
        return mq_fail("layer %d %s: %s data cannot be downloaded", a->layer, ssm_act_role_name(a->role),
                       mq_dtype_name(a->dtype));
    float *t;
    if (gpu_malloc((void **)&t, sizeof(float) * (size_t)a->rows * a->cols, "an activation's copy")) return -1;
    widen_kernel<<<256, 256>>>(t, a->x, (int)a->dtype, a->rows, a->cols, a->ld);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(dst, t, sizeof(float) * (size_t)a->rows * a->cols, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(t));
    return 0;
}

/* ---------------------------------------------------------------- random models */

be *be_cuda_open_random(const mq_config *cfg, be_kind kind, int hadamard, uint64_t seed, int batch, int seqlen) {
    return kind == BE_CUDA_F16 ? rt_f16_random(cfg, 0, seed, batch, seqlen) : rt_i8_random(cfg, hadamard, 0, seed, batch, seqlen);
}
be *be_cuda_open_random_q2(const mq_config *cfg, int w4_group, uint64_t seed, int batch, int seqlen) {
    return w4_group ? rt_i8_random_w4a8(cfg, w4_group, seed, batch, seqlen) : rt_i8_random(cfg, 1, 1, seed, batch, seqlen);
}
be *be_cuda_open_random_w4a16(const mq_config *cfg, int group, uint64_t seed, int batch, int seqlen) {
    return rt_f16_random(cfg, group, seed, batch, seqlen);
}
