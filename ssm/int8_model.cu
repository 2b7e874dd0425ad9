/* The int8 pass on the GPU (ssm/int8.h): the model's int8 weights and scales uploaded from a q_model,
 * the workspace and decode state, and the forward read top to bottom (embedding; per layer
 * add + RMSNorm -> int8, in_proj, conv1d, Mamba1 x_proj / dt_proj / scan or Mamba2 scan / gated
 * norm, rotation + quantization of y, out_proj; norm_f, lm_head, NLL). Prefill and decode share the
 * forward (decode = T of 1 on a carried state). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
extern "C" {
#include "core/err.h"
}
#include "hadamard/had.h"
#include "ssm/int8_kern.h"
#include "ssm/int8_ref.h"

/* Device pointers into the model's arena. Per-column scale arrays: see int8_kern.h. */
struct i8g_layer {
    float *norm_w;
    int8_t *in_w; float *in_sw, *in_b, *in_qs;              /* [in x D]; [in] x3 (bias may be NULL) */
    int8_t *conv_w; float *conv_sw, *conv_sin, *conv_sout, *conv_b; /* [cd x K]; [cd] x4 (bias may be NULL) */
    int8_t *out_w; float *out_sw, *out_b;                   /* [D x E]; [D] x2 */
    float *A, *D;                                           /* M1 [E x N], [E]; M2 [H], [H] */
    int8_t *xp_w; float *xp_sw, *xp_qs;                     /* M1 x_proj [xw x E]; [xw] x2 */
    int8_t *dt_w; float *dt_sw, *dt_qs, *dt_b;              /* M1 dt_proj [E x R]; [E] x3 */
    float *dt_bias, *gnorm_w;                               /* M2 [H], [E] */
    /* activation scales: in_proj input, ssm_x, x_proj output (M1), dt, z, B, C, out_proj input */
    float s_in, s_u, s_xp, s_dt, s_z, s_B, s_C, s_y, s_conv0;
};

struct i8g_model {
    mq_config cfg;
    int hadamard;                  /* rotate y before quantizing it (order d_inner) */
    int had_m, had_p, had_log_p;   /* d_inner = had_m * had_p, had_p = 2^had_log_p, when hadamard */
    int dec_fused;                 /* the shapes fit the fused batch-1 decode kernels (int8_decode.cu) */
    half *embed, *lm16;            /* lm16: FP16 lm_head (== embed when tied), NULL when quantized */
    int8_t *lm_q; float *lm_sw;    /* int8 lm_head [V x D] and its scales [V] (quantize_head) */
    float lm_in_scale;
    float *norm_f;
    i8g_layer *layers;             /* host array of device pointers */
    void *arena;
    size_t bytes, decode_bytes;
};

struct i8g_state {
    const i8g_model *g;
    int batch;
    int8_t *conv;                  /* [n_layer][batch][conv_dim][d_conv-1] int8 conv inputs, oldest first */
    float *ssm;                    /* [n_layer][batch][d_inner][d_state] */
    size_t conv_per_layer, ssm_per_layer;
};

#define PROF_MAX 4096 /* profiling events per call */
#define LT_WS_BYTES ((size_t)32 << 20)
#define BLAS_WS_BYTES ((size_t)8 << 20)
#define LOGIT_BYTES ((size_t)256 << 20)

struct i8g_ws {
    const i8g_model *g;
    int batch, seqlen, rows;
    cudaStream_t stream;
    cublasHandle_t blas;
    i8_gemm_ctx gc;
    int32_t *d_tokens, *d_targets;
    float *resid, *hid32, *nll, *y32, *state_scratch, *logits;
    half *hid16, *y16, *g16, *delta16;
    int8_t *h8, *xz8, *xc8, *xdbl8, *dt8, *yq8;
    int32_t *acc;
    float *resid2;                  /* fused decode: the residual alternates between resid and resid2 */
    int32_t *dec_acc;               /* fused decode: x_proj sums [xw], zero between calls */
    unsigned *dec_counter;
    float *cstate, *cdt;            /* scan chunk carries for up to chunk_cap (chunks x sequences) */
    int chunk_cap, sm_count;
    void *lt_ws, *blas_ws;
    int logit_rows, last_B, last_T;
    int prof_on, prof_n;            /* i8g_profile: an event after each op and the op it ends */
    cudaEvent_t *prof_ev;
    unsigned char *prof_cat;
    double prof_ms[16];
    cudaGraphExec_t graph;          /* decode step graph and what it was captured for */
    const i8g_state *graph_state;   /* the host struct may be freed and another made at its address: */
    const int8_t *graph_conv;       /* the device buffers and batch it was captured with are the key */
    const float *graph_ssm;
    int graph_B, graph_logits;
    void *arena;
    size_t bytes;
};

/* ---------------------------------------------------------------- sizes, memory */

static int in_dim(const mq_config *c) {
    return c->arch == MQ_MAMBA1 ? 2 * c->d_inner : 2 * c->d_inner + 2 * c->n_groups * c->d_state + c->n_heads;
}
static int conv_dim(const mq_config *c) {
    return c->arch == MQ_MAMBA1 ? c->d_inner : c->d_inner + 2 * c->n_groups * c->d_state;
}
static int xp_dim(const mq_config *c) { return c->arch == MQ_MAMBA1 ? c->dt_rank + 2 * c->d_state : 0; }

static int dev_alloc(void **p, size_t n, const char *what) {
    cudaError_t e = cudaMalloc(p, n ? n : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return mq_fail("GPU: cannot allocate %.1f MiB for %s: %s", n / 1048576.0, what, cudaGetErrorString(e));
    }
    return 0;
}

/* two passes: base NULL adds up the size, then the same calls hand out 256-byte aligned pointers */
typedef struct { char *base; size_t off; } carver;
static void *carve(carver *c, size_t bytes) {
    size_t o = (c->off + 255) & ~(size_t)255;
    c->off = o + bytes;
    return c->base ? c->base + o : NULL;
}
#define CARVE(c, T, n) ((T *)carve((c), sizeof(T) * (size_t)(n)))

static int check_shapes(const mq_config *c) {
    if (c->d_conv < 1 || c->d_conv > 8) return mq_fail("int8 GPU pass: d_conv %d unsupported (1..8)", c->d_conv);
    if (c->d_state < 1 || c->d_state > 128) return mq_fail("int8 GPU pass: d_state %d unsupported (1..128)", c->d_state);
    if (c->arch == MQ_MAMBA2 && (c->n_heads * c->head_dim != c->d_inner || c->n_groups < 1 || c->n_heads % c->n_groups))
        return mq_fail("int8 GPU pass: Mamba2 heads %d x %d, groups %d do not fit d_inner %d", c->n_heads, c->head_dim,
                       c->n_groups, c->d_inner);
    return 0;
}

