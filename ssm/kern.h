/* The launchers of every CUDA kernel of the two GPU passes (C++ only, for the CUDA sources of ssm/):
 * shared (conversions, fills, embedding, NLL, conv state, the scans: ssm/kern_common.cu,
 * ssm/scan.cuh), the FP16 pass's (ssm/f16_kernels.cu) and the int8 pass's (ssm/i8_kernels.cu,
 * ssm/i8_gemm.cu, and the fused batch-1 decode of ssm/i8_decode.cu). Launchers take device pointers,
 * enqueue on `st`, check the launch and never allocate. Activations are row-major with explicit
 * leading dimensions, so column slices (x / z / dt of in_proj's output, B / C of x_proj's or the
 * conv's) are used in place. Per-column scale arrays ([N] floats) carry per-tensor scales repeated,
 * so one int8 code path serves per-tensor and per-channel weights and the Mamba2 segments. */
#ifndef MQ_SSM_KERN_H
#define MQ_SSM_KERN_H
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include "core/cfg.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/qrule.h"

typedef __half half;

/* ================================================================ shared */

void k_f32_to_f16(half *dst, const float *src, size_t n, cudaStream_t st);
void k_i8_to_f16(half *dst, const int8_t *src, size_t n, cudaStream_t st); /* int8 codes as FP16 (exact) */
void k_fill_f16(half *dst, size_t n, uint64_t seed, float scale, cudaStream_t st); /* uniform in [-scale, scale) */
void k_fill_i8(int8_t *dst, size_t n, uint64_t seed, cudaStream_t st);              /* uniform in [-127, 127] */
/* 1 when launch_pdl (kern_util.cuh) launches programmatically: sm_90 code loaded and MQ_PDL not 0 */
int k_pdl_on(void);
/* resid[rows x D] = embed[tokens[r]] (FP16 table -> FP32 residual) */
void k_embed(float *resid, const half *embed, const int32_t *tokens, int rows, int D, cudaStream_t st);
/* nll[r] = logsumexp(logits[r,:]) - logits[r, targets[r]], 0 where targets[r] < 0. */
void k_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V, cudaStream_t st);
/* conv_state[b][c][:] <- the last K-1 inputs of sequence b of x [B*T x C] (ld ldx); older state
 * entries when T < K-1. FP32 state from FP16 inputs (FP16 pass), int8 from int8 (int8 pass). */
void k_conv_state_update(float *conv_state, const half *x, int ldx, int B, int T, int C, int K, cudaStream_t st);
void k_conv_state_update(int8_t *conv_state, const int8_t *x, int ldx, int B, int T, int C, int K, cudaStream_t st);
/* Y[M x N] = X[M x K] W[N x K]^T by cuBLAS (FP16 in, FP32 accumulate), Y FP16 or (y_f32) FP32, on
 * h's stream. */
void k_gemm_f16_blas(cublasHandle_t h, const half *X, int ldx, const half *W, void *Y, int y_f32, int ldy, int M, int N,
                     int K);

/* ---- the scans (ssm/scan.cuh) ----
 * Inputs are read through a loader: k_in_f16 (FP16 activations), k_in_i8 (int8 codes times a
 * per-tensor scale, or a scale per column: quamba2's clustered x, B / C per SSD group). raw()
 * fetches, val() turns what raw() fetched into the FP32 value with the loader's one scale; at()
 * applies column c's scale; a kernel that keeps to one column takes scale(c) once and applies it
 * with val_s(). */
struct k_in_f16 {
    const half *p;
    int ld;
    typedef float raw_t;
    static const bool sim = false; /* FP16 pass arithmetic (ssm/scan.cuh) */
    __device__ raw_t raw(size_t r, int c) const { return __half2float(p[r * ld + c]); }
    __device__ float val(raw_t v) const { return v; }
    __device__ float at(size_t r, int c) const { return val(raw(r, c)); }
    __device__ float scale(int) const { return 1.f; }
    __device__ float val_s(raw_t v, float) const { return v; }
};
struct k_in_i8 {
    const int8_t *p;
    int ld;
    float s;
    const float *sv = nullptr; /* a scale per column, or NULL: s for every column */
    typedef int raw_t;
    static const bool sim = true; /* the simulation's arithmetic (ssm/scan.cuh) */
    __device__ raw_t raw(size_t r, int c) const { return p[r * ld + c]; }
    __device__ float val(raw_t v) const { return (float)v * s; }
    __device__ float scale(int c) const { return sv ? __ldg(sv + c) : s; }
    __device__ float at(size_t r, int c) const { return (float)raw(r, c) * scale(c); }
    __device__ float val_s(raw_t v, float sc) const { return (float)v * sc; }
};

