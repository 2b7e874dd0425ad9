/* The FP16 pass (BE_CUDA_F16 of ssm/backend.h): the weights on the GPU (FP16 matrices converted on
 * the device from the FP32 host model, or random for benchmarks) and the forward read top to bottom:
 * embedding, then per layer RMSNorm (fused with the residual add) -> in_proj -> conv1d+SiLU ->
 * (Mamba1: x_proj, dt_proj, selective scan gated by SiLU(z); Mamba2: SSD scan, gated RMSNorm) ->
 * out_proj, then norm_f; lm_head on top. Prefill and decode share this one path (decode = T of 1
 * continuing a carried state); the workspace, states, graphs and NLL are ssm/cuda_rt.cu's.
 * Precision: FP16 embedding / lm_head and projections (FP32 accumulate); FP32 A, D, dt biases, conv
 * weights, norm weights, the residual stream, norm / softplus / SiLU arithmetic and the SSM state.
 * Activations between ops are FP16 (what the int8 recipes quantize).
 * The same pass runs quamba2's W4A16 artifacts (be_cuda_open_w4a16): in_proj and out_proj as int4
 * codes with group scales (ssm/w4_gemv.cu: the 4-bit tensor-core GEMV for decode rows, dequantized to
 * FP16 for cuBLAS beyond), y rotated by H before out_proj, everything else the simulation's float model in
 * FP16; no activation is quantized in that mode, so FP16 rounding is the only difference from the
 * CPU simulation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hadamard/had.h"
#include "ssm/cuda_rt.h"

/* Device pointers into the weights arena. FP16 matrices, FP32 vectors. */
struct f16_layer {
    float *norm_w;
    half *in_proj;  float *in_proj_b;   /* bias NULL unless proj_bias */
    float *conv_w, *conv_b;             /* [conv_dim x d_conv] FP32, bias NULL unless conv_bias */
    half *out_proj; float *out_proj_b;
    rt_ssm ssm;                         /* A, D; Mamba2 dt_bias, gnorm_w */
    half *x_proj, *dt_proj; float *dt_proj_b; /* Mamba1 */
    /* W4A16: in_proj / out_proj as int4 (k_w4_repack's layout) + FP32 group scales, instead of the
     * FP16 matrices above (then NULL) */
    uint8_t *in4, *out4;
    float *in4_s, *out4_s;
};

struct f16_be {
    rt_be rt;
    half *embed, *lm_head;              /* lm_head == embed when tied */
    float *norm_f;
    f16_layer *layers;                  /* host array [n_layer] of device pointers */
    /* workspace: FP16 activations between the ops */
    half *h16, *xz16, *xc16, *xdbl16, *dt16, *y16, *g16, *delta16;
    /* W4A16: columns per scale of in_proj / out_proj (0: FP16 weights), y rotated before out_proj,
     * the largest row count the 4-bit GEMV takes (more: dequantized into wdq for cuBLAS) */
    int w4_gin, w4_gout, rotate_y, w4_gemv_max;
    half *wdq;
};

/* ---------------------------------------------------------------- weights */

/* A projection [rows x cols]: FP16, or (group > 0: W4A16) int4 codes in the mma layout and their scales. */
static void carve_proj(rt_carver *cv, int rows, int cols, int group, half **w16, uint8_t **w4, float **ws) {
    if (group) {
        *w4 = RT_CARVE(cv, uint8_t, k_w4_mma_bytes(rows, cols));
        *ws = RT_CARVE(cv, float, (size_t)rows * (cols / group));
    } else {
        *w16 = RT_CARVE(cv, half, (size_t)rows * cols);
    }
}