/* Can decode steps of one sequence take the fused kernels (ssm/int8_kern.h lists what they need)? */
static void decide_fused(i8g_model *g) {
    const mq_config *c = &g->cfg;
    g->had_m = 1, g->had_p = 0;
    if (g->hadamard) had_factor(c->d_inner, &g->had_m, &g->had_p), g->had_p = 1 << g->had_p;
    g->had_log_p = 0;
    if (g->hadamard) had_factor(c->d_inner, NULL, &g->had_log_p);
    g->dec_fused = c->d_model % 64 == 0 && c->d_inner % 64 == 0 && c->d_inner <= 8192 && c->d_model <= 4096 &&
                   c->d_conv <= 8 && (!g->hadamard || (g->had_m <= 32 && g->had_log_p >= 1)) &&
                   (c->arch != MQ_MAMBA1 || (c->dt_rank <= 512 && xp_dim(c) <= 1024));
}

static int g_decode_fused = 1;
extern "C" void i8g_set_decode_fused(int on) { g_decode_fused = on; }

static void layout_model(i8g_model *g, carver *cv, int lm_quant) {
    const mq_config *c = &g->cfg;
    const int D = c->d_model, E = c->d_inner, in = in_dim(c), cd = conv_dim(c), K = c->d_conv, V = c->vocab_size;
    g->embed = CARVE(cv, half, (size_t)V * D);
    g->lm16 = NULL, g->lm_q = NULL, g->lm_sw = NULL;
    if (lm_quant) { g->lm_q = CARVE(cv, int8_t, (size_t)V * D); g->lm_sw = CARVE(cv, float, V); }
    else g->lm16 = c->tie_embeddings ? g->embed : CARVE(cv, half, (size_t)V * D);
    g->norm_f = CARVE(cv, float, D);
    for (int l = 0; l < c->n_layer; l++) {
        i8g_layer *L = &g->layers[l]; /* the scalar scales are set after both passes */
        memset(L, 0, sizeof *L);
        L->norm_w = CARVE(cv, float, D);
        L->in_w = CARVE(cv, int8_t, (size_t)in * D);
        L->in_sw = CARVE(cv, float, in);
        L->in_qs = CARVE(cv, float, in);
        if (c->proj_bias) L->in_b = CARVE(cv, float, in);
        L->conv_w = CARVE(cv, int8_t, (size_t)cd * K);
        L->conv_sw = CARVE(cv, float, cd);
        L->conv_sin = CARVE(cv, float, cd);
        L->conv_sout = CARVE(cv, float, cd);
        if (c->conv_bias) L->conv_b = CARVE(cv, float, cd);
        L->out_w = CARVE(cv, int8_t, (size_t)D * E);
        L->out_sw = CARVE(cv, float, D);
        if (c->proj_bias) L->out_b = CARVE(cv, float, D);
        if (c->arch == MQ_MAMBA1) {
            const int xw = xp_dim(c);
            L->A = CARVE(cv, float, (size_t)E * c->d_state);
            L->D = CARVE(cv, float, E);
            L->xp_w = CARVE(cv, int8_t, (size_t)xw * E);
            L->xp_sw = CARVE(cv, float, xw);
            L->xp_qs = CARVE(cv, float, xw);
            L->dt_w = CARVE(cv, int8_t, (size_t)E * c->dt_rank);
            L->dt_sw = CARVE(cv, float, E);
            L->dt_qs = CARVE(cv, float, E);
            L->dt_b = CARVE(cv, float, E);
        } else {
            L->A = CARVE(cv, float, c->n_heads);
            L->D = CARVE(cv, float, c->n_heads);
            L->dt_bias = CARVE(cv, float, c->n_heads);
            L->gnorm_w = CARVE(cv, float, E);
        }
    }
}

static i8g_model *model_alloc(const mq_config *cfg, int lm_quant) {
    const char *why;
    if (!gpu_available(&why)) { mq_fail("no usable GPU: %s", why); return NULL; }
    if (check_shapes(cfg)) return NULL;
    i8g_model *g = (i8g_model *)mq_calloc(1, sizeof *g);
    g->cfg = *cfg;
    g->layers = (i8g_layer *)mq_calloc(cfg->n_layer, sizeof(i8g_layer));
    carver cv = {NULL, 0};
    layout_model(g, &cv, lm_quant);
    g->bytes = cv.off;
    if (dev_alloc(&g->arena, g->bytes, "the int8 model")) { free(g->layers); free(g); return NULL; }
    cv.base = (char *)g->arena;
    cv.off = 0;
    layout_model(g, &cv, lm_quant);
    const size_t table = (size_t)cfg->vocab_size * cfg->d_model * 2;
    g->decode_bytes = g->bytes - (lm_quant || !cfg->tie_embeddings ? table : 0);
    return g;
}

void i8g_model_free(i8g_model *g) {
    if (!g) return;
    CUDA_CHECK(cudaFree(g->arena));
    free(g->layers);
    free(g);
}
const mq_config *i8g_config(const i8g_model *g) { return &g->cfg; }
size_t i8g_model_bytes(const i8g_model *g) { return g->bytes; }
size_t i8g_decode_bytes(const i8g_model *g) { return g->decode_bytes; }

/* ---------------------------------------------------------------- upload */

