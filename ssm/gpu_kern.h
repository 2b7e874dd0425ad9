/* Inside the CUDA forward (C++ only, for the ssm .cu files): the device-side structs behind ssm/gpu.h and
 * the launchers of the kernels in ssm/gpu_kernels.cu. Launchers take device pointers, enqueue on
 * `st` and check the launch; none allocates. Activations are row-major with explicit leading
 * dimensions so slices of in_proj / x_proj outputs are used in place. */
#ifndef MQ_SSM_GPU_KERN_H
#define MQ_SSM_GPU_KERN_H
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include "core/gpu.h"
#include "ssm/gpu.h"

typedef __half half;

#define PROF_MAX 4096 /* profiling events per call (ssmg_profile) */

/* Device pointers into the model's one allocation (g->arena). FP16 matrices, FP32 vectors. */
struct ssmg_layer {
    float *norm_w;
    half *in_proj;  float *in_proj_b;   /* bias NULL unless proj_bias */
    float *conv_w, *conv_b;             /* [conv_dim x d_conv] FP32, bias NULL unless conv_bias */
    half *out_proj; float *out_proj_b;
    float *A, *D;                       /* A = -exp(A_log) */
    half *x_proj, *dt_proj; float *dt_proj_b; /* Mamba1 */
    float *dt_bias, *gnorm_w;           /* Mamba2 */
};

struct ssmg_model {
    mq_config cfg;
    half *embed, *lm_head;              /* lm_head == embed when tied */
    float *norm_f;
    ssmg_layer *layers;                 /* host array [n_layer] of device pointers */
    void *arena;                        /* the one cudaMalloc holding every weight */
    size_t bytes, decode_bytes;
    int sm_count;
};

struct ssmg_state {
    const ssmg_model *g;
    int batch;
    unsigned long id;  /* unique per state ever made: keys the decode graph (addresses get reused) */
    float *conv;   /* [n_layer][batch][conv_dim][d_conv-1]: the last d_conv-1 conv inputs, oldest first */
    float *ssm;    /* [n_layer][batch][d_inner][d_state] (Mamba2: d_inner = n_heads*head_dim) */
    size_t conv_per_layer, ssm_per_layer;
};

struct ssmg_ws {
    const ssmg_model *g;
    int batch, seqlen, rows;            /* capacity: rows = batch*seqlen */
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;                      /* cuBLAS workspace (set so graph capture never allocates) */
    int32_t *d_tokens, *d_targets;      /* [rows] */
    float *resid, *hid32, *nll;         /* [rows x d_model] x2, [rows] */
    half *h16, *xz16, *xc16, *xdbl16, *dt16, *y16, *g16, *delta16, *hid16;
    float *chunk_state, *chunk_dt;      /* scan chunk carries: [chunk_cap x state/seq], [chunk_cap x chans] */
    int chunk_cap;                      /* sequences' worth of chunk carries (n_chunks * batch <= this) */
    float *state_scratch;               /* final SSM state of one layer when no ssmg_state is given */
    float *logits; int logit_rows;      /* FP32 logits of up to logit_rows rows */
    int last_B, last_T;                 /* shape of the last prefill/step whose hidden rows are held */
    int prof_on, prof_n;                /* ssmg_profile: events after each op, their op category */
    cudaEvent_t *prof_ev;
    unsigned char *prof_cat;
    double prof_ms[16];
    cudaGraphExec_t graph;              /* decode-step graph and what it was captured for */
    unsigned long graph_state_id; int graph_logits;
    void *arena;
    size_t bytes;
};

/* ---- sizes shared by the model, workspace and scans ---- */
int ssmg_in_dim(const mq_config *c);
int ssmg_conv_dim(const mq_config *c);
/* threads one sequence's scan uses per time chunk (to choose the number of chunks) */
long ssmg_scan_threads_per_seq(const mq_config *c);
/* number of time chunks for a scan of B sequences of T tokens on sm_count SMs */
int ssmg_scan_chunks(const mq_config *c, int B, int T, int sm_count);

/* ---- kernels (ssm/gpu_kernels.cu) ---- */
void k_f32_to_f16(half *dst, const float *src, size_t n, cudaStream_t st);
void k_fill_uniform_f16(half *dst, size_t n, uint64_t seed, float scale, cudaStream_t st);
/* resid[rows x D] = embed[tokens[r]] (FP16 table -> FP32 residual) */
void k_embed(float *resid, const half *embed, const int32_t *tokens, int rows, int D, cudaStream_t st);
/* resid += delta (delta may be NULL); out16 = RMSNorm(resid) * w; out32 (may be NULL) the same in FP32 */
void k_add_rmsnorm(float *resid, const half *delta, const float *w, half *out16, float *out32,
                   int rows, int D, float eps, cudaStream_t st);