static void layout_weights(rt_be *r, rt_carver *cv) {
    f16_be *g = (f16_be *)r;
    const mq_config *c = &r->base.cfg;
    const int D = c->d_model, E = c->d_inner, in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c);
    g->embed = RT_CARVE(cv, half, (size_t)c->vocab_size * D);
    g->lm_head = c->tie_embeddings ? g->embed : RT_CARVE(cv, half, (size_t)c->vocab_size * D);
    g->norm_f = RT_CARVE(cv, float, D);
    for (int l = 0; l < c->n_layer; l++) {
        f16_layer *L = &g->layers[l];
        memset(L, 0, sizeof *L);
        L->norm_w = RT_CARVE(cv, float, D);
        carve_proj(cv, in, D, g->w4_gin, &L->in_proj, &L->in4, &L->in4_s);
        if (c->proj_bias) L->in_proj_b = RT_CARVE(cv, float, in);
        L->conv_w = RT_CARVE(cv, float, (size_t)cd * c->d_conv);
        if (c->conv_bias) L->conv_b = RT_CARVE(cv, float, cd);
        carve_proj(cv, D, E, g->w4_gout, &L->out_proj, &L->out4, &L->out4_s);
        if (c->proj_bias) L->out_proj_b = RT_CARVE(cv, float, D);
        rt_carve_ssm(cv, c, &L->ssm);
        if (c->arch == MQ_MAMBA1) {
            L->x_proj = RT_CARVE(cv, half, (size_t)(c->dt_rank + 2 * c->d_state) * E);
            L->dt_proj = RT_CARVE(cv, half, (size_t)E * c->dt_rank);
            L->dt_proj_b = RT_CARVE(cv, float, E);
        }
    }
}

/* ---------------------------------------------------------------- workspace */

static void layout_ws(rt_be *r, rt_carver *cv) {
    f16_be *g = (f16_be *)r;
    const mq_config *c = &r->base.cfg;
    const size_t R = r->ws.rows, D = c->d_model, E = c->d_inner;
    g->h16 = RT_CARVE(cv, half, R * D);
    g->xz16 = RT_CARVE(cv, half, R * cfg_in_proj_dim(c));
    g->xc16 = RT_CARVE(cv, half, R * cfg_conv_dim(c));
    g->xdbl16 = c->arch == MQ_MAMBA1 ? RT_CARVE(cv, half, R * (c->dt_rank + 2 * c->d_state)) : NULL;
    g->dt16 = c->arch == MQ_MAMBA1 ? RT_CARVE(cv, half, R * E) : NULL;
    g->y16 = RT_CARVE(cv, half, R * E);
    g->g16 = c->arch == MQ_MAMBA2 ? RT_CARVE(cv, half, R * E) : NULL;
    g->delta16 = RT_CARVE(cv, half, R * D);
    if (g->w4_gin && (int)R > g->w4_gemv_max) {
        const size_t in = (size_t)cfg_in_proj_dim(c) * D;
        g->wdq = RT_CARVE(cv, half, in > D * E ? in : D * E);
    }
}
static void init_ws(rt_be *r) { (void)r; }
static void free_ws(rt_be *r) { (void)r; }

/* ---------------------------------------------------------------- forward */

/* Y[M x N] = X W^T (+ bias) for in_proj / out_proj: FP16 W16, or (W4A16) int4 W4 with its scales,
 * through the 4-bit tensor-core GEMV in slices of 16 rows up to w4_gemv_max rows, else dequantized
 * into wdq for cuBLAS. */
static void linear(f16_be *g, const half *X, int ldx, const half *W16, const uint8_t *W4, const float *ws, int group,
                   half *Y, int ldy, const float *bias, int M, int N, int K) {
    rt_ws *w = &g->rt.ws;
    if (!W4) {
        k_f16_gemm(w->blas, X, ldx, W16, Y, 0, ldy, bias, M, N, K);
    } else if (M <= g->w4_gemv_max) {
        const k_w4_epi e = {1.f, bias, NULL, K_EPI_F16};
        for (int m0 = 0; m0 < M; m0 += K_W4_MMA_MAX_M)
            k_w4a16_mma(X + (size_t)m0 * ldx, ldx, W4, ws, group, M - m0 < K_W4_MMA_MAX_M ? M - m0 : K_W4_MMA_MAX_M, N, K,
                        e, Y + (size_t)m0 * ldy, ldy, w->stream);
    } else {
        k_w4_dequant_mma_f16(W4, ws, group, N, K, g->wdq, w->stream);
        k_f16_gemm(w->blas, X, ldx, g->wdq, Y, 0, ldy, bias, M, N, K);
    }
}

