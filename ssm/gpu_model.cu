/* GPU memory of the FP16 forward: the model's weights (one cudaMalloc, FP16 matrices converted on the
 * device from the FP32 host model, or random for benchmarks), the workspace sized for (batch,
 * seqlen) with its stream and cuBLAS handle, and the decode state. Each object owns exactly its
 * own allocations; the *_free functions release them. */
#include <stdlib.h>
#include <string.h>
extern "C" { /* core/err.h is a C header without its own guard */
#include "core/err.h"
}
#include "ssm/gpu_kern.h"

/* ---------------------------------------------------------------- sizes */

int ssmg_in_dim(const mq_config *c) { /* = cfg_in_proj_dim */
    return c->arch == MQ_MAMBA1 ? 2 * c->d_inner : 2 * c->d_inner + 2 * c->n_groups * c->d_state + c->n_heads;
}
int ssmg_conv_dim(const mq_config *c) { /* = cfg_conv_dim */
    return c->arch == MQ_MAMBA1 ? c->d_inner : c->d_inner + 2 * c->n_groups * c->d_state;
}
long ssmg_scan_threads_per_seq(const mq_config *c) {
    return c->arch == MQ_MAMBA1 ? c->d_inner : (long)c->n_heads * c->head_dim * ssmg_scan2_group(c->d_state);
}
/* Enough chunks for ~1024 (Mamba1: each thread runs d_state independent recurrences) or ~2048
 * (Mamba2) threads per SM, but chunks of at least 32 steps: more chunks cost a second pass. */
int ssmg_scan_chunks(const mq_config *c, int B, int T, int sm_count) {
    long per = (long)B * ssmg_scan_threads_per_seq(c), target = (long)sm_count * (c->arch == MQ_MAMBA1 ? 1024 : 2048);
    long nc = (target + per - 1) / per, maxc = (T + 31) / 32;
    if (nc > maxc) nc = maxc;
    return nc < 1 ? 1 : (int)nc;
}

/* cudaMalloc that reports instead of exiting: running out of GPU memory is a user-level error. */
static int dev_alloc(void **p, size_t n, const char *what) {
    cudaError_t e = cudaMalloc(p, n ? n : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return mq_fail("GPU: cannot allocate %.1f MiB for %s: %s", n / 1048576.0, what, cudaGetErrorString(e));
    }
    return 0;
}

/* Two-pass layout: with base NULL it only adds up the size; then the same calls hand out pointers. */
typedef struct { char *base; size_t off; } carver;
static void *carve(carver *c, size_t bytes) {
    size_t o = (c->off + 255) & ~(size_t)255;
    c->off = o + bytes;
    return c->base ? c->base + o : NULL;
}
#define CARVE(c, T, n) ((T *)carve((c), sizeof(T) * (size_t)(n)))

static int check_shapes(const mq_config *c) {
    if (c->d_conv < 1 || c->d_conv > 8) return mq_fail("GPU forward: d_conv %d unsupported (1..8)", c->d_conv);
    if (c->arch == MQ_MAMBA1 && c->d_state > 64)
        return mq_fail("GPU forward: Mamba1 d_state %d unsupported (at most 64)", c->d_state);
    if (c->arch == MQ_MAMBA2) {
        if (c->d_state > 128) return mq_fail("GPU forward: Mamba2 d_state %d unsupported (at most 128)", c->d_state);
        if (c->n_heads * c->head_dim != c->d_inner || c->n_groups < 1 || c->n_heads % c->n_groups)
            return mq_fail("GPU forward: Mamba2 heads %d x %d, groups %d do not fit d_inner %d", c->n_heads,
                           c->head_dim, c->n_groups, c->d_inner);
    }
    return 0;
}