/* Mamba1 selective scan (ssm/ops.h op_scan_m1): delta = softplus(dt + dt_bias) (dt_bias NULL: none;
 * the FP16 pass adds dt_proj's bias in its GEMM, the int8 pass here), h = exp(delta A) h +
 * delta B u, y = (C.h + D u) * SiLU(z) (z.p NULL: no gate). int8: x may have a scale per channel
 * (x.sv); dt, B, C and z have one each. state FP32 [B][Di][N]: read when
 * state_in, always written. nc time chunks; cstate / cdt: carries [nc x B x Di x N], [nc x B x Di]
 * (needed when nc > 1). par: the kernel parallel over time (ssm/pscan.cuh; d_state <= 16), nc unused. */
template <class In, class Out>
struct k_scan_m1_args {
    In x, dt, Bm, Cm, z;
    const float *dt_bias, *A, *D;
    Out *y;
    int ldy;
    float *state;
    int state_in;
    int B, T, Di, N;
    int nc;
    float *cstate, *cdt;
    int par = 0;
};
void k_scan_m1(const k_scan_m1_args<k_in_f16, half> &a, cudaStream_t st);
void k_scan_m1(const k_scan_m1_args<k_in_i8, half> &a, cudaStream_t st);
/* Mamba2 scan (op_scan_m2): dt = clamp(softplus(dt + dt_bias[h]), lo, hi), h = exp(dt A_h) h +
 * dt x B^T (group h / (H/G) of B and C), y = h C + D_h x. int8: x may have a scale per column, B and
 * C one per SSD group (sv repeating it over the group's N columns); dt one. state FP32 [B][H][P][N]; carries
 * [nc x B x H*P x N], [nc x B x H]. ssd_q > 0: the chunked SSD form (ssm/ssd.cuh) with chunks of
 * ssd_q tokens, nc unused, the carries sized for cdiv(T, ssd_q) chunks. */
template <class In, class Out>
struct k_scan_m2_args {
    In x, dt, Bm, Cm;
    const float *dt_bias, *A, *D;
    float lo, hi;
    Out *y;
    int ldy;
    float *state;
    int state_in;
    int B, T, H, P, G, N;
    int nc;
    float *cstate, *cdt;
    int ssd_q = 0;
};
void k_scan_m2(const k_scan_m2_args<k_in_f16, half> &a, cudaStream_t st);
void k_scan_m2(const k_scan_m2_args<k_in_i8, float> &a, cudaStream_t st);
/* lanes sharing one p row in the Mamba2 scan (16 states each): 1, 2, 4 or 8 for d_state <= 128 */
int k_scan_m2_group(int N);
/* time chunks for a scan of B sequences of T tokens on sm_count SMs, chunks of >= min_chunk steps */
int k_scan_chunks(const mq_config *c, int B, int T, int sm_count, int min_chunk);
/* the chunk length of the SSD form for a Mamba2 scan of T tokens per sequence (config.json's
 * chunk_size as a multiple of 64 in [64, 256]), or 0: the sequential kernel (Mamba1, decode and
 * other short calls, d_state > 128, MQ_SSD=0) */
int k_scan_ssd_chunk(const mq_config *c, int T);
/* 1 when a Mamba1 scan of B x T tokens on sm_count SMs takes the kernel parallel over time (d_state
 * <= 16, T >= 64, B x d_inner channels too few for the sequential kernel; MQ_PSCAN=0 / 1: never /
 * whenever it can), else 0 */
int k_scan_m1_par(const mq_config *c, int B, int T, int sm_count);

/* ================================================================ the FP16 pass */

/* resid += delta (delta may be NULL); out16 = RMSNorm(resid) * w; out32 (may be NULL) the same in FP32 */
void k_f16_add_rmsnorm(float *resid, const half *delta, const float *w, half *out16, float *out32, int rows, int D,
                       float eps, cudaStream_t st);