#define HOOK(layer, role, x, dt, rows, cols, ld)                                        \
    do {                                                                               \
        if (rt_hook(r, hk, layer, role, (const void *)(x), dt, 0.f, rows, cols, ld)) return -1; \
    } while (0)

static int forward(rt_be *r, int B, int T, be_state *s, const mq_hooks *hk) {
    f16_be *g = (f16_be *)r;
    const mq_config *c = &r->base.cfg;
    const int R = B * T, D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv;
    const int in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c), nc = rt_chunks(r, B, T);
    rt_ws *w = &r->ws;
    const cudaStream_t st = w->stream;
    cublasHandle_t blas = w->blas;

    rt_embed(r, g->embed, R);
    for (int l = 0; l < c->n_layer; l++) {
        const f16_layer *L = &g->layers[l];
        float *conv_state, *ssm_state;
        rt_layer_state(r, s, l, &conv_state, &ssm_state);
        k_f16_add_rmsnorm(w->resid, l ? g->delta16 : NULL, L->norm_w, g->h16, NULL, R, D, c->norm_eps, st);
        if (rt_after_norm(r, hk, l, R)) return -1;
        HOOK(l, MQ_ACT_IN_PROJ_IN, g->h16, MQ_F16, R, D, D);
        linear(g, g->h16, D, L->in_proj, L->in4, L->in4_s, g->w4_gin, g->xz16, in, L->in_proj_b, R, in, D);
        rt_mark(r, RT_P_IN_PROJ);

        half *ssm_out;
        if (c->arch == MQ_MAMBA1) {
            /* in_proj output columns: x [0, E), z [E, 2E) */
            half *x_in = g->xz16, *z = g->xz16 + E;
            const int xw = c->dt_rank + 2 * N;
            HOOK(l, MQ_ACT_CONV_IN, x_in, MQ_F16, R, E, in);
            HOOK(l, MQ_ACT_Z, z, MQ_F16, R, E, in);
            k_f16_conv1d_silu(g->xc16, E, x_in, in, conv_state, conv_state != NULL, L->conv_w, L->conv_b, B, T, E, K, st);
            rt_mark(r, RT_P_CONV);
            HOOK(l, MQ_ACT_SSM_X, g->xc16, MQ_F16, R, E, E);
            k_f16_gemm(blas, g->xc16, E, L->x_proj, g->xdbl16, 0, xw, NULL, R, xw, E);
            rt_mark(r, RT_P_X_PROJ);
            HOOK(l, MQ_ACT_X_PROJ_OUT, g->xdbl16, MQ_F16, R, xw, xw);
            /* dt_proj with its bias, as the CPU reference (MQ_ACT_DT sees dt before softplus) */
            k_f16_gemm(blas, g->xdbl16, xw, L->dt_proj, g->dt16, 0, E, L->dt_proj_b, R, E, c->dt_rank);
            rt_mark(r, RT_P_DT_PROJ);
            HOOK(l, MQ_ACT_DT, g->dt16, MQ_F16, R, E, E);
            HOOK(l, MQ_ACT_B, g->xdbl16 + c->dt_rank, MQ_F16, R, N, xw);
            HOOK(l, MQ_ACT_C, g->xdbl16 + c->dt_rank + N, MQ_F16, R, N, xw);
            k_scan_m1_args<k_in_f16, half> a;
            a.x = {g->xc16, E}, a.dt = {g->dt16, E};
            a.Bm = {g->xdbl16 + c->dt_rank, xw}, a.Cm = {g->xdbl16 + c->dt_rank + N, xw}, a.z = {z, in};
            a.dt_bias = NULL, a.A = L->ssm.A, a.D = L->ssm.D, a.y = g->y16, a.ldy = E, a.Di = E, a.N = N;
            rt_scan_state(a, r, ssm_state, s != NULL, B, T, nc);
            a.par = k_scan_m1_par(c, B, T, r->sm_count);
            k_scan_m1(a, st);
            rt_mark(r, RT_P_SCAN);
            HOOK(l, MQ_ACT_SSM_STATE, ssm_state, MQ_F32, B * E, N, N);
            ssm_out = g->y16;
        } else {
            /* in_proj output columns: z [0, E), xBC [E, E + cd), dt [E + cd, E + cd + H) */
            const int G = c->n_groups, H = c->n_heads;
            half *z = g->xz16, *xbc = g->xz16 + E, *dt = g->xz16 + E + cd;
            HOOK(l, MQ_ACT_CONV_IN, xbc, MQ_F16, R, cd, in);
            HOOK(l, MQ_ACT_Z, z, MQ_F16, R, E, in);
            HOOK(l, MQ_ACT_DT, dt, MQ_F16, R, H, in);
            k_f16_conv1d_silu(g->xc16, cd, xbc, in, conv_state, conv_state != NULL, L->conv_w, L->conv_b, B, T, cd, K, st);
            rt_mark(r, RT_P_CONV);
            HOOK(l, MQ_ACT_SSM_X, g->xc16, MQ_F16, R, E, cd);
            HOOK(l, MQ_ACT_B, g->xc16 + E, MQ_F16, R, G * N, cd);
            HOOK(l, MQ_ACT_C, g->xc16 + E + G * N, MQ_F16, R, G * N, cd);
            k_scan_m2_args<k_in_f16, half> a;
            a.x = {g->xc16, cd}, a.dt = {dt, in}, a.Bm = {g->xc16 + E, cd}, a.Cm = {g->xc16 + E + G * N, cd};
            a.dt_bias = L->ssm.dt_bias, a.A = L->ssm.A, a.D = L->ssm.D, a.lo = c->dt_limit_min, a.hi = c->dt_limit_max;
            a.y = g->y16, a.ldy = E, a.H = H, a.P = c->head_dim, a.G = G, a.N = N;
            rt_scan_state(a, r, ssm_state, s != NULL, B, T, nc);
            a.ssd_q = rt_ssd_chunk(r, B, T);
            k_scan_m2(a, st);
            rt_mark(r, RT_P_SCAN);
            HOOK(l, MQ_ACT_SSM_STATE, ssm_state, MQ_F32, B * E, N, N);
            /* one group over all of d_inner, as transformers' MambaRMSNormGated and the CPU
             * reference (mamba_ssm would use d_inner / n_groups; equal when n_groups == 1) */
            k_f16_gated_rmsnorm(g->g16, E, g->y16, E, z, in, L->ssm.gnorm_w, R, E, E, c->norm_eps, c->norm_before_gate, st);
            rt_mark(r, RT_P_GNORM);
            ssm_out = g->g16;
        }
        HOOK(l, MQ_ACT_SSM_OUT, ssm_out, MQ_F16, R, E, E);
        if (g->rotate_y) {
            if (had_cuda_transform_f16(ssm_out, ssm_out, R, E, st)) return -1;
            rt_mark(r, RT_P_YQUANT);
        }
        HOOK(l, MQ_ACT_OUT_PROJ_IN, ssm_out, MQ_F16, R, E, E);
        linear(g, ssm_out, E, L->out_proj, L->out4, L->out4_s, g->w4_gout, g->delta16, D, L->out_proj_b, R, D, E);
        rt_mark(r, RT_P_OUT_PROJ);
    }
    k_f16_add_rmsnorm(w->resid, g->delta16, g->norm_f, w->hid16, w->hid32, R, D, c->norm_eps, st);
    if (rt_after_norm(r, hk, c->n_layer, R)) return -1;
    HOOK(-1, MQ_ACT_LM_HEAD_IN, w->hid16, MQ_F16, R, D, D);
    rt_set_last(r, B, T);
    return 0;
}