/* y[rows x C] += bias[C] */
void k_add_bias(half *y, int ld, const float *bias, int rows, int C, cudaStream_t st);
/* Causal depthwise conv1d + bias + SiLU over B sequences of T rows: out[b*T+t, c] from x rows
 * b*T+t-K+1..b*T+t; rows before t = 0 come from conv_state [B][C][K-1] (NULL: zeros). With
 * update_state the state then holds the last K-1 inputs (fused into the kernel when T == 1). */
void k_conv1d_silu(half *out, int ld_out, const half *x, int ld_x, float *conv_state, int update_state,
                   const float *w, const float *bias, int B, int T, int C, int K, cudaStream_t st);
/* conv_state[b][c][:] <- the last K-1 inputs of sequence b (older state rows when T < K-1). */
void k_conv_state_update(float *conv_state, const half *x, int ld_x, int B, int T, int C, int K,
                         cudaStream_t st);

/* Mamba1 selective scan, FP32 state [B][d_inner][N], chunked over time (see gpu_kernels.cu):
 * dt = softplus(dt_raw + dt_bias) (dt_bias may be NULL: the forward adds dt_proj's bias in the
 * GEMM's output, as the CPU reference does); h = exp(dt*A) h + dt*B*x; y = C.h + D*x; y *= SiLU(z)
 * (z may be NULL). state_in: 1 = start from `state`, 0 = from zeros; the final state is written to `state`.
 * chunk_state / chunk_dt: workspace of n_chunks*B*d_inner*N and n_chunks*B*d_inner floats. */
struct scan1_args {
    const half *x; int ld_x;
    const half *dt; int ld_dt;
    const float *dt_bias, *A, *D;
    const half *Bm, *Cm; int ld_bc;
    const half *z; int ld_z;
    half *y; int ld_y;
    float *state; int state_in;
    float *chunk_state, *chunk_dt;
    int B, T, d_inner, N, n_chunks;
};
void k_scan1(const scan1_args *a, cudaStream_t st);

/* Mamba2 scan, per-head scalar decay, FP32 state [B][H][P][N], chunked over time:
 * dt = clamp(softplus(dt_raw + dt_bias), dt_min, dt_max); h = exp(dt*A_h) h + dt*x B^T;
 * y = h C + D_h x. Head h reads group h / (H / G) of B and C. */
struct scan2_args {
    const half *x; int ld_x;
    const half *dt; int ld_dt;
    const float *dt_bias, *A, *D;
    float dt_min, dt_max;
    const half *Bm, *Cm; int ld_bc;
    half *y; int ld_y;
    float *state; int state_in;
    float *chunk_state, *chunk_dt;
    int B, T, H, P, N, G, n_chunks;
};
void k_scan2(const scan2_args *a, cudaStream_t st);
/* lanes sharing one p row in the Mamba2 scan (16 states each): 1, 2, 4 or 8 for d_state <= 128 */
int ssmg_scan2_group(int N);

/* Gated RMSNorm (Mamba2): v = y * SiLU(z) (norm_before_gate: norm first, gate after), RMS over
 * groups of `group` channels, times w. */
void k_gated_rmsnorm(half *out, int ld_out, const half *y, int ld_y, const half *z, int ld_z,
                     const float *w, int rows, int C, int group, float eps, int norm_before_gate,
                     cudaStream_t st);
/* nll[r] = logsumexp(logits[r,:]) - logits[r, targets[r]], 0 where targets[r] < 0. */
void k_nll(float *nll, const float *logits, const int32_t *targets, int rows, int V, cudaStream_t st);

/* Y[M x N] = X[M x K] * W[N x K]^T (+ bias[N], FP16 output only; may be NULL), FP16 in, FP32
 * accumulate; Y FP16 or (y_f32) FP32. On h's stream: cuBLAS (then a bias kernel), or for M <= 8 with
 * K, ldx multiples of 8 and 16-byte aligned X, W an own GEMV with the bias in its epilogue. */
void gemm_f16(cublasHandle_t h, const half *X, int ldx, const half *W, void *Y, int y_f32, int ldy,
              const float *bias, int M, int N, int K);

#endif
