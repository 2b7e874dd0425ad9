/* Inside the int8 GPU pass (C++ only, for the ssm/int8_*.cu files): the kernel launchers of
 * ssm/int8_kernels.cu and ssm/int8_gemm.cu. Launchers take device pointers, enqueue on `st`, check
 * the launch and never allocate. Activations are row-major with explicit leading dimensions so
 * column slices (x / z / dt of in_proj's output, B / C of x_proj's or the conv's) are used in place.
 * Per-column scale arrays ([N] floats) carry per-tensor scales repeated, so one code path serves
 * per-tensor and per-channel weights and the Mamba2 segments with their own scales. */
#ifndef MQ_SSM_INT8_KERN_H
#define MQ_SSM_INT8_KERN_H
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include "core/gpu.h"
#include "core/qrule.h"
#include "ssm/int8.h"

typedef __half half;

/* Epilogue of an int8 linear layer, per output element (m, n) with acc = sum_k X[m][k] W[n][k]:
 *   v = (float)acc * (sx * sw[n]) + (bias ? bias[n] : 0)
 *   out: int8 q(v, qs[n]) when kind == EPI_I8, FP16 or FP32 v otherwise. (Device pointers.) */
enum { EPI_I8 = 0, EPI_F16 = 1, EPI_F32 = 2 };
struct i8_epi {
    float sx;
    const float *sw, *bias, *qs;
    int kind;
};

static __device__ __forceinline__ void epi_put(const i8_epi &e, int32_t acc, int m, int n, void *out, int ldo) {
    float v = (float)acc * (e.sx * e.sw[n]);
    if (e.bias) v += e.bias[n];
    size_t i = (size_t)m * ldo + n;
    if (e.kind == EPI_I8) ((int8_t *)out)[i] = qr_quant_i8(v, e.qs[n]);
    else if (e.kind == EPI_F16) ((half *)out)[i] = __float2half(v);
    else ((float *)out)[i] = v;
}

/* Shared context of the GEMMs of one workspace: stream, cuBLASLt handle and workspace, and a small
 * cache of cuBLASLt plans (descriptors + heuristic algorithm) per shape. */
struct i8_lt_plan;
struct i8_gemm_ctx {
    cudaStream_t st;
    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    i8_lt_plan *plans;
    int nplans;
    int sm_count;
};
void i8_gemm_ctx_init(i8_gemm_ctx *c, cudaStream_t st, void *lt_ws, size_t lt_ws_bytes);
void i8_gemm_ctx_free(i8_gemm_ctx *c);

/* out[M x N] (ld ldo) = epilogue(X[M x K] (ld ldx) * W[N x K]^T); acc: int32 scratch of M*N for the
 * GEMM routes. The route is i8g_set_gemm_route's (AUTO by default). */
void i8_linear(i8_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const i8_epi &e,
               void *out, int ldo, int32_t *acc);
/* acc[M x N] (ld N) = X W^T exactly by cuBLASLt (route LT or AUTO, when it takes the shape) or the
 * tiled kernel (tests); returns the route taken. (The GEMV has no int32 output: test it through
 * i8_linear with an FP32 epilogue of unit scales.) */
int i8_gemm_i32(i8_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, int32_t *acc,
                int route);

/* ---- kernels (ssm/int8_kernels.cu) ---- */
void k8_f32_to_f16(half *dst, const float *src, size_t n, cudaStream_t st);
void k8_fill_i8(int8_t *dst, size_t n, uint64_t seed, cudaStream_t st);       /* uniform in [-127, 127] */
void k8_fill_f16(half *dst, size_t n, uint64_t seed, float scale, cudaStream_t st);
/* resid[rows x D] = embed[tokens[r]] */
void k8_embed(float *resid, const half *embed, const int32_t *tokens, int rows, int D, cudaStream_t st);
/* resid += delta (FP16, may be NULL); v = RMSNorm(resid) * w; outputs (each may be NULL): q = int8
 * q(v, s), out16 = FP16 v, out32 = v. */