static void lm_head(rt_be *r, int r0, int n) {
    const f16_be *g = (const f16_be *)r;
    const int D = r->base.cfg.d_model, V = r->base.cfg.vocab_size;
    k_f16_gemm(r->ws.blas, r->ws.hid16 + (size_t)r0 * D, D, g->lm_head, r->ws.logits, 1, V, NULL, n, V, D);
}

static void free_weights(rt_be *r) { free(((f16_be *)r)->layers); }

static const rt_pass pass = {"FP16 GPU forward", sizeof(float), 32, layout_ws, init_ws, free_ws, forward, lm_head,
                             free_weights};

/* The most rows the 4-bit GEMV takes (in slices of 16) before W4A16 dequantizes for cuBLAS:
 * MQ_W4_GEMV_MAX for experiments, else 16. */
static int w4_gemv_max(void) {
    const char *v = getenv("MQ_W4_GEMV_MAX");
    return v && *v ? atoi(v) : K_W4_MMA_MAX_M;
}

/* g with cfg and its weights arena (W4A16: gin / gout columns per scale of the int4 in_proj /
 * out_proj, else 0); NULL + error. */
static f16_be *alloc_model(const mq_config *cfg, int gin, int gout) {
    if (rt_need_gpu()) return NULL;
    if (rt_check_shapes(cfg, cfg->arch == MQ_MAMBA1 ? 64 : 128, pass.name)) return NULL;
    if (gin || gout) {
        const int D = cfg->d_model, E = cfg->d_inner;
        if (!k_w4a16_mma_ok(D, gin) || !k_w4a16_mma_ok(E, gout)) {
            mq_fail("W4A16 GPU pass: d_model %d, d_inner %d and the group sizes %d, %d must be multiples of 64 "
                    "(the groups dividing their rows); this artifact runs on the CPU simulation (--device cpu)",
                    D, E, gin, gout);
            return NULL;
        }
    }
    f16_be *g = (f16_be *)mq_calloc(1, sizeof *g);
    g->rt.pass = &pass;
    g->rt.base.kind = gin ? BE_CUDA_INT8 : BE_CUDA_F16; /* a quantized model's GPU pass */
    g->rt.base.cfg = *cfg;
    g->w4_gin = gin, g->w4_gout = gout, g->w4_gemv_max = w4_gemv_max();
    g->rotate_y = gin != 0; /* quamba2 rotates y whenever its weights are 4-bit */
    g->layers = (f16_layer *)mq_calloc(cfg->n_layer, sizeof(f16_layer));
    if (rt_carve_weights(&g->rt, layout_weights)) {
        free(g->layers), free(g);
        return NULL;
    }
    /* decode reads every weight except the embedding table (only batch rows of it), unless tied */
    const size_t table = cfg->tie_embeddings ? 0 : (size_t)cfg->vocab_size * cfg->d_model * 2;
    g->rt.base.decode_bytes = g->rt.base.weight_bytes - table;
    return g;
}

