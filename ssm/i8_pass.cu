/* The int8 pass (BE_CUDA_INT8 of ssm/backend.h): W8A8 inference of a quantized model (ssm/qmodel.h),
 * the bit-level twin of the CPU simulation (ssm/qsim.c). Every quantized activation of
 * docs/recipe.md is an int8 tensor here, made by the kernel that produces it with core/qrule.h's
 * rule and the model's scale:
 *   resid (FP32) -> add + RMSNorm -> int8 h                        [in_proj.input_scale]
 *   in_proj  int8 GEMM (int32) -> epilogue: x*s_x*s_w -> int8      [conv_in / z / dt scales per column]
 *   conv1d   int8 x, int8 w, FP32 bias, SiLU -> int8               [ssm_x (M2: x, B, C scales)]
 *   Mamba1:  x_proj int8 GEMM -> int8 [dt_low, B, C] (quamba2's clustered x: k_i8_linear_xcols, FP16
 *            tensor cores on x split into hi + lo); dt_proj int8 GEMM (no bias, Quamba) -> int8 dt;
 *            scan: int8 u, dt (+ dt_proj.bias, softplus), B, C, z dequantized in registers, FP32
 *            state and exp, y * SiLU(z) -> FP16 y
 *   Mamba2:  scan: int8 x, dt (+ dt_bias, softplus, clamp), B, C -> FP32 y; gated RMSNorm with
 *            int8 z -> FP16
 *   (quamba2 W8A8: x with a scale per channel, Mamba2's B and C per SSD group: the conv's output
 *   scales, which the scans read per column through k_in_i8.sv)
 *   y -> Hadamard rotation + int8 quantize in one kernel (hadamard/had.h), or plain quantize
 *   out_proj int8 GEMM -> epilogue -> FP16, added to the FP32 residual by the next norm
 *   norm_f -> FP16 -> lm_head (FP16 cuBLAS, or int8 with --quantize-head) -> FP32 logits.
 * GEMMs: cuBLASLt int8 (prefill), an own __dp4a GEMV (<= 8 rows), an own tiled kernel (shapes
 * cuBLASLt refuses): ssm/i8_gemm.cu; quamba2 W4A8's int4 in_proj / out_proj: big_linear below.
 * Decode steps of one sequence take the fused kernels of ssm/i8_decode.cu (W4A8: with the norm and
 * the 4-bit GEMVs unfused). The conv state holds the last d_conv-1 int8 conv inputs. The workspace, states,
 * graphs and NLL are ssm/cuda_rt.cu's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "hadamard/had.h"
#include "ssm/cuda_rt.h"
#include "ssm/int8_ref.h"

/* Device pointers into the weights arena. Per-column scale arrays: see ssm/kern.h. */
struct i8_layer {
    float *norm_w;
    int8_t *in_w; float *in_sw, *in_b, *in_qs;              /* [in x D]; [in] x3 (bias may be NULL) */
    uint8_t *in4, *out4; float *in4_s, *out4_s;             /* W4A8: int4 in_proj / out_proj (k_w4_repack's
                                                             * layout) and group scales, not in_w / out_w */
    int8_t *conv_w; float *conv_sw, *conv_sin, *conv_sout, *conv_b; /* [cd x K]; [cd] x4 (bias may be NULL) */
    int8_t *out_w; float *out_sw, *out_b;                   /* [D x E]; [D] x2 */
    rt_ssm ssm;                                             /* A, D; M2 dt_bias, gnorm_w */
    int8_t *xp_w; float *xp_sw, *xp_qs;                     /* M1 x_proj [xw x E]; [xw] x2 */
    int8_t *dt_w; float *dt_sw, *dt_qs, *dt_b;              /* M1 dt_proj [E x R]; [E] x3 */
    half *xp_w16;                                           /* M1 x_proj codes as FP16 too (clustered x) */
    /* quamba2's scales per column (into conv_sout; NULL: the one scale below): x [E], M2 B, C [G*N] */
    const float *x_sv, *b_sv, *c_sv;
    /* activation scales: in_proj input, ssm_x, x_proj output (M1), dt, z, B, C, out_proj input */
    float s_in, s_u, s_xp, s_dt, s_z, s_B, s_C, s_y, s_conv0;
};

struct i8_be {
    rt_be rt;
    int hadamard;                  /* rotate y before quantizing it (order d_inner) */
    int had_m, had_p, had_log_p;   /* d_inner = had_m * had_p, had_p = 2^had_log_p, when hadamard */
    int dec_fused;                 /* the shapes fit the fused batch-1 decode kernels (i8_decode.cu) */
    int lm_quant;                  /* the lm_head is int8 (quantize_head) */
    int w4_gin, w4_gout;           /* W4A8: columns per scale of the int4 in_proj / out_proj (0: int8) */
    int x_cluster;                 /* Mamba1 with quamba2's clustered x: x_proj by k_i8_linear_xcols, or
                                    * in FP32 in the fused decode */
    half *embed, *lm16;            /* lm16: FP16 lm_head (== embed when tied), NULL when quantized */
    int8_t *lm_q; float *lm_sw;    /* int8 lm_head [V x D] and its scales [V] (quantize_head) */
    float lm_in_scale;
    float *norm_f;
    i8_layer *layers;              /* host array of device pointers */
    /* workspace */
    k_gemm_ctx gc;
    void *lt_ws;
    half *y16, *g16, *delta16;
    float *y32;
    int8_t *h8, *xz8, *xc8, *xdbl8, *dt8, *yq8;
    int32_t *acc;
    half *xsplit16; float *xacc;   /* k_i8_linear_xcols' workspace (x_cluster) */
    float *dec_part;               /* fused decode, x_cluster: x_proj's partial sums [E / 64 x xw] */
    float *w4_part;                /* W4A8, 33-64 rows: the K slices' sums of k_w4a8_mma (or NULL) */
    float *resid2;                 /* fused decode: the residual alternates between resid and resid2 */
    int32_t *dec_acc;              /* fused decode: x_proj sums [xw], zero between calls */
    unsigned *dec_counter;
};