static void put(void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
static void put_f32(float *dst, const float *src, size_t n) { put(dst, src, n * sizeof(float)); }
static void put_const(float *dst, size_t n, float v) {
    float *h = (float *)mq_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) h[i] = v;
    put_f32(dst, h, n);
    free(h);
}
/* FP16 through an FP32 staging buffer on the device (the values are FP16-exact: no rounding) */
static void put_f16(half *dst, const float *src, size_t n, float *stage) {
    put(stage, src, n * sizeof(float));
    k8_f32_to_f16(dst, stage, n, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
}
i8g_model *i8g_upload(const q_model *qm) {
    const mq_config *c = &qm->cfg;
    const int D = c->d_model, E = c->d_inner, in = in_dim(c), cd = conv_dim(c), K = c->d_conv, V = c->vocab_size;
    const int N = c->d_state, xw = xp_dim(c), H = c->n_heads;
    if (check_shapes(c)) return NULL;
    if (qm->hadamard_n && qm->hadamard_n != E) {
        mq_fail("int8 GPU pass: Hadamard order %d, expected d_inner %d", qm->hadamard_n, E);
        return NULL;
    }
    if (qm->hadamard_n && (E > HAD_CUDA_MAX_N || had_factor(E, NULL, NULL))) return NULL;
    i8_plan p; /* scales and weights checked, per-column arrays made, before the GPU is touched */
    if (i8_plan_build(qm, &p)) return NULL;
    const int lm_quant = qm->lm_head_q.q != NULL;
    mq_config cfg = *c;
    cfg.tie_embeddings = !lm_quant && qm->lm_head == NULL; /* an FP16 lm_head of its own when untied */
    i8g_model *g = model_alloc(&cfg, lm_quant);
    if (!g) { i8_plan_free(&p); return NULL; }
    g->hadamard = qm->hadamard_n != 0;
    g->lm_in_scale = qm->lm_head_in_scale;
    const size_t big = (size_t)V * D;
    float *stage;
    if (dev_alloc((void **)&stage, big * sizeof(float), "the upload staging buffer")) {
        i8g_model_free(g);
        i8_plan_free(&p);
        return NULL;
    }
    put_f16(g->embed, qm->embed, big, stage);
    if (g->lm16 && g->lm16 != g->embed) put_f16(g->lm16, qm->lm_head, big, stage);
    if (lm_quant) {
        put(g->lm_q, qm->lm_head_q.q, big);
        put_f32(g->lm_sw, p.lm_sw, V);
    }
    put_f32(g->norm_f, qm->norm_f, D);
    for (int l = 0; l < c->n_layer; l++) {
        const q_layer *Q = &qm->layers[l];
        const i8_plan_layer *P = &p.layers[l];
        i8g_layer *L = &g->layers[l];
        L->s_in = P->s_in, L->s_u = P->s_u, L->s_xp = P->s_xp, L->s_dt = P->s_dt, L->s_z = P->s_z;
        L->s_B = P->s_B, L->s_C = P->s_C, L->s_y = P->s_y, L->s_conv0 = P->s_conv0;
        put_f32(L->norm_w, Q->norm_w, D);
        put(L->in_w, Q->in_proj.q, (size_t)in * D);
        put_f32(L->in_sw, P->in_sw, in);
        put_f32(L->in_qs, P->in_qs, in);
        if (L->in_b) put_f32(L->in_b, Q->in_proj_b, in);
        put(L->conv_w, Q->conv1d.q, (size_t)cd * K);
        put_f32(L->conv_sw, P->conv_sw, cd);
        put_f32(L->conv_sin, P->conv_sin, cd);
        put_f32(L->conv_sout, P->conv_sout, cd);
        if (L->conv_b) put_f32(L->conv_b, Q->conv_b, cd);
        put(L->out_w, Q->out_proj.q, (size_t)D * E);
        put_f32(L->out_sw, P->out_sw, D);
        if (L->out_b) put_f32(L->out_b, Q->out_proj_b, D);
        if (c->arch == MQ_MAMBA1) {
            put_f32(L->A, P->A, (size_t)E * N);
            put_f32(L->D, Q->D, E);
            put(L->xp_w, Q->x_proj.q, (size_t)xw * E);
            put_f32(L->xp_sw, P->xp_sw, xw);
            put_f32(L->xp_qs, P->xp_qs, xw);
            put(L->dt_w, Q->dt_proj.q, (size_t)E * c->dt_rank);
            put_f32(L->dt_sw, P->dt_sw, E);
            put_f32(L->dt_qs, P->dt_qs, E);
            put_f32(L->dt_b, Q->dt_proj_b, E);
        } else {
            put_f32(L->A, P->A, H);
            put_f32(L->D, Q->D, H);
            put_f32(L->dt_bias, Q->dt_bias, H);
            put_f32(L->gnorm_w, Q->gnorm_w, E);
        }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(stage));
    i8_plan_free(&p);
    decide_fused(g);
    return g;
}

/* ---------------------------------------------------------------- random model (benchmarks) */

i8g_model *i8g_model_random(const mq_config *c, int hadamard, uint64_t seed) {
    mq_config cfg = *c;
    cfg.tie_embeddings = 1;
    i8g_model *g = model_alloc(&cfg, 0);
    if (!g) return NULL;
    const int D = c->d_model, E = c->d_inner, in = in_dim(c), cd = conv_dim(c), K = c->d_conv, N = c->d_state;
    const int xw = xp_dim(c);
    g->hadamard = hadamard && had_factor(E, NULL, NULL) == 0;
    mq_clear_error();
    uint64_t s = seed * 1000003ull + 1;
    k8_fill_f16(g->embed, (size_t)c->vocab_size * D, s++, 0.05f, 0);
    put_const(g->norm_f, D, 1.f);
    /* int8 uniform in [-127, 127] has std ~73: sw = 1 / (73 sqrt(K)) gives weights of std 1/sqrt(K) */
    auto wsc = [](int k) { return 1.f / (73.f * sqrtf((float)k)); };
    float *A = (float *)mq_malloc(sizeof(float) * (size_t)E * N);
    for (int e = 0; e < E; e++)
        for (int n = 0; n < N; n++) A[(size_t)e * N + n] = c->arch == MQ_MAMBA1 ? -(float)(n + 1) : -(float)(1 + e % 16);
    for (int l = 0; l < c->n_layer; l++) {
        i8g_layer *L = &g->layers[l];
        L->s_in = 4.f / 127, L->s_u = 3.f / 127, L->s_xp = 4.f / 127, L->s_dt = 4.f / 127, L->s_z = 4.f / 127;
        L->s_B = L->s_C = 4.f / 127, L->s_y = 2.f / 127, L->s_conv0 = 4.f / 127;
        put_const(L->norm_w, D, 1.f);
        k8_fill_i8(L->in_w, (size_t)in * D, s++, 0);
        put_const(L->in_sw, in, wsc(D));
        put_const(L->in_qs, in, 4.f / 127);
        if (L->in_b) put_const(L->in_b, in, 0.f);
        k8_fill_i8(L->conv_w, (size_t)cd * K, s++, 0);
        put_const(L->conv_sw, cd, wsc(K));
        put_const(L->conv_sin, cd, 4.f / 127);
        put_const(L->conv_sout, cd, 3.f / 127);
        if (L->conv_b) put_const(L->conv_b, cd, 0.f);
        k8_fill_i8(L->out_w, (size_t)D * E, s++, 0);
        put_const(L->out_sw, D, wsc(E));
        if (L->out_b) put_const(L->out_b, D, 0.f);
        if (c->arch == MQ_MAMBA1) {
            put_f32(L->A, A, (size_t)E * N);
            put_const(L->D, E, 1.f);
            k8_fill_i8(L->xp_w, (size_t)xw * E, s++, 0);
            put_const(L->xp_sw, xw, wsc(E));
            put_const(L->xp_qs, xw, 4.f / 127);
            k8_fill_i8(L->dt_w, (size_t)E * c->dt_rank, s++, 0);
            put_const(L->dt_sw, E, wsc(c->dt_rank));
            put_const(L->dt_qs, E, 4.f / 127);
            put_const(L->dt_b, E, -4.f);
        } else {
            put_f32(L->A, A, c->n_heads);
            put_const(L->D, c->n_heads, 1.f);
            put_const(L->dt_bias, c->n_heads, -4.f);
            put_const(L->gnorm_w, E, 1.f);
        }
    }
    free(A);
    CUDA_CHECK(cudaDeviceSynchronize());
    decide_fused(g);
    return g;
}

/* ---------------------------------------------------------------- decode state */

i8g_state *i8g_state_new(const i8g_model *g, int batch) {
    const mq_config *c = &g->cfg;
    if (batch < 1) { mq_fail("int8 GPU state: batch %d < 1", batch); return NULL; }
    i8g_state *s = (i8g_state *)mq_calloc(1, sizeof *s);
    s->g = g;
    s->batch = batch;
    s->conv_per_layer = (size_t)batch * conv_dim(c) * (c->d_conv - 1);
    s->ssm_per_layer = (size_t)batch * c->d_inner * c->d_state;
    if (dev_alloc((void **)&s->conv, s->conv_per_layer * c->n_layer, "the int8 conv state") ||
        dev_alloc((void **)&s->ssm, sizeof(float) * s->ssm_per_layer * c->n_layer, "the SSM state")) {
        i8g_state_free(s);
        return NULL;
    }
    i8g_state_reset(s);
    return s;
}

void i8g_state_reset(i8g_state *s) {
    const int L = s->g->cfg.n_layer;
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemset(s->conv, 0, s->conv_per_layer * L));
    CUDA_CHECK(cudaMemset(s->ssm, 0, sizeof(float) * s->ssm_per_layer * L));
    CUDA_CHECK(cudaDeviceSynchronize());
}