/* ---------------------------------------------------------------- upload */

/* An int4 weight of the artifact (codes one per int8, scales per group) into the mma layout. */
static void put_w4(uint8_t *dst, float *dst_s, const q_weight *w, uint8_t *host) {
    k_w4_repack_mma(w->q, w->rows, w->cols, host);
    rt_put(dst, host, k_w4_mma_bytes(w->rows, w->cols));
    rt_put_f32(dst_s, w->scale, (size_t)w->nscale);
}

/* m's weights into g, then the workspace; with qm (W4A16) in_proj and out_proj from its int4 codes. */
static be *upload(f16_be *g, const mq_model *m, const q_model *qm, int batch, int seqlen) {
    const mq_config *c = &m->cfg;
    const int D = c->d_model, E = c->d_inner, in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c);
    const mq_config cfg = g->rt.base.cfg;
    size_t big = (size_t)c->vocab_size * D;
    if ((size_t)in * D > big) big = (size_t)in * D;
    float *stage;
    if (gpu_malloc((void **)&stage, big * sizeof(float), "the upload staging buffer")) {
        rt_discard(&g->rt);
        return NULL;
    }
    const size_t most = k_w4_mma_bytes(in, D) > k_w4_mma_bytes(D, E) ? k_w4_mma_bytes(in, D) : k_w4_mma_bytes(D, E);
    uint8_t *codes = qm ? (uint8_t *)mq_malloc(most) : NULL; /* one repacked int4 matrix */
    rt_put_f16(g->embed, m->embed, (size_t)c->vocab_size * D, stage);
    if (!cfg.tie_embeddings) rt_put_f16(g->lm_head, m->lm_head, (size_t)c->vocab_size * D, stage);
    rt_put_f32(g->norm_f, m->norm_f, D);
    for (int l = 0; l < c->n_layer; l++) {
        const mq_layer *H = &m->layers[l];
        f16_layer *L = &g->layers[l];
        rt_put_f32(L->norm_w, H->norm_w, D);
        if (L->in4) put_w4(L->in4, L->in4_s, &qm->layers[l].in_proj, codes);
        else rt_put_f16(L->in_proj, H->in_proj, (size_t)in * D, stage);
        if (L->in_proj_b) rt_put_f32(L->in_proj_b, H->in_proj_b, in);
        rt_put_f32(L->conv_w, H->conv_w, (size_t)cd * c->d_conv);
        if (L->conv_b) rt_put_f32(L->conv_b, H->conv_b, cd);
        if (L->out4) put_w4(L->out4, L->out4_s, &qm->layers[l].out_proj, codes);
        else rt_put_f16(L->out_proj, H->out_proj, (size_t)D * E, stage);
        if (L->out_proj_b) rt_put_f32(L->out_proj_b, H->out_proj_b, D);
        rt_put_ssm(&L->ssm, c, H->A, H->D, H->dt_bias, H->gnorm_w);
        if (c->arch == MQ_MAMBA1) {
            rt_put_f16(L->x_proj, H->x_proj, (size_t)(c->dt_rank + 2 * c->d_state) * E, stage);
            rt_put_f16(L->dt_proj, H->dt_proj, (size_t)E * c->dt_rank, stage);
            rt_put_f32(L->dt_proj_b, H->dt_proj_b, E);
        }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(stage));
    free(codes);
    return rt_open(&g->rt, batch, seqlen);
}