static void layout_model(ssmg_model *g, carver *cv) {
    const mq_config *c = &g->cfg;
    const int D = c->d_model, E = c->d_inner, in = ssmg_in_dim(c), cd = ssmg_conv_dim(c);
    g->embed = CARVE(cv, half, (size_t)c->vocab_size * D);
    g->lm_head = c->tie_embeddings ? g->embed : CARVE(cv, half, (size_t)c->vocab_size * D);
    g->norm_f = CARVE(cv, float, D);
    for (int l = 0; l < c->n_layer; l++) {
        ssmg_layer *L = &g->layers[l];
        memset(L, 0, sizeof *L);
        L->norm_w = CARVE(cv, float, D);
        L->in_proj = CARVE(cv, half, (size_t)in * D);
        if (c->proj_bias) L->in_proj_b = CARVE(cv, float, in);
        L->conv_w = CARVE(cv, float, (size_t)cd * c->d_conv);
        if (c->conv_bias) L->conv_b = CARVE(cv, float, cd);
        L->out_proj = CARVE(cv, half, (size_t)D * E);
        if (c->proj_bias) L->out_proj_b = CARVE(cv, float, D);
        if (c->arch == MQ_MAMBA1) {
            L->A = CARVE(cv, float, (size_t)E * c->d_state);
            L->D = CARVE(cv, float, E);
            L->x_proj = CARVE(cv, half, (size_t)(c->dt_rank + 2 * c->d_state) * E);
            L->dt_proj = CARVE(cv, half, (size_t)E * c->dt_rank);
            L->dt_proj_b = CARVE(cv, float, E);
        } else {
            L->A = CARVE(cv, float, c->n_heads);
            L->D = CARVE(cv, float, c->n_heads);
            L->dt_bias = CARVE(cv, float, c->n_heads);
            L->gnorm_w = CARVE(cv, float, E);
        }
    }
}

/* Allocates g (cfg set by the caller) and its arena; NULL + error. */
static ssmg_model *model_alloc(const mq_config *cfg) {
    const char *why;
    if (!gpu_available(&why)) { mq_fail("no usable GPU: %s", why); return NULL; }
    if (check_shapes(cfg)) return NULL;
    ssmg_model *g = (ssmg_model *)mq_calloc(1, sizeof *g);
    g->cfg = *cfg;
    g->layers = (ssmg_layer *)mq_calloc(cfg->n_layer, sizeof(ssmg_layer));
    carver cv = {NULL, 0};
    layout_model(g, &cv);
    g->bytes = cv.off;
    if (dev_alloc(&g->arena, g->bytes, "the model's weights")) { free(g->layers); free(g); return NULL; }
    cv.base = (char *)g->arena;
    cv.off = 0;
    layout_model(g, &cv);
    /* decode reads every weight except the embedding table (only batch rows of it), unless tied */
    g->decode_bytes = g->bytes - (cfg->tie_embeddings ? 0 : (size_t)cfg->vocab_size * cfg->d_model * 2);
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    g->sm_count = p.multiProcessorCount;
    return g;
}

void ssmg_model_free(ssmg_model *g) {
    if (!g) return;
    CUDA_CHECK(cudaFree(g->arena));
    free(g->layers);
    free(g);
}

const mq_config *ssmg_config(const ssmg_model *g) { return &g->cfg; }
size_t ssmg_decode_bytes(const ssmg_model *g) { return g->decode_bytes; }
size_t ssmg_model_bytes(const ssmg_model *g) { return g->bytes; }

/* ---------------------------------------------------------------- upload */

static void put_f32(float *dst, const float *src, size_t n) {
    CUDA_CHECK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyHostToDevice));
}
/* through the FP32 staging buffer, converted to FP16 on the device (round to nearest even) */
static void put_f16(half *dst, const float *src, size_t n, float *stage) {
    CUDA_CHECK(cudaMemcpy(stage, src, n * sizeof(float), cudaMemcpyHostToDevice));
    k_f32_to_f16(dst, stage, n, 0);
}