void i8g_state_free(i8g_state *s) {
    if (!s) return;
    if (s->conv) CUDA_CHECK(cudaFree(s->conv));
    if (s->ssm) CUDA_CHECK(cudaFree(s->ssm));
    free(s);
}

/* ---------------------------------------------------------------- workspace */

static void layout_ws(i8g_ws *w, carver *cv) {
    const mq_config *c = &w->g->cfg;
    const size_t R = w->rows, D = c->d_model, E = c->d_inner, in = in_dim(c), cd = conv_dim(c), xw = xp_dim(c);
    size_t maxn = in > D ? in : D;
    if (xw > maxn) maxn = xw;
    if (E > maxn) maxn = E;
    w->d_tokens = CARVE(cv, int32_t, R);
    w->d_targets = CARVE(cv, int32_t, R);
    w->resid = CARVE(cv, float, R * D);
    w->hid32 = CARVE(cv, float, R * D);
    w->nll = CARVE(cv, float, R);
    w->hid16 = CARVE(cv, half, R * D);
    w->h8 = CARVE(cv, int8_t, R * D);
    w->xz8 = CARVE(cv, int8_t, R * in);
    w->xc8 = CARVE(cv, int8_t, R * cd);
    w->xdbl8 = xw ? CARVE(cv, int8_t, R * xw) : NULL;
    w->dt8 = c->arch == MQ_MAMBA1 ? CARVE(cv, int8_t, R * E) : NULL;
    w->y16 = CARVE(cv, half, R * E);
    w->y32 = c->arch == MQ_MAMBA2 ? CARVE(cv, float, R * E) : NULL;
    w->g16 = c->arch == MQ_MAMBA2 ? CARVE(cv, half, R * E) : NULL;
    w->yq8 = CARVE(cv, int8_t, R * E);
    w->delta16 = CARVE(cv, half, R * D);
    w->acc = CARVE(cv, int32_t, R * maxn);
    w->resid2 = CARVE(cv, float, D);
    w->dec_acc = CARVE(cv, int32_t, xw + 1);
    w->dec_counter = CARVE(cv, unsigned, 1);
    w->state_scratch = CARVE(cv, float, (size_t)w->batch * E * c->d_state);
    w->cstate = CARVE(cv, float, (size_t)w->chunk_cap * E * c->d_state);
    w->cdt = CARVE(cv, float, (size_t)w->chunk_cap * E);
    w->logits = CARVE(cv, float, (size_t)w->logit_rows * c->vocab_size);
    w->lt_ws = carve(cv, LT_WS_BYTES);
    w->blas_ws = carve(cv, BLAS_WS_BYTES);
}

i8g_ws *i8g_ws_new(const i8g_model *g, int batch, int seqlen) {
    const mq_config *c = &g->cfg;
    if (batch < 1 || seqlen < 1) { mq_fail("int8 GPU workspace: batch %d x seqlen %d", batch, seqlen); return NULL; }
    i8g_ws *w = (i8g_ws *)mq_calloc(1, sizeof *w);
    w->g = g;
    w->batch = batch;
    w->seqlen = seqlen;
    w->rows = batch * seqlen;
    size_t lr = LOGIT_BYTES / ((size_t)c->vocab_size * sizeof(float));
    if (lr > (size_t)w->rows) lr = w->rows;
    w->logit_rows = lr < (size_t)batch ? batch : (int)lr;
    CUDA_CHECK(cudaDeviceGetAttribute(&w->sm_count, cudaDevAttrMultiProcessorCount, 0));
    for (int b = 1; b <= batch; b++) { /* the most carries any call of this workspace needs */
        int need = k8_scan_chunks(c, b, seqlen, w->sm_count) * b;
        if (need > w->chunk_cap) w->chunk_cap = need;
    }
    carver cv = {NULL, 0};
    layout_ws(w, &cv);
    w->bytes = cv.off;
    if (dev_alloc(&w->arena, w->bytes, "the int8 workspace")) { free(w); return NULL; }
    cv.base = (char *)w->arena;
    cv.off = 0;
    layout_ws(w, &cv);
    CUDA_CHECK(cudaMemset(w->dec_acc, 0, sizeof(int32_t) * (xp_dim(c) + 1)));
    CUDA_CHECK(cudaMemset(w->dec_counter, 0, sizeof(unsigned)));
    CUDA_CHECK(cudaStreamCreateWithFlags(&w->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&w->blas));
    CUBLAS_CHECK(cublasSetStream(w->blas, w->stream));
    CUBLAS_CHECK(cublasSetWorkspace(w->blas, w->blas_ws, BLAS_WS_BYTES));
    i8_gemm_ctx_init(&w->gc, w->stream, w->lt_ws, LT_WS_BYTES);
    return w;
}