be *be_cuda_open_f16(const mq_model *m, int batch, int seqlen) {
    mq_config cfg = m->cfg;
    cfg.tie_embeddings = m->lm_head == m->embed; /* what the loader did decides, not the flag */
    f16_be *g = alloc_model(&cfg, 0, 0);
    return g ? upload(g, m, NULL, batch, seqlen) : NULL;
}

be *be_cuda_open_w4a16(const q_model *qm, int batch, int seqlen) {
    const q_options *o = &qm->opt;
    if (o->method != Q_QUAMBA2 || o->wbits != 4 || o->abits != 16) {
        mq_fail("W4A16 GPU pass: the artifact is %s W%dA%d, not quamba2 W4A16", q_method_name(o->method),
                q_big_wbits(o), o->abits);
        return NULL;
    }
    const int gin = qm->layers[0].in_proj.group, gout = qm->layers[0].out_proj.group;
    for (int l = 0; l < qm->cfg.n_layer; l++) {
        const q_weight *a = &qm->layers[l].in_proj, *b = &qm->layers[l].out_proj;
        if (a->bits != 4 || b->bits != 4 || a->group != gin || b->group != gout) {
            mq_fail("W4A16 GPU pass: layer %d's in_proj / out_proj are not 4-bit with groups %d / %d like layer 0's",
                    l, gin, gout);
            return NULL;
        }
    }
    mq_model m; /* the simulation's float model: everything but in_proj and out_proj comes from it */
    if (q_sim_build(qm, &m)) return NULL;
    f16_be *g = alloc_model(&m.cfg, gin, gout); /* m.cfg's tie is what the build made */
    be *b = NULL;
    if (g) {
        g->rotate_y = qm->hadamard_n != 0; /* quamba2 always rotates; a rotation-free artifact would not */
        b = upload(g, &m, qm, batch, seqlen);
    }
    q_sim_free(&m);
    return b;
}