/* y[rows x C] += bias[C] */
void k_f16_add_bias(half *y, int ld, const float *bias, int rows, int C, cudaStream_t st);
/* Causal depthwise conv1d + bias + SiLU over B sequences of T rows: out[b*T+t, c] from x rows
 * b*T+t-K+1..b*T+t; rows before t = 0 come from conv_state [B][C][K-1] (NULL: zeros). With
 * update_state the state then holds the last K-1 inputs (fused into the kernel when T == 1). */
void k_f16_conv1d_silu(half *out, int ld_out, const half *x, int ld_x, float *conv_state, int update_state,
                       const float *w, const float *bias, int B, int T, int C, int K, cudaStream_t st);
/* Gated RMSNorm (Mamba2): v = y * SiLU(z) (norm_before_gate: norm first, gate after), RMS over
 * groups of `group` channels, times w. */
void k_f16_gated_rmsnorm(half *out, int ld_out, const half *y, int ld_y, const half *z, int ld_z, const float *w,
                         int rows, int C, int group, float eps, int norm_before_gate, cudaStream_t st);
/* Y[M x N] = X[M x K] * W[N x K]^T (+ bias[N], FP16 output only; may be NULL), FP16 in, FP32
 * accumulate; Y FP16 or (y_f32) FP32. On h's stream: cuBLAS (then a bias kernel), or for M <= 8 with
 * K, ldx multiples of 8 and 16-byte aligned X, W an own GEMV with the bias in its epilogue. */
void k_f16_gemm(cublasHandle_t h, const half *X, int ldx, const half *W, void *Y, int y_f32, int ldy, const float *bias,
                int M, int N, int K);

/* ================================================================ the int8 pass */

/* Epilogue of an int8 linear layer, per output element (m, n) with acc = sum_k X[m][k] W[n][k]:
 *   v = (float)acc * (sx * sw[n]) + (bias ? bias[n] : 0)
 *   out: int8 q(v, qs[n]) when kind == K_EPI_I8, FP16 or FP32 v otherwise. (Device pointers.) */
enum { K_EPI_I8 = 0, K_EPI_F16 = 1, K_EPI_F32 = 2 };
struct k_epi {
    float sx;
    const float *sw, *bias, *qs;
    int kind;
};
static inline k_epi k_epi_make(float sx, const float *sw, const float *bias, const float *qs, int kind) {
    k_epi e;
    e.sx = sx, e.sw = sw, e.bias = bias, e.qs = qs, e.kind = kind;
    return e;
}
/* the epilogue of output n with its parameters read ahead (sc = sx * sw[n], b = bias[n], qs = qs[n]) */
static __device__ __forceinline__ void k_epi_store(const k_epi &e, float acc, float sc, float b, float qs, size_t i,
                                                   void *out) {
    float v = acc * sc; /* acc: an int32 sum (exact in FP32 up to 2^24), or W4A8's FP32 sum */
    if (e.bias) v += b;
    if (e.kind == K_EPI_I8) ((int8_t *)out)[i] = qr_quant_i8(v, qs);
    else if (e.kind == K_EPI_F16) ((half *)out)[i] = __float2half(v);
    else ((float *)out)[i] = v;
}
static __device__ __forceinline__ void k_epi_put(const k_epi &e, int32_t acc, int m, int n, void *out, int ldo) {
    k_epi_store(e, acc, e.sx * e.sw[n], e.bias ? e.bias[n] : 0.f, e.kind == K_EPI_I8 ? e.qs[n] : 0.f,
                (size_t)m * ldo + n, out);
}

/* resid += delta (FP16, may be NULL); v = RMSNorm(resid) * w (double sum of squares, the CPU's
 * formula); outputs (each may be NULL): q = int8 q(v, s), out16 = FP16 v, out32 = v. */
void k_i8_add_rmsnorm(float *resid, const half *delta, const float *w, int8_t *q, float s, half *out16, float *out32,
                      int rows, int D, float eps, cudaStream_t st);