void i8g_ws_free(i8g_ws *w) {
    if (!w) return;
    if (w->prof_ev) {
        for (int i = 0; i < PROF_MAX; i++) CUDA_CHECK(cudaEventDestroy(w->prof_ev[i]));
        free(w->prof_ev), free(w->prof_cat);
    }
    if (w->graph) CUDA_CHECK(cudaGraphExecDestroy(w->graph));
    i8_gemm_ctx_free(&w->gc);
    CUBLAS_CHECK(cublasDestroy(w->blas));
    CUDA_CHECK(cudaStreamDestroy(w->stream));
    CUDA_CHECK(cudaFree(w->arena));
    free(w);
}

/* ---------------------------------------------------------------- profiling */

enum { P_START, P_EMBED, P_NORM, P_IN_PROJ, P_CONV, P_X_PROJ, P_DT_PROJ, P_SCAN, P_GNORM, P_YQUANT, P_OUT_PROJ,
       P_LM_HEAD, P_NCAT };
static const char *prof_names[P_NCAT] = {"", "embed", "rmsnorm", "in_proj", "conv", "x_proj", "dt_proj", "scan",
                                         "gated_norm", "y_quant", "out_proj", "lm_head"};

static void mark(i8g_ws *w, int cat) {
    if (!w->prof_on || w->prof_n >= PROF_MAX) return;
    cudaStreamCaptureStatus cs;
    CUDA_CHECK(cudaStreamIsCapturing(w->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) return;
    CUDA_CHECK(cudaEventRecord(w->prof_ev[w->prof_n], w->stream));
    w->prof_cat[w->prof_n++] = (unsigned char)cat;
}
static void prof_collect(i8g_ws *w) { /* after a sync of the stream */
    for (int i = 1; i < w->prof_n; i++) {
        if (w->prof_cat[i] == P_START) continue;
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, w->prof_ev[i - 1], w->prof_ev[i]));
        w->prof_ms[w->prof_cat[i]] += ms;
    }
    w->prof_n = 0;
}
void i8g_profile(i8g_ws *w, int on) {
    if (on && !w->prof_ev) {
        w->prof_ev = (cudaEvent_t *)mq_malloc(sizeof(cudaEvent_t) * PROF_MAX);
        w->prof_cat = (unsigned char *)mq_malloc(PROF_MAX);
        for (int i = 0; i < PROF_MAX; i++) CUDA_CHECK(cudaEventCreate(&w->prof_ev[i]));
    }
    w->prof_on = on;
    w->prof_n = 0;
}
int i8g_profile_report(i8g_ws *w, char *buf, size_t n) {
    int k = 0;
    if (n) buf[0] = 0;
    for (int c = 1; c < P_NCAT; c++)
        if (w->prof_ms[c] > 0 && (size_t)k < n)
            k += snprintf(buf + k, n - k, "%s%s %.2f", k ? ", " : "", prof_names[c], w->prof_ms[c]);
    memset(w->prof_ms, 0, sizeof w->prof_ms);
    return k;
}

/* ---------------------------------------------------------------- forward */

static void hook(const i8g_hooks *hk, i8g_ws *w, int layer, int role, const void *x, i8g_dtype dt, float scale,
                 int rows, int cols, int ld) {
    if (hk && hk->fn) hk->fn(hk->ctx, layer, role, x, dt, scale, rows, cols, ld, (void *)w->stream);
}

static i8_epi epi(float sx, const float *sw, const float *bias, const float *qs, int kind) {
    i8_epi e;
    e.sx = sx, e.sw = sw, e.bias = bias, e.qs = qs, e.kind = kind;
    return e;
}

/* The Mamba2 scan of layer L on the workspace's conv output (x, B, C) and in_proj's dt, into y32. */
static scan8_m2_args m2_scan_args(const mq_config *c, const i8g_layer *L, const i8g_ws *w, float *ssm_state,
                                  int state_in, int B, int T, int nc) {
    const int E = c->d_inner, cd = conv_dim(c), GN = c->n_groups * c->d_state;
    scan8_m2_args a;
    a.x = w->xc8, a.ldx = cd, a.sx = L->s_u;
    a.dt = w->xz8 + E + cd, a.lddt = in_dim(c), a.sdt = L->s_dt, a.dt_bias = L->dt_bias, a.lo = c->dt_limit_min,
    a.hi = c->dt_limit_max;
    a.Bm = w->xc8 + E, a.Cm = w->xc8 + E + GN, a.ldbc = cd, a.sb = L->s_B, a.sc = L->s_C;
    a.A = L->A, a.D = L->D;
    a.y = w->y32, a.ldy = E;
    a.state = ssm_state, a.state_in = state_in;
    a.B = B, a.T = T, a.H = c->n_heads, a.P = c->head_dim, a.G = c->n_groups, a.N = c->d_state;
    a.nc = nc, a.cstate = w->cstate, a.cdt = w->cdt;
    return a;
}

/* One token of one sequence (w->d_tokens[0]) on state s through the fused kernels: per layer
 * norm+in_proj, conv(+x_proj), (dt_proj+)scan, y quantize, out_proj. Same outputs as forward(). */