#define LT_WS_BYTES ((size_t)32 << 20)

/* ---------------------------------------------------------------- weights */

static int xp_dim(const mq_config *c) { return c->arch == MQ_MAMBA1 ? c->dt_rank + 2 * c->d_state : 0; }

/* Up to this many rows (decode batches) the y rotation + quantize takes k_i8_yquant_rows, a block
 * per row; prefill takes the general Hadamard kernel. */
#define YQ_ROWS_MAX 256
static int yq_rows_fit(const i8_be *g) {
    return g->had_p >= 2 && g->had_m <= K_YQ_MAX_M && g->rt.base.cfg.d_inner * (int)sizeof(float) <= 48 * 1024;
}

/* The y rotation + quantize of layer L into g->yq8 (the caller sets its input: y16, or Mamba2's
 * gated-norm operands) */
static k_dec_yquant_args yq_args(const i8_be *g, const i8_layer *L) {
    k_dec_yquant_args ya;
    memset(&ya, 0, sizeof ya);
    const int E = g->rt.base.cfg.d_inner;
    ya.E = E, ya.m = g->had_m, ya.P = g->hadamard ? g->had_p : 0, ya.log_p = g->had_log_p;
    ya.s = L->s_y, ya.q = g->yq8;
    ya.norm = (float)(1.0 / sqrt((double)E));
    return ya;
}

/* Can decode steps of one sequence take the fused kernels (ssm/kern.h lists what they need)? */
static void decide_fused(i8_be *g) {
    const mq_config *c = &g->rt.base.cfg;
    g->had_m = 1, g->had_p = 0;
    if (g->hadamard) had_factor(c->d_inner, &g->had_m, &g->had_p), g->had_p = 1 << g->had_p;
    g->had_log_p = 0;
    if (g->hadamard) had_factor(c->d_inner, NULL, &g->had_log_p);
    g->dec_fused = c->d_model % 64 == 0 && c->d_inner % 64 == 0 && c->d_inner <= 8192 && c->d_model <= 4096 &&
                   c->d_conv <= 8 && (!g->hadamard || (g->had_m <= 32 && g->had_log_p >= 1)) &&
                   (c->arch != MQ_MAMBA1 || (c->dt_rank <= 512 && xp_dim(c) <= 1024));
}

static int g_decode_fused = 1;
void rt_i8_set_decode_fused(int on) { g_decode_fused = on; }

/* in_proj / out_proj [rows x cols]: int8 codes and a scale per row, or (group > 0: W4A8) int4 codes in
 * k_w4_repack's layout and a scale per group of columns */
static void carve_big(rt_carver *cv, int rows, int cols, int group, int8_t **w, float **sw, uint8_t **w4, float **s4) {
    if (group) {
        *w4 = RT_CARVE(cv, uint8_t, (size_t)rows * cols / 2);
        *s4 = RT_CARVE(cv, float, (size_t)rows * (cols / group));
    } else {
        *w = RT_CARVE(cv, int8_t, (size_t)rows * cols);
        *sw = RT_CARVE(cv, float, rows);
    }
}

static void layout_weights(rt_be *r, rt_carver *cv) {
    i8_be *g = (i8_be *)r;
    const mq_config *c = &r->base.cfg;
    const int lm_quant = g->lm_quant;
    const int D = c->d_model, E = c->d_inner, in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c), K = c->d_conv;
    const int V = c->vocab_size;
    g->embed = RT_CARVE(cv, half, (size_t)V * D);
    g->lm16 = NULL, g->lm_q = NULL, g->lm_sw = NULL;
    if (lm_quant) { g->lm_q = RT_CARVE(cv, int8_t, (size_t)V * D); g->lm_sw = RT_CARVE(cv, float, V); }
    else g->lm16 = c->tie_embeddings ? g->embed : RT_CARVE(cv, half, (size_t)V * D);
    g->norm_f = RT_CARVE(cv, float, D);
    for (int l = 0; l < c->n_layer; l++) {
        i8_layer *L = &g->layers[l]; /* the scalar scales are set after both passes */
        memset(L, 0, sizeof *L);
        L->norm_w = RT_CARVE(cv, float, D);
        carve_big(cv, in, D, g->w4_gin, &L->in_w, &L->in_sw, &L->in4, &L->in4_s);
        L->in_qs = RT_CARVE(cv, float, in);
        if (c->proj_bias) L->in_b = RT_CARVE(cv, float, in);
        L->conv_w = RT_CARVE(cv, int8_t, (size_t)cd * K);
        L->conv_sw = RT_CARVE(cv, float, cd);
        L->conv_sin = RT_CARVE(cv, float, cd);
        L->conv_sout = RT_CARVE(cv, float, cd);
        if (c->conv_bias) L->conv_b = RT_CARVE(cv, float, cd);
        carve_big(cv, D, E, g->w4_gout, &L->out_w, &L->out_sw, &L->out4, &L->out4_s);
        if (c->proj_bias) L->out_b = RT_CARVE(cv, float, D);
        rt_carve_ssm(cv, c, &L->ssm);
        if (c->arch == MQ_MAMBA1) {
            const int xw = xp_dim(c);
            L->xp_w = RT_CARVE(cv, int8_t, (size_t)xw * E); /* the fused decode reads the int8 codes */
            if (g->x_cluster) L->xp_w16 = RT_CARVE(cv, half, (size_t)xw * E);
            L->xp_sw = RT_CARVE(cv, float, xw);
            L->xp_qs = RT_CARVE(cv, float, xw);
            L->dt_w = RT_CARVE(cv, int8_t, (size_t)E * c->dt_rank);
            L->dt_sw = RT_CARVE(cv, float, E);
            L->dt_qs = RT_CARVE(cv, float, E);
            L->dt_b = RT_CARVE(cv, float, E);
        }
    }
}