/* q[rows x C] (ld ldq) = int8 q(x, s) of FP16 x (ld ldx) */
void k_i8_quant_f16(int8_t *q, int ldq, const half *x, int ldx, float s, int rows, int C, cudaStream_t st);
/* Mamba1 x_proj of a clustered x (quamba2: a scale per input channel sx[K], so no one int8 GEMM
 * scale): out[M x N] (ld ldo) = int8 q(sw[n] * sum_k W[n][k] (X[m][k] sx[k]), qs[n]). W16 holds W's
 * int8 codes as FP16 (exact); X sx is split into FP16 hi + lo (split [2M x K]), one cuBLAS GEMM with
 * FP32 sums gives both products (acc [2M x N] FP32), so the result is at FP32 rounding distance of
 * the CPU mirror's FP32 linear (ssm/int8_ref.c). blas must run on st. */
void k_i8_linear_xcols(cublasHandle_t blas, const int8_t *X, int ldx, const float *sx, const half *W16, int M, int N, int K,
                       const float *sw, const float *qs, int8_t *out, int ldo, half *split, float *acc, cudaStream_t st);
/* Causal depthwise conv1d over B sequences of T rows of int8 x (ld ldx), channel c dequantized with
 * s_in[c], int8 weights w[C x K] with sw[c], FP32 bias (or NULL), SiLU, int8 out with s_out[c].
 * state: int8 [B][C][K-1] (the previous K-1 inputs, oldest first) or NULL (zeros); with update it
 * then holds the last K-1 inputs. */
void k_i8_conv1d(int8_t *out, int ldo, const int8_t *x, int ldx, int8_t *state, int update, const int8_t *w,
                 const float *sw, const float *s_in, const float *bias, const float *s_out, int B, int T, int C, int K,
                 cudaStream_t st);
/* Mamba2 gated RMSNorm (op_gated_rmsnorm) of FP32 y with int8 z (scale sz) -> FP16 out. */
void k_i8_gated_rmsnorm(half *out, int ldo, const float *y, int ldy, const int8_t *z, int ldz, float sz, const float *w,
                        int rows, int C, int group, float eps, int norm_before_gate, cudaStream_t st);

/* ---- int8 linear layers (ssm/i8_gemm.cu) ----
 * Shared context of the GEMMs of one workspace: stream, cuBLASLt handle and workspace, and a small
 * cache of cuBLASLt plans (descriptors + heuristic algorithm) per shape. */
struct k_lt_plan;
struct k_gemm_ctx {
    cudaStream_t st;
    cublasLtHandle_t lt;
    void *lt_ws;
    size_t lt_ws_bytes;
    k_lt_plan *plans;
    int nplans;
    int sm_count, cc_major;
};
void k_gemm_ctx_init(k_gemm_ctx *c, cudaStream_t st, void *lt_ws, size_t lt_ws_bytes);
void k_gemm_ctx_free(k_gemm_ctx *c);
/* GEMM routes: AUTO picks (cuBLASLt for prefill, the GEMV for <= 8 rows, the tensor-core MMA kernel
 * for 9-64 rows, the tiled kernel for shapes cuBLASLt refuses); the others force one route where
 * its shape requirements hold. Tests only. */
enum { K_ROUTE_AUTO = 0, K_ROUTE_LT = 1, K_ROUTE_TILED = 2, K_ROUTE_GEMV = 3, K_ROUTE_MMA = 4, K_NROUTES = 5 };
void k_i8_set_route(int route);
void k_i8_route_counts(long counts[K_NROUTES]); /* [unused, cuBLASLt, tiled, GEMV, MMA] calls so far */
/* out[M x N] (ld ldo) = epilogue(X[M x K] (ld ldx) * W[N x K]^T); acc: int32 scratch of M*N. */
void k_i8_linear(k_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, const k_epi &e,
                 void *out, int ldo, int32_t *acc);
/* acc[M x N] (ld N) = X W^T exactly by cuBLASLt (route LT or AUTO, when it takes the shape) or the
 * tiled kernel; returns the route taken. */
int k_i8_gemm_i32(k_gemm_ctx *c, const int8_t *X, int ldx, const int8_t *W, int M, int N, int K, int32_t *acc,
                  int route);