void k8_add_rmsnorm(float *resid, const half *delta, const float *w, int8_t *q, float s, half *out16, float *out32,
                    int rows, int D, float eps, cudaStream_t st);
/* q[rows x C] (ld ldq) = int8 q(x, s) of FP16 x (ld ldx) */
void k8_quant_f16(int8_t *q, int ldq, const half *x, int ldx, float s, int rows, int C, cudaStream_t st);
/* Causal depthwise conv1d over B sequences of T rows of int8 x (ld ldx), channel c dequantized with
 * s_in[c], int8 weights w[C x K] with sw[c], FP32 bias (or NULL), SiLU, int8 out with s_out[c].
 * state: int8 [B][C][K-1] (the previous K-1 inputs, oldest first) or NULL (zeros); with update it
 * then holds the last K-1 inputs. */
void k8_conv1d(int8_t *out, int ldo, const int8_t *x, int ldx, int8_t *state, int update, const int8_t *w,
               const float *sw, const float *s_in, const float *bias, const float *s_out, int B, int T, int C,
               int K, cudaStream_t st);

/* Mamba1 selective scan on int8 inputs (see ssm/ops.h op_scan_m1 for the recurrence):
 * u[t][d] = u8*su, delta = softplus(dt8*sdt + dt_bias[d]), B/C[t][n] = q*sbc, z = z8*sz (z8 may be
 * NULL), y FP16 = (C.h + D u) * SiLU(z). state FP32 [B][Di][N]: read when state_in, always written. */
struct scan8_m1_args {
    const int8_t *u; int ldu; float su;
    const int8_t *dt; int lddt; float sdt; const float *dt_bias;
    const int8_t *Bm, *Cm; int ldbc; float sb, sc;
    const int8_t *z; int ldz; float sz;
    const float *A, *D;
    half *y; int ldy;
    float *state; int state_in;
    int B, T, Di, N;
    int nc; float *cstate, *cdt;   /* time chunks (see below); carries [nc x B x Di x N], [nc x B x Di] */
};
void k8_scan_m1(const scan8_m1_args &a, cudaStream_t st);
/* Mamba2 scan on int8 inputs (op_scan_m2): x = x8*sx, dt = clamp(softplus(dt8*sdt + dt_bias[h]),
 * lo, hi), B/C = q*sb/sc (group h / (H/G)), y FP32 = C.h + D_h x. state FP32 [B][H][P][N]. */
struct scan8_m2_args {
    const int8_t *x; int ldx; float sx;
    const int8_t *dt; int lddt; float sdt; const float *dt_bias; float lo, hi;
    const int8_t *Bm, *Cm; int ldbc; float sb, sc;
    const float *A, *D;
    float *y; int ldy;
    float *state; int state_in;
    int B, T, H, P, G, N;
    int nc; float *cstate, *cdt;   /* time chunks; carries [nc x B x H*P x N], [nc x B x H] */
};
void k8_scan_m2(const scan8_m2_args &a, cudaStream_t st);
/* Both scans cut time into nc chunks when one pass over (sequence, channel) would leave the GPU
 * idle (prefill of few sequences): pass 1 scans chunks 0..nc-2 from zero, keeping each chunk's end
 * state and its summed dt (its total decay is exp(A sum dt)); a prefix pass turns those into each
 * chunk's start state from the carried-in state; pass 2 scans every chunk from its start and
 * writes y. nc = 1 is the plain scan (decode). */
int k8_scan_chunks(const mq_config *c, int B, int T, int sm_count);
/* Mamba2 gated RMSNorm (op_gated_rmsnorm, one group of C columns) of FP32 y with int8 z (scale sz)
 * -> FP16 out. */
void k8_gated_rmsnorm(half *out, int ldo, const float *y, int ldy, const int8_t *z, int ldz, float sz, const float *w,
                      int rows, int C, int group, float eps, int norm_before_gate, cudaStream_t st);