/* ---------------------------------------------------------------- workspace */

static void layout_ws(rt_be *r, rt_carver *cv) {
    i8_be *g = (i8_be *)r;
    const mq_config *c = &r->base.cfg;
    const size_t R = r->ws.rows, D = c->d_model, E = c->d_inner, in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c);
    const size_t xw = xp_dim(c);
    size_t maxn = in > D ? in : D;
    if (xw > maxn) maxn = xw;
    if (E > maxn) maxn = E;
    g->h8 = RT_CARVE(cv, int8_t, R * D);
    g->xz8 = RT_CARVE(cv, int8_t, R * in);
    g->xc8 = RT_CARVE(cv, int8_t, R * cd);
    g->xdbl8 = xw ? RT_CARVE(cv, int8_t, R * xw) : NULL;
    g->dt8 = c->arch == MQ_MAMBA1 ? RT_CARVE(cv, int8_t, R * E) : NULL;
    g->y16 = RT_CARVE(cv, half, R * E);
    g->y32 = c->arch == MQ_MAMBA2 ? RT_CARVE(cv, float, R * E) : NULL;
    g->g16 = c->arch == MQ_MAMBA2 ? RT_CARVE(cv, half, R * E) : NULL;
    g->yq8 = RT_CARVE(cv, int8_t, R * E);
    g->delta16 = RT_CARVE(cv, half, R * D);
    g->acc = RT_CARVE(cv, int32_t, R * maxn);
    g->resid2 = RT_CARVE(cv, float, D);
    g->dec_acc = RT_CARVE(cv, int32_t, xw + 1);
    g->dec_counter = RT_CARVE(cv, unsigned, 1);
    g->lt_ws = rt_carve(cv, LT_WS_BYTES);
    g->xsplit16 = g->x_cluster ? RT_CARVE(cv, half, 2 * R * E) : NULL;
    g->xacc = g->x_cluster ? RT_CARVE(cv, float, 2 * R * xw) : NULL;
    g->dec_part = g->x_cluster ? RT_CARVE(cv, float, (E / 64 + 1) * xw) : NULL;
    const size_t np = g->w4_gin || g->w4_gout ? k_w4a8_part_floats(R < 64 ? (int)R : 64, (int)maxn) : 0;
    g->w4_part = np ? RT_CARVE(cv, float, np) : NULL;
}

static void init_ws(rt_be *r) {
    i8_be *g = (i8_be *)r;
    CUDA_CHECK(cudaMemset(g->dec_acc, 0, sizeof(int32_t) * (xp_dim(&r->base.cfg) + 1)));
    CUDA_CHECK(cudaMemset(g->dec_counter, 0, sizeof(unsigned)));
    k_gemm_ctx_init(&g->gc, r->ws.stream, g->lt_ws, LT_WS_BYTES);
}

static void free_ws(rt_be *r) { k_gemm_ctx_free(&((i8_be *)r)->gc); }

/* ---------------------------------------------------------------- forward */

#define HOOK(layer, role, x, dt, scale, rows, cols, ld)                                          \
    do {                                                                                         \
        if (rt_hook(r, hk, layer, role, (const void *)(x), dt, scale, rows, cols, ld)) return -1; \
    } while (0)

/* The Mamba2 scan of layer L on the workspace's conv output (x, B, C) and in_proj's dt, into y32. */
static k_scan_m2_args<k_in_i8, float> m2_scan_args(const i8_be *g, const i8_layer *L, float *ssm_state, int state_in,
                                                   int B, int T, int nc) {
    const mq_config *c = &g->rt.base.cfg;
    const int E = c->d_inner, cd = cfg_conv_dim(c), GN = c->n_groups * c->d_state;
    k_scan_m2_args<k_in_i8, float> a;
    a.x = {g->xc8, cd, L->s_u, L->x_sv}, a.dt = {g->xz8 + E + cd, cfg_in_proj_dim(c), L->s_dt};
    a.Bm = {g->xc8 + E, cd, L->s_B, L->b_sv}, a.Cm = {g->xc8 + E + GN, cd, L->s_C, L->c_sv};
    a.dt_bias = L->ssm.dt_bias, a.A = L->ssm.A, a.D = L->ssm.D, a.lo = c->dt_limit_min, a.hi = c->dt_limit_max;
    a.y = g->y32, a.ldy = E, a.H = c->n_heads, a.P = c->head_dim, a.G = c->n_groups, a.N = c->d_state;
    rt_scan_state(a, &g->rt, ssm_state, state_in, B, T, nc);
    a.ssd_q = rt_ssd_chunk(&g->rt, B, T);
    return a;
}

/* in_proj / out_proj: int8 W by k_i8_linear, or (W4A8) int4 W4 with its group scales ws4 through the
 * 4-bit GEMV (up to 8 rows; exact int32 per group, FP32 over groups: ssm/w4_gemv.cu) or the tensor-core
 * kernel (more rows, K and group multiples of 64; else the GEMV in slices of 8) */