ssmg_model *ssmg_upload(const mq_model *m) {
    const mq_config *c = &m->cfg;
    mq_config cfg = *c;
    cfg.tie_embeddings = m->lm_head == m->embed; /* what the loader did decides, not the flag */
    ssmg_model *g = model_alloc(&cfg);
    if (!g) return NULL;
    const int D = c->d_model, E = c->d_inner, in = ssmg_in_dim(c), cd = ssmg_conv_dim(c);
    size_t big = (size_t)c->vocab_size * D;
    if ((size_t)in * D > big) big = (size_t)in * D;
    float *stage;
    if (dev_alloc((void **)&stage, big * sizeof(float), "the upload staging buffer")) { ssmg_model_free(g); return NULL; }
    put_f16(g->embed, m->embed, (size_t)c->vocab_size * D, stage);
    if (!cfg.tie_embeddings) {
        CUDA_CHECK(cudaDeviceSynchronize()); /* stage is reused */
        put_f16(g->lm_head, m->lm_head, (size_t)c->vocab_size * D, stage);
    }
    put_f32(g->norm_f, m->norm_f, D);
    for (int l = 0; l < c->n_layer; l++) {
        const mq_layer *H = &m->layers[l];
        ssmg_layer *L = &g->layers[l];
        /* cudaMemcpy to the staging buffer waits for the previous conversion (same legacy stream) */
        put_f32(L->norm_w, H->norm_w, D);
        put_f16(L->in_proj, H->in_proj, (size_t)in * D, stage);
        if (L->in_proj_b) put_f32(L->in_proj_b, H->in_proj_b, in);
        put_f32(L->conv_w, H->conv_w, (size_t)cd * c->d_conv);
        if (L->conv_b) put_f32(L->conv_b, H->conv_b, cd);
        put_f16(L->out_proj, H->out_proj, (size_t)D * E, stage);
        if (L->out_proj_b) put_f32(L->out_proj_b, H->out_proj_b, D);
        if (c->arch == MQ_MAMBA1) {
            put_f32(L->A, H->A, (size_t)E * c->d_state);
            put_f32(L->D, H->D, E);
            put_f16(L->x_proj, H->x_proj, (size_t)(c->dt_rank + 2 * c->d_state) * E, stage);
            put_f16(L->dt_proj, H->dt_proj, (size_t)E * c->dt_rank, stage);
            put_f32(L->dt_proj_b, H->dt_proj_b, E);
        } else {
            put_f32(L->A, H->A, c->n_heads);
            put_f32(L->D, H->D, c->n_heads);
            put_f32(L->dt_bias, H->dt_bias, c->n_heads);
            put_f32(L->gnorm_w, H->gnorm_w, E);
        }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(stage));
    return g;
}

/* ---------------------------------------------------------------- random model (benchmarks) */

static void put_const(float *dst, size_t n, float v) {
    float *h = (float *)mq_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = v;
    put_f32(dst, h, n);
    free(h);
}

/* Scales keep activations O(1) through the layers: uniform +-1/sqrt(fan_in) for projections,
 * A = -(1..d_state) (Mamba1, S4D-real) or -(1..16) per head (Mamba2), dt ~ softplus(-4) ~ 0.018. */