static void decode_fused(const i8g_model *g, i8g_ws *w, i8g_state *s) {
    const mq_config *c = &g->cfg;
    const cudaStream_t st = w->stream;
    const int D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, in = in_dim(c), cd = conv_dim(c);
    float *r_cur = w->resid, *r_next = w->resid2;
    k8_embed(r_cur, g->embed, w->d_tokens, 1, D, st);
    for (int l = 0; l < c->n_layer; l++) {
        const i8g_layer *L = &g->layers[l];
        int8_t *conv_state = s->conv + l * s->conv_per_layer;
        float *ssm_state = s->ssm + l * s->ssm_per_layer;
        k8_dec_norm_linear(r_cur, l ? w->delta16 : NULL, r_next, L->norm_w, L->s_in, c->norm_eps, L->in_w, in, D,
                           epi(L->s_in, L->in_sw, L->in_b, L->in_qs, EPI_I8), w->xz8, w->sm_count, st);
        float *t = r_cur; r_cur = r_next, r_next = t;
        dec_yquant_args ya;
        memset(&ya, 0, sizeof ya);
        if (c->arch == MQ_MAMBA1) {
            const int R_ = c->dt_rank, xw = xp_dim(c);
            dec_conv_xproj_args ca;
            ca.x = w->xz8, ca.state = conv_state, ca.xc = w->xc8;
            ca.cw = L->conv_w, ca.csw = L->conv_sw, ca.csin = L->conv_sin, ca.cb = L->conv_b, ca.csout = L->conv_sout;
            ca.K = K, ca.W = L->xp_w, ca.N = xw, ca.E = E, ca.e = epi(L->s_u, L->xp_sw, NULL, L->xp_qs, EPI_I8);
            ca.out = w->xdbl8, ca.acc = w->dec_acc, ca.counter = w->dec_counter;
            k8_dec_conv_xproj(ca, st);
            dec_dt_scan_args sa;
            sa.xdbl = w->xdbl8, sa.R = R_, sa.s_xp = L->s_xp;
            sa.dtw = L->dt_w, sa.dt_sw = L->dt_sw, sa.dt_qs = L->dt_qs, sa.dt_bias = L->dt_b, sa.sdt = L->s_dt;
            sa.u = w->xc8, sa.su = L->s_u, sa.sb = L->s_B, sa.sc = L->s_C;
            sa.z = w->xz8 + E, sa.sz = L->s_z, sa.A = L->A, sa.D = L->D;
            sa.state = ssm_state, sa.y = w->y16, sa.E = E, sa.N = N;
            k8_dec_dt_scan(sa, st);
            ya.y16 = w->y16;
        } else {
            const int8_t *z8 = w->xz8, *xbc8 = w->xz8 + E;
            k8_dec_conv(w->xc8, xbc8, conv_state, L->conv_w, L->conv_sw, L->conv_sin, L->conv_b, L->conv_sout, cd, K,
                        st);
            k8_scan_m2(m2_scan_args(c, L, w, ssm_state, 1, 1, 1, 1), st);
            ya.y32 = w->y32, ya.z = z8, ya.sz = L->s_z, ya.gnorm_w = L->gnorm_w, ya.eps = c->norm_eps;
            ya.nbg = c->norm_before_gate;
        }
        ya.E = E, ya.m = g->had_m, ya.P = g->hadamard ? g->had_p : 0, ya.log_p = g->had_log_p;
        ya.s = L->s_y, ya.q = w->yq8;
        ya.norm = (float)(1.0 / sqrt((double)E));
        k8_dec_yquant(ya, st);
        k8_dec_linear(w->yq8, L->out_w, D, E, epi(L->s_y, L->out_sw, L->out_b, NULL, EPI_F16), w->delta16, w->sm_count,
                      st);
    }
    k8_add_rmsnorm(r_cur, w->delta16, g->norm_f, g->lm_q ? w->h8 : NULL, g->lm_in_scale, w->hid16, w->hid32, 1, D,
                   c->norm_eps, st);
    w->last_B = 1;
    w->last_T = 1;
}