#define W4_ROWS 8
static void big_linear(i8_be *g, const int8_t *X, int ldx, const int8_t *W, const uint8_t *W4, const float *ws4, int group,
                       int M, int N, int K, const k_epi &e, void *out, int ldo) {
    if (!W4) {
        k_i8_linear(&g->gc, X, ldx, W, M, N, K, e, out, ldo, g->acc);
        return;
    }
    const k_w4_epi e4 = {e.sx, e.bias, e.qs, e.kind};
    if (M > W4_ROWS && k_w4a8_mma_ok(K, group)) {
        k_w4a8_mma(X, ldx, W4, ws4, group, M, N, K, e4, out, ldo, g->w4_part, g->rt.sm_count, g->rt.ws.stream);
        return;
    }
    const size_t es = e.kind == K_EPI_I8 ? 1 : e.kind == K_EPI_F16 ? sizeof(half) : sizeof(float);
    for (int m0 = 0; m0 < M; m0 += W4_ROWS)
        k_w4a8_gemv(X + (size_t)m0 * ldx, ldx, W4, ws4, group, M - m0 < W4_ROWS ? M - m0 : W4_ROWS, N, K, e4,
                    (char *)out + (size_t)m0 * ldo * es, ldo, g->rt.sm_count, g->rt.ws.stream);
}

/* One token of one sequence (ws.d_tokens[0]) on state s through the fused kernels: per layer
 * norm+in_proj, conv(+x_proj), (dt_proj+)scan, y quantize, out_proj. Same outputs as forward(). */
static void decode_fused(i8_be *g, be_state *s) {
    rt_ws *w = &g->rt.ws;
    const mq_config *c = &g->rt.base.cfg;
    const cudaStream_t st = w->stream;
    const int D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, in = cfg_in_proj_dim(c);
    const int cd = cfg_conv_dim(c), sm = g->rt.sm_count;
    float *r_cur = w->resid, *r_next = g->resid2;
    k_embed(r_cur, g->embed, w->d_tokens, 1, D, st);
    for (int l = 0; l < c->n_layer; l++) {
        const i8_layer *L = &g->layers[l];
        int8_t *conv_state = rt_conv_state<int8_t>(s, l);
        float *ssm_state = rt_ssm_state(s, l);
        const k_epi in_e = k_epi_make(L->s_in, L->in_sw, L->in_b, L->in_qs, K_EPI_I8);
        if (L->in4) { /* W4A8: the residual in place, then the 4-bit GEMV */
            k_i8_add_rmsnorm(r_cur, l ? g->delta16 : NULL, L->norm_w, g->h8, L->s_in, NULL, NULL, 1, D, c->norm_eps, st);
            big_linear(g, g->h8, D, NULL, L->in4, L->in4_s, g->w4_gin, 1, in, D, in_e, g->xz8, in);
        } else {
            k_i8_dec_norm_linear(r_cur, l ? g->delta16 : NULL, r_next, L->norm_w, L->s_in, c->norm_eps, L->in_w, in, D,
                                 in_e, g->xz8, sm, st);
            float *t = r_cur;
            r_cur = r_next, r_next = t;
        }
        k_dec_yquant_args ya = yq_args(g, L);
        if (c->arch == MQ_MAMBA1) {
            const int R_ = c->dt_rank, xw = xp_dim(c);
            k_dec_conv_xproj_args ca;
            ca.x = g->xz8, ca.state = conv_state, ca.xc = g->xc8;
            ca.cw = L->conv_w, ca.csw = L->conv_sw, ca.csin = L->conv_sin, ca.cb = L->conv_b, ca.csout = L->conv_sout;
            ca.K = K, ca.W = L->xp_w, ca.N = xw, ca.E = E, ca.e = k_epi_make(L->s_u, L->xp_sw, NULL, L->xp_qs, K_EPI_I8);
            ca.out = g->xdbl8, ca.acc = g->dec_acc, ca.counter = g->dec_counter;
            ca.xsv = L->x_sv, ca.part = g->dec_part;
            k_i8_dec_conv_xproj(ca, st);
            k_dec_dt_scan_args sa;
            sa.xdbl = g->xdbl8, sa.R = R_, sa.s_xp = L->s_xp;
            sa.dtw = L->dt_w, sa.dt_sw = L->dt_sw, sa.dt_qs = L->dt_qs, sa.dt_bias = L->dt_b, sa.sdt = L->s_dt;
            sa.u = g->xc8, sa.su = L->s_u, sa.suv = L->x_sv, sa.sb = L->s_B, sa.sc = L->s_C;
            sa.z = g->xz8 + E, sa.sz = L->s_z, sa.A = L->ssm.A, sa.D = L->ssm.D;
            sa.state = ssm_state, sa.y = g->y16, sa.E = E, sa.N = N;
            k_i8_dec_dt_scan(sa, st);
            ya.y16 = g->y16;
        } else {
            const int8_t *z8 = g->xz8, *xbc8 = g->xz8 + E;
            k_i8_dec_conv(g->xc8, xbc8, conv_state, L->conv_w, L->conv_sw, L->conv_sin, L->conv_b, L->conv_sout, cd, K, st);
            k_scan_m2(m2_scan_args(g, L, ssm_state, 1, 1, 1, 1), st);
            ya.y32 = g->y32, ya.z = z8, ya.sz = L->s_z, ya.gnorm_w = L->ssm.gnorm_w, ya.eps = c->norm_eps;
            ya.nbg = c->norm_before_gate;
        }
        k_i8_dec_yquant(ya, st);
        const k_epi out_e = k_epi_make(L->s_y, L->out_sw, L->out_b, NULL, K_EPI_F16);
        if (L->out4) big_linear(g, g->yq8, E, NULL, L->out4, L->out4_s, g->w4_gout, 1, D, E, out_e, g->delta16, D);
        else k_i8_dec_linear(g->yq8, L->out_w, D, E, out_e, g->delta16, sm, st);
    }
    k_i8_add_rmsnorm(r_cur, g->delta16, g->norm_f, g->lm_q ? g->h8 : NULL, g->lm_in_scale, w->hid16, w->hid32, 1, D,
                     c->norm_eps, st);
    rt_set_last(&g->rt, 1, 1);
}