ssmg_model *ssmg_model_random(const mq_config *c, uint64_t seed) {
    ssmg_model *g = model_alloc(c);
    if (!g) return NULL;
    const int D = c->d_model, E = c->d_inner, in = ssmg_in_dim(c), cd = ssmg_conv_dim(c), N = c->d_state;
    uint64_t s = seed * 1000003ull;
    k_fill_uniform_f16(g->embed, (size_t)c->vocab_size * D, s++, 0.05f, 0);
    if (g->lm_head != g->embed) k_fill_uniform_f16(g->lm_head, (size_t)c->vocab_size * D, s++, 0.05f, 0);
    put_const(g->norm_f, D, 1.f);
    float *conv = (float *)mq_malloc(sizeof(float) * (size_t)cd * c->d_conv);
    for (size_t i = 0; i < (size_t)cd * c->d_conv; i++) conv[i] = (float)((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    float *A = (float *)mq_malloc(sizeof(float) * (size_t)E * (N > 16 ? N : 16));
    for (int l = 0; l < c->n_layer; l++) {
        ssmg_layer *L = &g->layers[l];
        put_const(L->norm_w, D, 1.f);
        k_fill_uniform_f16(L->in_proj, (size_t)in * D, s++, 1.f / sqrtf((float)D), 0);
        if (L->in_proj_b) put_const(L->in_proj_b, in, 0.f);
        put_f32(L->conv_w, conv, (size_t)cd * c->d_conv);
        if (L->conv_b) put_const(L->conv_b, cd, 0.f);
        k_fill_uniform_f16(L->out_proj, (size_t)D * E, s++, 1.f / sqrtf((float)E), 0);
        if (L->out_proj_b) put_const(L->out_proj_b, D, 0.f);
        if (c->arch == MQ_MAMBA1) {
            for (int e = 0; e < E; e++)
                for (int n = 0; n < N; n++) A[(size_t)e * N + n] = -(float)(n + 1);
            put_f32(L->A, A, (size_t)E * N);
            put_const(L->D, E, 1.f);
            k_fill_uniform_f16(L->x_proj, (size_t)(c->dt_rank + 2 * N) * E, s++, 1.f / sqrtf((float)E), 0);
            k_fill_uniform_f16(L->dt_proj, (size_t)E * c->dt_rank, s++, 1.f / sqrtf((float)c->dt_rank), 0);
            put_const(L->dt_proj_b, E, -4.f);
        } else {
            for (int h = 0; h < c->n_heads; h++) A[h] = -(float)(1 + h % 16);
            put_f32(L->A, A, c->n_heads);
            put_const(L->D, c->n_heads, 1.f);
            put_const(L->dt_bias, c->n_heads, -4.f);
            put_const(L->gnorm_w, E, 1.f);
        }
    }
    free(conv);
    free(A);
    CUDA_CHECK(cudaDeviceSynchronize());
    return g;
}

/* ---------------------------------------------------------------- decode state */

static unsigned long g_state_ids;

ssmg_state *ssmg_state_new(const ssmg_model *g, int batch) {
    const mq_config *c = &g->cfg;
    if (batch < 1) { mq_fail("GPU state: batch %d < 1", batch); return NULL; }
    ssmg_state *s = (ssmg_state *)mq_calloc(1, sizeof *s);
    s->g = g;
    s->batch = batch;
    s->id = __atomic_add_fetch(&g_state_ids, 1, __ATOMIC_RELAXED);
    s->conv_per_layer = (size_t)batch * ssmg_conv_dim(c) * (c->d_conv - 1);
    s->ssm_per_layer = (size_t)batch * c->d_inner * c->d_state;
    if (dev_alloc((void **)&s->conv, sizeof(float) * s->conv_per_layer * c->n_layer, "the conv state") ||
        dev_alloc((void **)&s->ssm, sizeof(float) * s->ssm_per_layer * c->n_layer, "the SSM state")) {
        ssmg_state_free(s);
        return NULL;
    }
    ssmg_state_reset(s);
    return s;
}

void ssmg_state_reset(ssmg_state *s) {
    int L = s->g->cfg.n_layer;
    CUDA_CHECK(cudaDeviceSynchronize()); /* no step still in flight on a workspace stream uses it */
    CUDA_CHECK(cudaMemset(s->conv, 0, sizeof(float) * s->conv_per_layer * L));
    CUDA_CHECK(cudaMemset(s->ssm, 0, sizeof(float) * s->ssm_per_layer * L));
    CUDA_CHECK(cudaDeviceSynchronize());
}

void ssmg_state_free(ssmg_state *s) {
    if (!s) return;
    if (s->conv) CUDA_CHECK(cudaFree(s->conv));
    if (s->ssm) CUDA_CHECK(cudaFree(s->ssm));
    free(s);
}

/* ---------------------------------------------------------------- workspace */

#define BLAS_WS_BYTES (32u << 20)
#define LOGIT_BYTES ((size_t)256 << 20)

static void layout_ws(ssmg_ws *w, carver *cv) {
    const mq_config *c = &w->g->cfg;
    const size_t R = w->rows, D = c->d_model, E = c->d_inner, S = (size_t)E * c->d_state;
    const size_t nch = c->arch == MQ_MAMBA1 ? E : (size_t)c->n_heads;
    w->d_tokens = CARVE(cv, int32_t, R);
    w->d_targets = CARVE(cv, int32_t, R);
    w->resid = CARVE(cv, float, R * D);
    w->hid32 = CARVE(cv, float, R * D);
    w->nll = CARVE(cv, float, R);
    w->h16 = CARVE(cv, half, R * D);
    w->xz16 = CARVE(cv, half, R * ssmg_in_dim(c));
    w->xc16 = CARVE(cv, half, R * ssmg_conv_dim(c));
    w->xdbl16 = c->arch == MQ_MAMBA1 ? CARVE(cv, half, R * (c->dt_rank + 2 * c->d_state)) : NULL;
    w->dt16 = c->arch == MQ_MAMBA1 ? CARVE(cv, half, R * E) : NULL;
    w->y16 = CARVE(cv, half, R * E);
    w->g16 = c->arch == MQ_MAMBA2 ? CARVE(cv, half, R * E) : NULL;
    w->delta16 = CARVE(cv, half, R * D);
    w->hid16 = CARVE(cv, half, R * D);
    w->chunk_state = CARVE(cv, float, (size_t)w->chunk_cap * S);
    w->chunk_dt = CARVE(cv, float, (size_t)w->chunk_cap * nch);
    w->state_scratch = CARVE(cv, float, (size_t)w->batch * S);
    w->logits = CARVE(cv, float, (size_t)w->logit_rows * c->vocab_size);
    w->blas_ws = carve(cv, BLAS_WS_BYTES);
}

ssmg_ws *ssmg_ws_new(const ssmg_model *g, int batch, int seqlen) {
    const mq_config *c = &g->cfg;
    if (batch < 1 || seqlen < 1) { mq_fail("GPU workspace: batch %d x seqlen %d", batch, seqlen); return NULL; }
    ssmg_ws *w = (ssmg_ws *)mq_calloc(1, sizeof *w);
    w->g = g;
    w->batch = batch;
    w->seqlen = seqlen;
    w->rows = batch * seqlen;
    for (int b = 1; b <= batch; b++) { /* the most chunk carries any allowed call needs */
        int need = ssmg_scan_chunks(c, b, seqlen, g->sm_count) * b;
        if (need > w->chunk_cap) w->chunk_cap = need;
    }
    size_t lr = LOGIT_BYTES / ((size_t)c->vocab_size * sizeof(float));
    if (lr > (size_t)w->rows) lr = w->rows;
    w->logit_rows = lr < (size_t)batch ? batch : (int)lr;
    carver cv = {NULL, 0};
    layout_ws(w, &cv);
    w->bytes = cv.off;
    if (dev_alloc(&w->arena, w->bytes, "the workspace")) { free(w); return NULL; }
    cv.base = (char *)w->arena;
    cv.off = 0;
    layout_ws(w, &cv);
    CUDA_CHECK(cudaStreamCreateWithFlags(&w->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&w->blas));
    CUBLAS_CHECK(cublasSetStream(w->blas, w->stream));
    CUBLAS_CHECK(cublasSetWorkspace(w->blas, w->blas_ws, BLAS_WS_BYTES));
    return w;
}

void ssmg_ws_free(ssmg_ws *w) {
    if (!w) return;
    if (w->graph) CUDA_CHECK(cudaGraphExecDestroy(w->graph));
    if (w->prof_ev) {
        for (int i = 0; i < PROF_MAX; i++) CUDA_CHECK(cudaEventDestroy(w->prof_ev[i]));
        free(w->prof_ev);
        free(w->prof_cat);
    }
    CUBLAS_CHECK(cublasDestroy(w->blas));
    CUDA_CHECK(cudaStreamDestroy(w->stream));
    CUDA_CHECK(cudaFree(w->arena));
    free(w);
}

size_t ssmg_ws_bytes(const ssmg_ws *w) { return w->bytes; }

void ssmg_sync(ssmg_ws *w) { CUDA_CHECK(cudaStreamSynchronize(w->stream)); }