/* ---- the batch-1 decode step (ssm/i8_decode.cu) ----
 * Fused kernels for one token of one sequence; the general kernels above stay the reference (and
 * serve every other shape). Requirements (checked at upload, else decode takes the general path):
 * d_model and d_inner multiples of 64, d_model <= 4096 and d_inner <= 8192 (rows in shared
 * memory), d_conv <= 8, d_state <= 128, Mamba1 dt_rank <= 512 and x_proj rows <= 1024. They are
 * launched as programmatic dependent launches (i8_decode.cu says what that allows).
 * Norm + linear: rin [K] FP32 (+ delta FP16 [K], may be NULL) -> rout (block 0; must not alias rin),
 * int8 q(RMSNorm * norm_w, s) staged per block, then out[N] = epilogue(x W^T); W [N x K], K % 16 == 0. */
void k_i8_dec_norm_linear(const float *rin, const half *delta, float *rout, const float *norm_w, float s, float eps,
                          const int8_t *W, int N, int K, const k_epi &e, void *out, int sm_count, cudaStream_t st);
/* out[N] = epilogue(X[K] W^T), K % 16 == 0, X 16-byte aligned */
void k_i8_dec_linear(const int8_t *X, const int8_t *W, int N, int K, const k_epi &e, void *out, int sm_count,
                     cudaStream_t st);
/* Mamba1 conv1d step (x [E] int8, state [E x (K-1)], the conv's weights and per-channel scales) ->
 * xc [E], then x_proj: out [N] = epilogue(xc W^T), W [N x E]. acc [N] int32 and counter must be zero
 * before the first call; every call leaves them zero. E % 64 == 0. With xsv (quamba2's clustered x,
 * a scale per channel, so no int32 sum): FP32 sums of W[n][k] (xc[k] xsv[k]) per block of 64
 * channels into part [E / 64 x N], added in block order by the last block, out = int8 q(sum
 * e.sw[n], e.qs[n]) (k_i8_linear_xcols' values up to FP32 order). */
struct k_dec_conv_xproj_args {
    const int8_t *x;
    int8_t *state, *xc;
    const int8_t *cw;
    const float *csw, *csin, *cb, *csout;
    int K;
    const int8_t *W;
    int N, E;
    k_epi e;
    int8_t *out;
    int32_t *acc;
    unsigned *counter;
    const float *xsv = nullptr;
    float *part = nullptr;
};
void k_i8_dec_conv_xproj(const k_dec_conv_xproj_args &a, cudaStream_t st);
/* Mamba1 dt_proj (dtw [E x R] . xdbl[0, R), epilogue s_xp * dt_sw, requantized with dt_qs) and the
 * scan step of k_scan_m1 on u [E], B = xdbl[R, R+N), C = xdbl[R+N, R+2N), z [E]; state [E x N]. */
struct k_dec_dt_scan_args {
    const int8_t *xdbl;
    int R;
    float s_xp;
    const int8_t *dtw;
    const float *dt_sw, *dt_qs, *dt_bias;
    float sdt;
    const int8_t *u;
    float su, sb, sc;
    const float *suv = nullptr; /* a scale of u per channel (quamba2's clustered x), or NULL: su */
    const int8_t *z;
    float sz;
    const float *A, *D;
    float *state;
    half *y;
    int E, N;
};
void k_i8_dec_dt_scan(const k_dec_dt_scan_args &a, cudaStream_t st);
/* Mamba2 conv1d step over C channels (k_i8_conv1d for T = 1 plus its state update, in one kernel). */
void k_i8_dec_conv(int8_t *out, const int8_t *x, int8_t *state, const int8_t *w, const float *sw, const float *s_in,
                   const float *bias, const float *s_out, int C, int K, cudaStream_t st);
/* q [E] = int8 q(H y * norm, s) with E = m * P (P = 0: no rotation, q(y, s)); y = y16, or for Mamba2
 * (gnorm_w set) the gated RMSNorm of y32 with z (one group of E), rounded to FP16. */
struct k_dec_yquant_args {
    const half *y16;
    const float *y32;
    const int8_t *z;
    float sz;
    const float *gnorm_w;
    float eps;
    int nbg;
    int E, m, P, log_p; /* P = 2^log_p */
    float norm, s;
    int8_t *q;
};
void k_i8_dec_yquant(const k_dec_yquant_args &a, cudaStream_t st);
/* The Hadamard case of it for `rows` rows of y16 (rows x E, and q the same): the decode batches'
 * y quantize. Needs P > 0, m <= K_YQ_MAX_M and E floats of shared memory (at most 48 KB). */