static int forward(rt_be *r, int B, int T, be_state *s, const mq_hooks *hk) {
    i8_be *g = (i8_be *)r;
    rt_ws *w = &r->ws;
    const mq_config *c = &r->base.cfg;
    const cudaStream_t st = w->stream;
    const int R = B * T, D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv;
    const int in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c);
    const int hooked = hk && hk->fn;
    if (B == 1 && T == 1 && s && !hooked && g->dec_fused && g_decode_fused && !w->prof_on) {
        decode_fused(g, s);
        return 0;
    }
    const int nc = rt_chunks(r, B, T);
    rt_embed(r, g->embed, R);
    for (int l = 0; l < c->n_layer; l++) {
        const i8_layer *L = &g->layers[l];
        int8_t *conv_state;
        float *ssm_state;
        rt_layer_state(r, s, l, &conv_state, &ssm_state);
        k_i8_add_rmsnorm(w->resid, l ? g->delta16 : NULL, L->norm_w, g->h8, L->s_in, NULL, NULL, R, D, c->norm_eps, st);
        if (rt_after_norm(r, hk, l, R)) return -1;
        HOOK(l, MQ_ACT_IN_PROJ_IN, g->h8, MQ_I8, L->s_in, R, D, D);
        big_linear(g, g->h8, D, L->in_w, L->in4, L->in4_s, g->w4_gin, R, in, D,
                   k_epi_make(L->s_in, L->in_sw, L->in_b, L->in_qs, K_EPI_I8), g->xz8, in);
        rt_mark(r, RT_P_IN_PROJ);

        const half *ssm_out;
        if (c->arch == MQ_MAMBA1) {
            /* in_proj output: x [0, E), z [E, 2E) */
            const int8_t *x8 = g->xz8, *z8 = g->xz8 + E;
            const int R_ = c->dt_rank, xw = xp_dim(c);
            HOOK(l, MQ_ACT_CONV_IN, x8, MQ_I8, L->s_conv0, R, E, in);
            HOOK(l, MQ_ACT_Z, z8, MQ_I8, L->s_z, R, E, in);
            k_i8_conv1d(g->xc8, E, x8, in, conv_state, conv_state != NULL, L->conv_w, L->conv_sw, L->conv_sin, L->conv_b,
                        L->conv_sout, B, T, E, K, st);
            rt_mark(r, RT_P_CONV);
            HOOK(l, MQ_ACT_SSM_X, g->xc8, MQ_I8, L->s_u, R, E, E);
            if (L->xp_w16)
                k_i8_linear_xcols(w->blas, g->xc8, E, L->x_sv, L->xp_w16, R, xw, E, L->xp_sw, L->xp_qs, g->xdbl8, xw,
                                  g->xsplit16, g->xacc, st);
            else
                k_i8_linear(&g->gc, g->xc8, E, L->xp_w, R, xw, E, k_epi_make(L->s_u, L->xp_sw, NULL, L->xp_qs, K_EPI_I8),
                            g->xdbl8, xw, g->acc);
            rt_mark(r, RT_P_X_PROJ);
            HOOK(l, MQ_ACT_X_PROJ_OUT, g->xdbl8, MQ_I8, L->s_xp, R, xw, xw);
            /* dt_proj without its bias (Quamba: the scan adds it), requantized */
            k_i8_linear(&g->gc, g->xdbl8, xw, L->dt_w, R, E, R_, k_epi_make(L->s_xp, L->dt_sw, NULL, L->dt_qs, K_EPI_I8),
                        g->dt8, E, g->acc);
            rt_mark(r, RT_P_DT_PROJ);
            HOOK(l, MQ_ACT_DT, g->dt8, MQ_I8, L->s_dt, R, E, E);
            k_scan_m1_args<k_in_i8, half> a;
            a.x = {g->xc8, E, L->s_u, L->x_sv}, a.dt = {g->dt8, E, L->s_dt};
            a.Bm = {g->xdbl8 + R_, xw, L->s_B}, a.Cm = {g->xdbl8 + R_ + N, xw, L->s_C}, a.z = {z8, in, L->s_z};
            a.dt_bias = L->dt_b, a.A = L->ssm.A, a.D = L->ssm.D, a.y = g->y16, a.ldy = E, a.Di = E, a.N = N;
            rt_scan_state(a, r, ssm_state, s != NULL, B, T, nc);
            a.par = k_scan_m1_par(c, B, T, r->sm_count);
            k_scan_m1(a, st);
            rt_mark(r, RT_P_SCAN);
            HOOK(l, MQ_ACT_SSM_STATE, ssm_state, MQ_F32, 0.f, B * E, N, N);
            ssm_out = g->y16;
        } else {
            /* in_proj output: z [0, E), xBC [E, E + cd), dt [E + cd, E + cd + H) */
            const int G = c->n_groups, H = c->n_heads, GN = G * N;
            const int8_t *z8 = g->xz8, *xbc8 = g->xz8 + E, *dt8 = g->xz8 + E + cd;
            HOOK(l, MQ_ACT_CONV_IN, xbc8, MQ_I8, L->s_conv0, R, cd, in);
            HOOK(l, MQ_ACT_Z, z8, MQ_I8, L->s_z, R, E, in);
            HOOK(l, MQ_ACT_DT, dt8, MQ_I8, L->s_dt, R, H, in);
            k_i8_conv1d(g->xc8, cd, xbc8, in, conv_state, conv_state != NULL, L->conv_w, L->conv_sw, L->conv_sin,
                        L->conv_b, L->conv_sout, B, T, cd, K, st);
            rt_mark(r, RT_P_CONV);
            HOOK(l, MQ_ACT_SSM_X, g->xc8, MQ_I8, L->s_u, R, E, cd);
            HOOK(l, MQ_ACT_B, g->xc8 + E, MQ_I8, L->s_B, R, GN, cd);
            HOOK(l, MQ_ACT_C, g->xc8 + E + GN, MQ_I8, L->s_C, R, GN, cd);
            k_scan_m2(m2_scan_args(g, L, ssm_state, s != NULL, B, T, nc), st);
            rt_mark(r, RT_P_SCAN);
            HOOK(l, MQ_ACT_SSM_STATE, ssm_state, MQ_F32, 0.f, B * E, N, N);
            /* one group over all of d_inner, as transformers and the CPU reference */
            k_i8_gated_rmsnorm(g->g16, E, g->y32, E, z8, in, L->s_z, L->ssm.gnorm_w, R, E, E, c->norm_eps,
                               c->norm_before_gate, st);
            rt_mark(r, RT_P_GNORM);
            ssm_out = g->g16;
        }
        HOOK(l, MQ_ACT_SSM_OUT, ssm_out, MQ_F16, 0.f, R, E, E);
        if (g->hadamard && R <= YQ_ROWS_MAX && yq_rows_fit(g)) {
            k_dec_yquant_args ya = yq_args(g, L);
            ya.y16 = ssm_out;
            k_i8_yquant_rows(ya, R, st);
        } else if (g->hadamard) {
            if (had_cuda_transform_quant_f16(ssm_out, g->yq8, R, E, L->s_y, (void *)st))
                return mq_fail_ctx("int8 forward, layer %d", l); /* checked at upload */
        } else {
            k_i8_quant_f16(g->yq8, E, ssm_out, E, L->s_y, R, E, st);
        }
        rt_mark(r, RT_P_YQUANT);
        HOOK(l, MQ_ACT_OUT_PROJ_IN, g->yq8, MQ_I8, L->s_y, R, E, E);
        big_linear(g, g->yq8, E, L->out_w, L->out4, L->out4_s, g->w4_gout, R, D, E,
                   k_epi_make(L->s_y, L->out_sw, L->out_b, NULL, K_EPI_F16), g->delta16, D);
        rt_mark(r, RT_P_OUT_PROJ);
    }
    k_i8_add_rmsnorm(w->resid, g->delta16, g->norm_f, g->lm_q ? g->h8 : NULL, g->lm_in_scale, w->hid16, w->hid32, R, D,
                     c->norm_eps, st);
    if (rt_after_norm(r, hk, c->n_layer, R)) return -1;
    if (g->lm_q) HOOK(-1, MQ_ACT_LM_HEAD_IN, g->h8, MQ_I8, g->lm_in_scale, R, D, D);
    else HOOK(-1, MQ_ACT_LM_HEAD_IN, w->hid16, MQ_F16, 0.f, R, D, D);
    rt_set_last(r, B, T);
    return 0;
}