/* B sequences of T tokens already in w->d_tokens; s: state to continue and update, or NULL. */
static void forward(const i8g_model *g, i8g_ws *w, int B, int T, i8g_state *s, const i8g_hooks *hk) {
    const mq_config *c = &g->cfg;
    const cudaStream_t st = w->stream;
    const int R = B * T, D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv;
    const int in = in_dim(c), cd = conv_dim(c);
    if (B == 1 && T == 1 && s && !hk && g->dec_fused && g_decode_fused && !w->prof_on) {
        decode_fused(g, w, s);
        return;
    }
    int nc = k8_scan_chunks(c, B, T, w->sm_count);
    if (nc * B > w->chunk_cap) nc = w->chunk_cap / B > 0 ? w->chunk_cap / B : 1;
    mark(w, P_START);
    k8_embed(w->resid, g->embed, w->d_tokens, R, D, st);
    mark(w, P_EMBED);
    for (int l = 0; l < c->n_layer; l++) {
        const i8g_layer *L = &g->layers[l];
        int8_t *conv_state = s ? s->conv + l * s->conv_per_layer : NULL;
        float *ssm_state = s ? s->ssm + l * s->ssm_per_layer : w->state_scratch;

        k8_add_rmsnorm(w->resid, l ? w->delta16 : NULL, L->norm_w, w->h8, L->s_in, NULL, NULL, R, D, c->norm_eps, st);
        mark(w, P_NORM);
        if (l) hook(hk, w, l - 1, I8G_RESID, w->resid, I8G_F32, 0.f, R, D, D);
        hook(hk, w, l, MQ_ACT_IN_PROJ_IN, w->h8, I8G_I8, L->s_in, R, D, D);
        i8_linear(&w->gc, w->h8, D, L->in_w, R, in, D, epi(L->s_in, L->in_sw, L->in_b, L->in_qs, EPI_I8), w->xz8, in,
                  w->acc);
        mark(w, P_IN_PROJ);

        const half *ssm_out;
        if (c->arch == MQ_MAMBA1) {
            /* in_proj output: x [0, E), z [E, 2E) */
            const int8_t *x8 = w->xz8, *z8 = w->xz8 + E;
            const int R_ = c->dt_rank, xw = xp_dim(c);
            hook(hk, w, l, MQ_ACT_CONV_IN, x8, I8G_I8, L->s_conv0, R, E, in);
            hook(hk, w, l, MQ_ACT_Z, z8, I8G_I8, L->s_z, R, E, in);
            k8_conv1d(w->xc8, E, x8, in, conv_state, conv_state != NULL, L->conv_w, L->conv_sw, L->conv_sin, L->conv_b,
                      L->conv_sout, B, T, E, K, st);
            mark(w, P_CONV);
            hook(hk, w, l, MQ_ACT_SSM_X, w->xc8, I8G_I8, L->s_u, R, E, E);
            i8_linear(&w->gc, w->xc8, E, L->xp_w, R, xw, E, epi(L->s_u, L->xp_sw, NULL, L->xp_qs, EPI_I8), w->xdbl8, xw,
                      w->acc);
            mark(w, P_X_PROJ);
            hook(hk, w, l, MQ_ACT_X_PROJ_OUT, w->xdbl8, I8G_I8, L->s_xp, R, xw, xw);
            /* dt_proj without its bias (Quamba: the scan adds it), requantized */
            i8_linear(&w->gc, w->xdbl8, xw, L->dt_w, R, E, R_, epi(L->s_xp, L->dt_sw, NULL, L->dt_qs, EPI_I8), w->dt8,
                      E, w->acc);
            mark(w, P_DT_PROJ);
            hook(hk, w, l, MQ_ACT_DT, w->dt8, I8G_I8, L->s_dt, R, E, E);
            scan8_m1_args a;
            a.u = w->xc8, a.ldu = E, a.su = L->s_u;
            a.dt = w->dt8, a.lddt = E, a.sdt = L->s_dt, a.dt_bias = L->dt_b;
            a.Bm = w->xdbl8 + R_, a.Cm = w->xdbl8 + R_ + N, a.ldbc = xw, a.sb = L->s_B, a.sc = L->s_C;
            a.z = z8, a.ldz = in, a.sz = L->s_z;
            a.A = L->A, a.D = L->D;
            a.y = w->y16, a.ldy = E;
            a.state = ssm_state, a.state_in = s != NULL;
            a.B = B, a.T = T, a.Di = E, a.N = N;
            a.nc = nc, a.cstate = w->cstate, a.cdt = w->cdt;
            k8_scan_m1(a, st);
            mark(w, P_SCAN);
            hook(hk, w, l, MQ_ACT_SSM_STATE, ssm_state, I8G_F32, 0.f, B * E, N, N);
            ssm_out = w->y16;
        } else {
            /* in_proj output: z [0, E), xBC [E, E + cd), dt [E + cd, E + cd + H) */
            const int G = c->n_groups, H = c->n_heads, GN = G * N;
            const int8_t *z8 = w->xz8, *xbc8 = w->xz8 + E, *dt8 = w->xz8 + E + cd;
            hook(hk, w, l, MQ_ACT_CONV_IN, xbc8, I8G_I8, L->s_conv0, R, cd, in);
            hook(hk, w, l, MQ_ACT_Z, z8, I8G_I8, L->s_z, R, E, in);
            hook(hk, w, l, MQ_ACT_DT, dt8, I8G_I8, L->s_dt, R, H, in);
            k8_conv1d(w->xc8, cd, xbc8, in, conv_state, conv_state != NULL, L->conv_w, L->conv_sw, L->conv_sin,
                      L->conv_b, L->conv_sout, B, T, cd, K, st);
            mark(w, P_CONV);
            hook(hk, w, l, MQ_ACT_SSM_X, w->xc8, I8G_I8, L->s_u, R, E, cd);
            hook(hk, w, l, MQ_ACT_B, w->xc8 + E, I8G_I8, L->s_B, R, GN, cd);
            hook(hk, w, l, MQ_ACT_C, w->xc8 + E + GN, I8G_I8, L->s_C, R, GN, cd);
            k8_scan_m2(m2_scan_args(c, L, w, ssm_state, s != NULL, B, T, nc), st);
            mark(w, P_SCAN);
            hook(hk, w, l, MQ_ACT_SSM_STATE, ssm_state, I8G_F32, 0.f, B * E, N, N);
            /* one group over all of d_inner, as transformers and the CPU reference */
            k8_gated_rmsnorm(w->g16, E, w->y32, E, z8, in, L->s_z, L->gnorm_w, R, E, E, c->norm_eps,
                             c->norm_before_gate, st);
            mark(w, P_GNORM);
            ssm_out = w->g16;
        }
        hook(hk, w, l, MQ_ACT_SSM_OUT, ssm_out, I8G_F16, 0.f, R, E, E);
        if (g->hadamard) {
            if (had_cuda_transform_quant_f16(ssm_out, w->yq8, R, E, L->s_y, (void *)st))
                mq_die("int8 forward, layer %d: %s", l, mq_errmsg()); /* checked at upload */
        } else {
            k8_quant_f16(w->yq8, E, ssm_out, E, L->s_y, R, E, st);
        }
        mark(w, P_YQUANT);
        hook(hk, w, l, MQ_ACT_OUT_PROJ_IN, w->yq8, I8G_I8, L->s_y, R, E, E);
        i8_linear(&w->gc, w->yq8, E, L->out_w, R, D, E, epi(L->s_y, L->out_sw, L->out_b, NULL, EPI_F16), w->delta16, D,
                  w->acc);
        mark(w, P_OUT_PROJ);
    }
    k8_add_rmsnorm(w->resid, w->delta16, g->norm_f, g->lm_q ? w->h8 : NULL, g->lm_in_scale, w->hid16, w->hid32, R, D,
                   c->norm_eps, st);
    mark(w, P_NORM);
    hook(hk, w, c->n_layer - 1, I8G_RESID, w->resid, I8G_F32, 0.f, R, D, D);
    if (g->lm_q) hook(hk, w, -1, MQ_ACT_LM_HEAD_IN, w->h8, I8G_I8, g->lm_in_scale, R, D, D);
    else hook(hk, w, -1, MQ_ACT_LM_HEAD_IN, w->hid16, I8G_F16, 0.f, R, D, D);
    w->last_B = B;
    w->last_T = T;
}

static int upload_tokens(const i8g_model *g, i8g_ws *w, const int32_t *tokens, int n) {
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->cfg.vocab_size)
            return mq_fail("int8 GPU pass: token %d at position %d is outside the vocabulary (%d)", tokens[i], i,
                           g->cfg.vocab_size);
    CUDA_CHECK(cudaMemcpyAsync(w->d_tokens, tokens, sizeof(int32_t) * n, cudaMemcpyHostToDevice, w->stream));
    return 0;
}

static int check_call(const i8g_model *g, i8g_ws *w, int B, int T, const i8g_state *s) {
    if (w->g != g) return mq_fail("int8 GPU pass: workspace belongs to another model");
    if (B < 1 || T < 1 || B > w->batch || T > w->seqlen)
        return mq_fail("int8 GPU pass: batch %d x %d tokens does not fit the workspace (%d x %d)", B, T, w->batch,
                       w->seqlen);
    if (s && (s->g != g || s->batch != B))
        return mq_fail("int8 GPU pass: state is for batch %d of %s model, call has batch %d", s->batch,
                       s->g == g ? "this" : "another", B);
    return 0;
}