/* nll[r] = logsumexp(logits[r,:]) - logits[r, targets[r]], 0 where targets[r] < 0. */
void k8_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V, cudaStream_t st);
/* ---- the batch-1 decode step (ssm/int8_decode.cu) ----
 * Fused kernels for one token of one sequence; the general kernels above stay the reference (and
 * serve every other shape). Requirements (i8g_upload checks them, else decode takes the general
 * path): d_model and d_inner multiples of 64, d_model <= 4096 and d_inner <= 8192 (rows in shared memory), d_conv <= 8, d_state
 * <= 128, Mamba1 dt_rank <= 512 and x_proj rows <= 1024. They are launched as programmatic dependent
 * launches (each may start while its predecessor finishes; int8_decode.cu says what that allows).
 * Norm + linear: rin [K] FP32 (+ delta FP16 [K], may be NULL) -> rout (block 0; must not alias rin),
 * int8 q(RMSNorm * norm_w, s) staged per block, then out[N] = epilogue(x W^T); W [N x K], K % 16 == 0. */
void k8_dec_norm_linear(const float *rin, const half *delta, float *rout, const float *norm_w, float s, float eps,
                        const int8_t *W, int N, int K, const i8_epi &e, void *out, int sm_count, cudaStream_t st);
/* out[N] = epilogue(X[K] W^T), K % 16 == 0, X 16-byte aligned */
void k8_dec_linear(const int8_t *X, const int8_t *W, int N, int K, const i8_epi &e, void *out, int sm_count,
                   cudaStream_t st);
/* Mamba1 conv1d step (x [E] int8, state [E x (K-1)], the conv's weights and per-channel scales) ->
 * xc [E], then x_proj: out [N] = epilogue(xc W^T), W [N x E]. acc [N] int32 and counter must be zero
 * before the first call; every call leaves them zero. E % 64 == 0. */
struct dec_conv_xproj_args {
    const int8_t *x; int8_t *state, *xc;
    const int8_t *cw; const float *csw, *csin, *cb, *csout; int K;
    const int8_t *W; int N, E; i8_epi e; int8_t *out;
    int32_t *acc; unsigned *counter;
};
void k8_dec_conv_xproj(const dec_conv_xproj_args &a, cudaStream_t st);
/* Mamba1 dt_proj (dtw [E x R] . xdbl[0, R), epilogue s_xp * dt_sw, requantized with dt_qs) and the
 * scan step of k8_scan_m1 on u [E], B = xdbl[R, R+N), C = xdbl[R+N, R+2N), z [E]; state [E x N]. */
struct dec_dt_scan_args {
    const int8_t *xdbl; int R; float s_xp;
    const int8_t *dtw; const float *dt_sw, *dt_qs, *dt_bias; float sdt;
    const int8_t *u; float su; float sb, sc;
    const int8_t *z; float sz;
    const float *A, *D;
    float *state; half *y;
    int E, N;
};
void k8_dec_dt_scan(const dec_dt_scan_args &a, cudaStream_t st);
/* Mamba2 conv1d step over C channels (k8_conv1d for T = 1 plus its state update, in one kernel). */
void k8_dec_conv(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw, const float *s_in,
                 const float *bias, const float *s_out, int C, int K, cudaStream_t st);
/* q [E] = int8 q(H y * norm, s) with E = m * P (P = 0: no rotation, q(y, s)); y = y16, or for Mamba2
 * (gnorm_w set) the gated RMSNorm of y32 with z (one group of E), rounded to FP16. */
struct dec_yquant_args {
    const half *y16;
    const float *y32; const int8_t *z; float sz; const float *gnorm_w; float eps; int nbg;
    int E, m, P, log_p; float norm, s;   /* P = 2^log_p */
    int8_t *q;
};
void k8_dec_yquant(const dec_yquant_args &a, cudaStream_t st);

/* FP16 GEMM for lm_head: Y[M x N] FP32 = X[M x K] W[N x K]^T (cuBLAS, FP32 accumulate). */
void k8_gemm_f16_f32out(cublasHandle_t h, const half *X, int ldx, const half *W, float *Y, int ldy, int M, int N,
                        int K);

#endif