/* logits of rows [r0, r0+n) into ws.logits: the int8 lm_head (its epilogue works in place, element
 * by element, so the accumulators may share the logits buffer), or the FP16 one by cuBLAS */
static void lm_head(rt_be *r, int r0, int n) {
    i8_be *g = (i8_be *)r;
    rt_ws *w = &r->ws;
    const int D = r->base.cfg.d_model, V = r->base.cfg.vocab_size;
    if (g->lm_q)
        k_i8_linear(&g->gc, g->h8 + (size_t)r0 * D, D, g->lm_q, n, V, D,
                    k_epi_make(g->lm_in_scale, g->lm_sw, NULL, NULL, K_EPI_F32), w->logits, V, (int32_t *)w->logits);
    else
        k_gemm_f16_blas(w->blas, w->hid16 + (size_t)r0 * D, D, g->lm16, w->logits, 1, V, n, V, D);
}

static void free_weights(rt_be *r) { free(((i8_be *)r)->layers); }

static const rt_pass pass = {"int8 GPU pass", 1, 64, layout_ws, init_ws, free_ws, forward, lm_head, free_weights};

static i8_be *alloc_model(const mq_config *cfg, int lm_quant, int x_cluster, int w4_gin, int w4_gout) {
    if (rt_need_gpu() || rt_check_shapes(cfg, 128, pass.name)) return NULL;
    i8_be *g = (i8_be *)mq_calloc(1, sizeof *g);
    g->rt.pass = &pass;
    g->rt.base.kind = BE_CUDA_INT8;
    g->rt.base.cfg = *cfg;
    g->lm_quant = lm_quant;
    g->x_cluster = x_cluster;
    g->w4_gin = w4_gin, g->w4_gout = w4_gout;
    g->layers = (i8_layer *)mq_calloc(cfg->n_layer, sizeof(i8_layer));
    if (rt_carve_weights(&g->rt, layout_weights)) {
        free(g->layers), free(g);
        return NULL;
    }
    /* decode reads every weight except the FP16 embedding table (only batch rows of it), unless the
     * FP16 lm_head is that table */
    const size_t table = (size_t)cfg->vocab_size * cfg->d_model * 2;
    g->rt.base.decode_bytes = g->rt.base.weight_bytes - (lm_quant || !cfg->tie_embeddings ? table : 0);
    if (x_cluster) /* nor x_proj's FP16 copy (the fused step reads the int8 codes) */
        g->rt.base.decode_bytes -= (size_t)cfg->n_layer * xp_dim(cfg) * cfg->d_inner * sizeof(half);
    return g;
}

/* ---------------------------------------------------------------- upload */

/* an int4 weight into the 4-bit GEMV's layout (k_w4_repack) and its group scales */
static void put_w4(uint8_t *dst, float *dst_s, const q_weight *w) {
    const size_t bytes = (size_t)w->rows * w->cols / 2;
    uint8_t *host = (uint8_t *)mq_malloc(bytes);
    k_w4_repack(w->q, w->rows, w->cols, host);
    rt_put(dst, host, bytes);
    rt_put_f32(dst_s, w->scale, (size_t)w->nscale);
    free(host);
}