#define K_YQ_MAX_M 28 /* the largest Hadamard block order had.h builds (28 = 7 * 4) */
void k_i8_yquant_rows(const k_dec_yquant_args &a, int rows, cudaStream_t st);

/* ================================================================ 4-bit weights (ssm/w4_gemv.cu) */
/* Quamba2's W4A16 / W4A8 linear layers for decode: Y[M x N] = X[M x K] W^T with int4 W in the GPU
 * layout of k_w4_repack (K / 2 bytes a row, W 16-byte aligned) and FP32 scales ws[N][K / group];
 * 1 <= M <= 8, K and group multiples of 32, group dividing K, X and its rows (ldx) 16-byte aligned.
 * The shapes are the caller's to check (a violation is an internal error). Output (m, n): v = sum * sx +
 * bias[n] (bias may be NULL; W4A16: sx = 1), stored FP16 / FP32, or (W4A8 only) int8 q(v, qs[n]). */
struct k_w4_epi {
    float sx;
    const float *bias, *qs;
    int kind; /* K_EPI_I8, K_EPI_F16, K_EPI_F32 */
};
/* The artifact's codes q[rows x cols] (-7..7, one per int8) in the GPU layout; cols % 8 == 0. Host. */
void k_w4_repack(const int8_t *q, int rows, int cols, uint8_t *out);
void k_w4a16_gemv(const half *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                  const k_w4_epi &e, void *out, int ldo, int sm_count, cudaStream_t st);
void k_w4a8_gemv(const int8_t *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                 const k_w4_epi &e, void *out, int ldo, int sm_count, cudaStream_t st);
/* W4A8 on the tensor cores for any number of rows: up to 32 (64 without part) the int8 MMA route's
 * kernel (ssm/i8_gemm.cu, 32 rows a launch) fed the int4 W of k_w4_repack's layout, unpacked in
 * registers, each 64 columns' exact int32 sums times the row's group scale added in FP32; from 65 rows
 * (prefill) tiles of 128 x 128 through shared memory, each group's int32 sums times its scale in
 * FP32, and for 33-64 rows with part the same in tiles of 128 x 64 with K split; then k_w4a8_gemv's
 * epilogue. Needs
 * k_w4a8_mma_ok(K, group) (multiples of 64), X, ldx and W 16-byte aligned. */
int k_w4a8_mma_ok(int K, int group);
/* 33-64 rows with part (device, k_w4a8_part_floats(M, N) floats; NULL: none): K split into slices of
 * whole groups over the SMs (sm_count), each slice's FP32 sums in part, added in slice order. */
#define K_W4_SPLIT_MAX 8
size_t k_w4a8_part_floats(int M, int N);
void k_w4a8_mma(const int8_t *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                const k_w4_epi &e, void *out, int ldo, float *part, int sm_count, cudaStream_t st);
/* W4A16 on the tensor cores (the W4A16 pass's layout, k_w4_repack_mma: the mma.sync A fragments in
 * load order, rows padded to 16, k_w4_mma_bytes of them): Y = X W^T for 1..K_W4_MMA_MAX_M rows,
 * exact FP32 sums of 64 columns times the group scale; needs k_w4a16_mma_ok(K, group) (multiples of
 * 64), X 4-byte aligned, FP16 / FP32 output. Host repack; 1 if the shapes fit. */
#define K_W4_MMA_MAX_M 16
void k_w4_repack_mma(const int8_t *q, int rows, int cols, uint8_t *out);
size_t k_w4_mma_bytes(int rows, int cols);
int k_w4a16_mma_ok(int K, int group);
void k_w4a16_mma(const half *X, int ldx, const uint8_t *W, const float *ws, int group, int M, int N, int K,
                 const k_w4_epi &e, void *out, int ldo, cudaStream_t st);
/* W16[N x K] = q * s as FP16 from the mma layout (prefill then goes through cuBLAS). */
void k_w4_dequant_mma_f16(const uint8_t *W, const float *ws, int group, int N, int K, half *out, cudaStream_t st);
/* bytes of random codes (-7..7) in the GPU layout, for benchmark models */
void k_w4_fill_random(uint8_t *W, size_t bytes, uint64_t seed, cudaStream_t st);

#endif