int i8g_prefill(const i8g_model *g, i8g_ws *w, const int32_t *tokens, int B, int T, i8g_state *s,
                const i8g_hooks *hk, float *hidden) {
    if (check_call(g, w, B, T, s) || upload_tokens(g, w, tokens, B * T)) return -1;
    forward(g, w, B, T, s, hk);
    if (hidden)
        CUDA_CHECK(cudaMemcpyAsync(hidden, w->hid32, sizeof(float) * (size_t)B * T * g->cfg.d_model,
                                   cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    prof_collect(w);
    return 0;
}

/* logits of rows [r0, r0+n) (n <= logit_rows) into w->logits */
static void lm_head_rows(const i8g_model *g, i8g_ws *w, int r0, int n) {
    const int D = g->cfg.d_model, V = g->cfg.vocab_size;
    if (g->lm_q)
        i8_linear(&w->gc, w->h8 + (size_t)r0 * D, D, g->lm_q, n, V, D, epi(g->lm_in_scale, g->lm_sw, NULL, NULL, EPI_F32),
                  w->logits, V, (int32_t *)w->logits); /* the epilogue works in place, element by element */
    else
        k8_gemm_f16_f32out(w->blas, w->hid16 + (size_t)r0 * D, D, g->lm16, w->logits, V, n, V, D);
}

int i8g_logits(const i8g_model *g, i8g_ws *w, int row0, int nrows, float *logits) {
    const int V = g->cfg.vocab_size;
    if (row0 < 0 || nrows < 0 || row0 + nrows > w->last_B * w->last_T)
        return mq_fail("int8 GPU logits: rows %d..%d beyond the %d rows of the last forward", row0, row0 + nrows,
                       w->last_B * w->last_T);
    for (int r = 0; r < nrows; r += w->logit_rows) {
        int n = nrows - r < w->logit_rows ? nrows - r : w->logit_rows;
        lm_head_rows(g, w, row0 + r, n);
        CUDA_CHECK(cudaMemcpyAsync(logits + (size_t)r * V, w->logits, sizeof(float) * (size_t)n * V,
                                   cudaMemcpyDeviceToHost, w->stream));
        CUDA_CHECK(cudaStreamSynchronize(w->stream));
    }
    return 0;
}

int i8g_step(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, float *hidden, float *logits) {
    if (!s) return mq_fail("int8 GPU step: no state");
    const int B = s->batch;
    if (check_call(g, w, B, 1, s) || upload_tokens(g, w, tokens, B)) return -1;
    forward(g, w, B, 1, s, NULL);
    if (logits) lm_head_rows(g, w, 0, B);
    if (hidden)
        CUDA_CHECK(cudaMemcpyAsync(hidden, w->hid32, sizeof(float) * (size_t)B * g->cfg.d_model, cudaMemcpyDeviceToHost,
                                   w->stream));
    if (logits)
        CUDA_CHECK(cudaMemcpyAsync(logits, w->logits, sizeof(float) * (size_t)B * g->cfg.vocab_size,
                                   cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    return 0;
}

/* Everything from the embedding to the logits in one graph launch; the tokens go to the fixed
 * w->d_tokens the graph reads before each launch. The graph holds device addresses: it is captured
 * again whenever the state's buffers or batch differ from the ones it was made for. */
static int step_graph(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, int want) {
    if (!s) return mq_fail("int8 GPU step: no state");
    const int B = s->batch;
    if (check_call(g, w, B, 1, s) || upload_tokens(g, w, tokens, B)) return -1;
    if (!w->graph || w->graph_state != s || w->graph_conv != s->conv || w->graph_ssm != s->ssm ||
        w->graph_B != B || w->graph_logits != want) {
        if (w->graph) CUDA_CHECK(cudaGraphExecDestroy(w->graph));
        cudaGraph_t graph;
        CUDA_CHECK(cudaStreamBeginCapture(w->stream, cudaStreamCaptureModeThreadLocal));
        forward(g, w, B, 1, s, NULL);
        if (want) lm_head_rows(g, w, 0, B);
        CUDA_CHECK(cudaStreamEndCapture(w->stream, &graph));
        CUDA_CHECK(cudaGraphInstantiate(&w->graph, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
        w->graph_state = s;
        w->graph_conv = s->conv, w->graph_ssm = s->ssm, w->graph_B = B;
        w->graph_logits = want;
    }
    CUDA_CHECK(cudaGraphLaunch(w->graph, w->stream));
    w->last_B = B;
    w->last_T = 1;
    return 0;
}

int i8g_step_graph(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, float *logits) {
    if (step_graph(g, w, s, tokens, logits != NULL)) return -1;
    if (logits)
        CUDA_CHECK(cudaMemcpyAsync(logits, w->logits, sizeof(float) * (size_t)s->batch * g->cfg.vocab_size,
                                   cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    return 0;
}

int i8g_step_async(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, int with_logits) {
    return step_graph(g, w, s, tokens, with_logits != 0);
}

void i8g_sync(i8g_ws *w) { CUDA_CHECK(cudaStreamSynchronize(w->stream)); }

int i8g_nll(const i8g_model *g, i8g_ws *w, const int32_t *tokens, int B, int T, const i8g_hooks *hk, float *nll,
            double *sum) {
    if (T < 2) return mq_fail("int8 GPU NLL: windows of %d tokens score nothing", T);
    if (i8g_prefill(g, w, tokens, B, T, NULL, hk, NULL)) return -1;
    const int R = B * T, V = g->cfg.vocab_size;
    int32_t *tg = (int32_t *)mq_malloc(sizeof(int32_t) * R);
    float *h = (float *)mq_malloc(sizeof(float) * R);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tg[b * T + t] = t < T - 1 ? tokens[b * T + t + 1] : -1;
    CUDA_CHECK(cudaMemcpyAsync(w->d_targets, tg, sizeof(int32_t) * R, cudaMemcpyHostToDevice, w->stream));
    for (int r = 0; r < R; r += w->logit_rows) {
        int n = R - r < w->logit_rows ? R - r : w->logit_rows;
        lm_head_rows(g, w, r, n);
        k8_nll(w->nll + r, w->logits, w->d_targets + r, n, V, w->stream);
    }
    CUDA_CHECK(cudaMemcpyAsync(h, w->nll, sizeof(float) * R, cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    double s = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T - 1; t++) {
            s += h[b * T + t];
            if (nll) nll[b * (T - 1) + t] = h[b * T + t];
        }
    *sum = s;
    free(tg);
    free(h);
    return 0;
}