be *be_cuda_open_int8(const q_model *qm, int batch, int seqlen) {
    const mq_config *c = &qm->cfg;
    const int D = c->d_model, E = c->d_inner, in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c), K = c->d_conv;
    const int V = c->vocab_size, xw = xp_dim(c);
    if (rt_check_shapes(c, 128, pass.name)) return NULL;
    /* quamba2 W4A8: int4 in_proj / out_proj through the 4-bit GEMV (K and the group multiples of 32) */
    const int w4 = q_big_wbits(&qm->opt) == 4, gin = w4 ? qm->layers[0].in_proj.group : 0;
    const int gout = w4 ? qm->layers[0].out_proj.group : 0;
    if (w4 && (D % 32 || E % 32 || gin % 32 || gout % 32 || qm->lm_head_q.bits == 4)) {
        mq_fail("int8 GPU pass: quamba2 W4A8 needs d_model %d, d_inner %d and the int4 groups %d, %d multiples of 32 and "
                "an int8 or FP16 lm_head", D, E, gin, gout);
        return NULL;
    }
    for (int l = 0; l < c->n_layer && w4; l++)
        if (qm->layers[l].in_proj.group != gin || qm->layers[l].out_proj.group != gout) {
            mq_fail("int8 GPU pass: layer %d's int4 groups differ from layer 0's", l);
            return NULL;
        }
    if (qm->hadamard_n && qm->hadamard_n != E) {
        mq_fail("int8 GPU pass: Hadamard order %d, expected d_inner %d", qm->hadamard_n, E);
        return NULL;
    }
    if (qm->hadamard_n && (E > HAD_CUDA_MAX_N || had_factor(E, NULL, NULL))) return NULL;
    i8ref_plan p; /* scales and weights checked, per-column arrays made, before the GPU is touched */
    if (i8ref_plan_build(qm, &p)) return NULL;
    const int lm_quant = qm->lm_head_q.q != NULL;
    mq_config cfg = *c;
    cfg.tie_embeddings = !lm_quant && qm->lm_head == NULL; /* an FP16 lm_head of its own when untied */
    /* quamba2: Mamba1's x_proj reads a clustered x through FP16 (checked for every layer alike) */
    int x_cluster = 0;
    for (int l = 0; l < c->n_layer; l++) x_cluster += c->arch == MQ_MAMBA1 && q_layer_vector_scaled(qm, l, MQ_ACT_SSM_X);
    if (x_cluster && x_cluster != c->n_layer) {
        i8ref_plan_free(&p);
        mq_fail("int8 GPU pass: %d of %d layers have clustered ssm_x scales (all or none)", x_cluster, c->n_layer);
        return NULL;
    }
    i8_be *g = alloc_model(&cfg, lm_quant, x_cluster != 0, gin, gout);
    if (!g) {
        i8ref_plan_free(&p);
        return NULL;
    }
    g->hadamard = qm->hadamard_n != 0;
    g->lm_in_scale = qm->lm_head_in_scale;
    const size_t big = (size_t)V * D;
    float *stage;
    if (gpu_malloc((void **)&stage, big * sizeof(float), "the upload staging buffer")) {
        rt_discard(&g->rt);
        i8ref_plan_free(&p);
        return NULL;
    }
    rt_put_f16(g->embed, qm->embed, big, stage);
    if (g->lm16 && g->lm16 != g->embed) rt_put_f16(g->lm16, qm->lm_head, big, stage);
    if (lm_quant) {
        rt_put(g->lm_q, qm->lm_head_q.q, big);
        rt_put_f32(g->lm_sw, p.lm_sw, V);
    }
    rt_put_f32(g->norm_f, qm->norm_f, D);
    for (int l = 0; l < c->n_layer; l++) {
        const q_layer *Q = &qm->layers[l];
        const i8ref_plan_layer *P = &p.layers[l];
        i8_layer *L = &g->layers[l];
        L->s_in = P->s_in, L->s_u = P->s_u, L->s_xp = P->s_xp, L->s_dt = P->s_dt, L->s_z = P->s_z;
        L->s_B = P->s_B, L->s_C = P->s_C, L->s_y = P->s_y, L->s_conv0 = P->s_conv0;
        rt_put_f32(L->norm_w, Q->norm_w, D);
        if (L->in4) put_w4(L->in4, L->in4_s, &Q->in_proj);
        else rt_put(L->in_w, Q->in_proj.q, (size_t)in * D), rt_put_f32(L->in_sw, P->in_sw, in);
        rt_put_f32(L->in_qs, P->in_qs, in);
        if (L->in_b) rt_put_f32(L->in_b, Q->in_proj_b, in);
        rt_put(L->conv_w, Q->conv1d.q, (size_t)cd * K);
        rt_put_f32(L->conv_sw, P->conv_sw, cd);
        rt_put_f32(L->conv_sin, P->conv_sin, cd);
        rt_put_f32(L->conv_sout, P->conv_sout, cd);
        if (L->conv_b) rt_put_f32(L->conv_b, Q->conv_b, cd);
        if (L->out4) put_w4(L->out4, L->out4_s, &Q->out_proj);
        else rt_put(L->out_w, Q->out_proj.q, (size_t)D * E), rt_put_f32(L->out_sw, P->out_sw, D);
        if (L->out_b) rt_put_f32(L->out_b, Q->out_proj_b, D);
        rt_put_ssm(&L->ssm, c, P->A, Q->D, Q->dt_bias, Q->gnorm_w);
        const int GN = c->n_groups * c->d_state;
        L->x_sv = q_layer_vector_scaled(qm, l, MQ_ACT_SSM_X) ? L->conv_sout : NULL;
        L->b_sv = c->arch == MQ_MAMBA2 && q_layer_vector_scaled(qm, l, MQ_ACT_B) ? L->conv_sout + E : NULL;
        L->c_sv = c->arch == MQ_MAMBA2 && q_layer_vector_scaled(qm, l, MQ_ACT_C) ? L->conv_sout + E + GN : NULL;
        if (c->arch == MQ_MAMBA1) {
            rt_put(L->xp_w, Q->x_proj.q, (size_t)xw * E);
            if (L->xp_w16) k_i8_to_f16(L->xp_w16, L->xp_w, (size_t)xw * E, 0); /* for k_i8_linear_xcols */
            rt_put_f32(L->xp_sw, P->xp_sw, xw);
            rt_put_f32(L->xp_qs, P->xp_qs, xw);
            rt_put(L->dt_w, Q->dt_proj.q, (size_t)E * c->dt_rank);
            rt_put_f32(L->dt_sw, P->dt_sw, E);
            rt_put_f32(L->dt_qs, P->dt_qs, E);
            rt_put_f32(L->dt_b, Q->dt_proj_b, E);
        }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaFree(stage));
    i8ref_plan_free(&p);
    decide_fused(g);
    return rt_open(&g->rt, batch, seqlen);
}