/* ---------------------------------------------------------------- random model (benchmarks) */

/* A random projection [rows x cols], rt_f16_random's scales (FP16, or group > 0: int4 codes). */
static void fill_proj(int rows, int cols, int group, half *w16, uint8_t *w4, float *ws, uint64_t seed) {
    if (w4) {
        k_w4_fill_random(w4, k_w4_mma_bytes(rows, cols), seed, 0);
        rt_put_const(ws, (size_t)rows * (cols / group), 0.25f / sqrtf((float)cols));
    } else {
        k_fill_f16(w16, (size_t)rows * cols, seed, 1.f / sqrtf((float)cols), 0);
    }
}

/* Scales keep activations O(1) through the layers: uniform +-1/sqrt(fan_in) for projections (W4A16:
 * codes uniform in -7..7, scale 1 / (4 sqrt(fan_in)): about the same spread); the SSM parameters
 * of rt_put_ssm_random. w4_group: 0, or W4A16 with that group size (per row where it does not
 * divide) and y rotated, as quamba2 runs. */
be *rt_f16_random(const mq_config *c, int w4_group, uint64_t seed, int batch, int seqlen) {
    const int gin = !w4_group ? 0 : c->d_model % w4_group == 0 ? w4_group : c->d_model;
    const int gout = !w4_group ? 0 : c->d_inner % w4_group == 0 ? w4_group : c->d_inner;
    f16_be *g = alloc_model(c, gin, gout);
    if (!g) return NULL;
    const int D = c->d_model, E = c->d_inner, in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c), N = c->d_state;
    uint64_t s = seed * 1000003ull;
    k_fill_f16(g->embed, (size_t)c->vocab_size * D, s++, 0.05f, 0);
    if (g->lm_head != g->embed) k_fill_f16(g->lm_head, (size_t)c->vocab_size * D, s++, 0.05f, 0);
    rt_put_const(g->norm_f, D, 1.f);
    float *conv = (float *)mq_malloc(sizeof(float) * (size_t)cd * c->d_conv);
    for (size_t i = 0; i < (size_t)cd * c->d_conv; i++) conv[i] = (float)((i * 2654435761u) % 1000) / 1000.f - 0.5f;
    for (int l = 0; l < c->n_layer; l++) {
        f16_layer *L = &g->layers[l];
        rt_put_const(L->norm_w, D, 1.f);
        fill_proj(in, D, gin, L->in_proj, L->in4, L->in4_s, s++);
        if (L->in_proj_b) rt_put_const(L->in_proj_b, in, 0.f);
        rt_put_f32(L->conv_w, conv, (size_t)cd * c->d_conv);
        if (L->conv_b) rt_put_const(L->conv_b, cd, 0.f);
        fill_proj(D, E, gout, L->out_proj, L->out4, L->out4_s, s++);
        if (L->out_proj_b) rt_put_const(L->out_proj_b, D, 0.f);
        rt_put_ssm_random(&L->ssm, c);
        if (c->arch == MQ_MAMBA1) {
            k_fill_f16(L->x_proj, (size_t)(c->dt_rank + 2 * N) * E, s++, 1.f / sqrtf((float)E), 0);
            k_fill_f16(L->dt_proj, (size_t)E * c->dt_rank, s++, 1.f / sqrtf((float)c->dt_rank), 0);
            rt_put_const(L->dt_proj_b, E, -4.f);
        }
    }
    free(conv);
    CUDA_CHECK(cudaDeviceSynchronize());
    return rt_open(&g->rt, batch, seqlen);
}