/* ---------------------------------------------------------------- random model (benchmarks) */

/* w4: quamba2 W4A8's int4 in_proj / out_proj, w4 columns per scale (0: int8) */
static be *random_model(const mq_config *c, int hadamard, int q2, int w4, uint64_t seed, int batch, int seqlen) {
    mq_config cfg = *c;
    cfg.tie_embeddings = 1;
    if (w4 && (c->d_model % w4 || c->d_inner % w4 || w4 % 64)) {
        mq_fail("random W4A8 model: group %d must be a multiple of 64 dividing d_model %d and d_inner %d", w4, c->d_model,
                c->d_inner);
        return NULL;
    }
    i8_be *g = alloc_model(&cfg, 0, q2 && c->arch == MQ_MAMBA1, w4, w4);
    if (!g) return NULL;
    const int D = c->d_model, E = c->d_inner, in = cfg_in_proj_dim(c), cd = cfg_conv_dim(c), K = c->d_conv;
    const int xw = xp_dim(c);
    g->hadamard = hadamard && had_factor(E, NULL, NULL) == 0;
    mq_clear_error();
    uint64_t s = seed * 1000003ull + 1;
    k_fill_f16(g->embed, (size_t)c->vocab_size * D, s++, 0.05f, 0);
    rt_put_const(g->norm_f, D, 1.f);
    /* int8 uniform in [-127, 127] has std ~73: sw = 1 / (73 sqrt(K)) gives weights of std 1/sqrt(K);
     * int4 in [-7, 7] std ~4.3 */
    auto wsc = [](int k) { return 1.f / (73.f * sqrtf((float)k)); };
    auto wsc4 = [](int k) { return 1.f / (4.3f * sqrtf((float)k)); };
    for (int l = 0; l < c->n_layer; l++) {
        i8_layer *L = &g->layers[l];
        L->s_in = 4.f / 127, L->s_u = 3.f / 127, L->s_xp = 4.f / 127, L->s_dt = 4.f / 127, L->s_z = 4.f / 127;
        L->s_B = L->s_C = 4.f / 127, L->s_y = 2.f / 127, L->s_conv0 = 4.f / 127;
        rt_put_const(L->norm_w, D, 1.f);
        if (L->in4) k_w4_fill_random(L->in4, (size_t)in * D / 2, s++, 0), rt_put_const(L->in4_s, (size_t)in * (D / w4), wsc4(D));
        else k_fill_i8(L->in_w, (size_t)in * D, s++, 0), rt_put_const(L->in_sw, in, wsc(D));
        rt_put_const(L->in_qs, in, 4.f / 127);
        if (L->in_b) rt_put_const(L->in_b, in, 0.f);
        k_fill_i8(L->conv_w, (size_t)cd * K, s++, 0);
        rt_put_const(L->conv_sw, cd, wsc(K));
        rt_put_const(L->conv_sin, cd, 4.f / 127);
        rt_put_const(L->conv_sout, cd, 3.f / 127);
        if (L->conv_b) rt_put_const(L->conv_b, cd, 0.f);
        if (L->out4) k_w4_fill_random(L->out4, (size_t)D * E / 2, s++, 0), rt_put_const(L->out4_s, (size_t)D * (E / w4), wsc4(E));
        else k_fill_i8(L->out_w, (size_t)D * E, s++, 0), rt_put_const(L->out_sw, D, wsc(E));
        if (L->out_b) rt_put_const(L->out_b, D, 0.f);
        rt_put_ssm_random(&L->ssm, c);
        if (q2) { /* the scales per column (all alike: their values do not change the time) */
            L->x_sv = L->conv_sout;
            if (c->arch == MQ_MAMBA2) L->b_sv = L->conv_sout + E, L->c_sv = L->conv_sout + E + c->n_groups * c->d_state;
        }
        if (c->arch == MQ_MAMBA1) {
            k_fill_i8(L->xp_w, (size_t)xw * E, s++, 0);
            if (L->xp_w16) k_i8_to_f16(L->xp_w16, L->xp_w, (size_t)xw * E, 0);
            rt_put_const(L->xp_sw, xw, wsc(E));
            rt_put_const(L->xp_qs, xw, 4.f / 127);
            k_fill_i8(L->dt_w, (size_t)E * c->dt_rank, s++, 0);
            rt_put_const(L->dt_sw, E, wsc(c->dt_rank));
            rt_put_const(L->dt_qs, E, 4.f / 127);
            rt_put_const(L->dt_b, E, -4.f);
        }
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    decide_fused(g);
    return rt_open(&g->rt, batch, seqlen);
}

be *rt_i8_random(const mq_config *c, int hadamard, int q2, uint64_t seed, int batch, int seqlen) {
    return random_model(c, hadamard, q2, 0, seed, batch, seqlen);
}
be *rt_i8_random_w4a8(const mq_config *c, int group, uint64_t seed, int batch, int seqlen) {
    return random_model(c, 1, 1, group, seed, batch, seqlen);
}

