/* W8A8 inference of an int8 artifact (quantize/q.h's q_model) on one CUDA GPU: the int8 pass that
 * the CPU simulation (quantize/sim.c) specifies. Every quantized activation of docs/recipe.md is an
 * int8 tensor here, made by the kernel that produces it with core/qrule.h's rule and the artifact's scale:
 *
 *   resid (FP32) -> add + RMSNorm -> int8 h                        [in_proj.input_scale]
 *   in_proj  int8 GEMM (int32) -> epilogue: x*s_x*s_w -> int8      [conv_in / z / dt scales per column]
 *   conv1d   int8 x, int8 w, FP32 bias, SiLU -> int8               [ssm_x (M2: x, B, C scales)]
 *   Mamba1:  x_proj int8 GEMM -> int8 [dt_low, B, C]               [x_proj.output_scale]
 *            dt_proj int8 GEMM (no bias, Quamba) -> int8 dt        [dt_proj.output_scale]
 *            scan: int8 u, dt (+ dt_proj.bias, softplus), B, C, z dequantized in registers,
 *                  FP32 state and exp, y * SiLU(z) -> FP16 y
 *   Mamba2:  scan: int8 x, dt (+ dt_bias, softplus, clamp), B, C -> FP32 y; gated RMSNorm with
 *                  int8 z -> FP16
 *   y -> Hadamard rotation + int8 quantize in one kernel (had_cuda_transform_quant_f16), or plain
 *        quantize without the rotation                             [out_proj.input_scale]
 *   out_proj int8 GEMM -> epilogue -> FP16, added to the FP32 residual by the next norm
 *   norm_f -> FP16 -> lm_head (FP16 cuBLAS, or int8 with --quantize-head) -> FP32 logits, NLL.
 *
 * GEMMs: cuBLASLt int8 x int8 -> int32 (CUBLAS_COMPUTE_32I) in the "TN" form it requires, with the
 * scales applied by an epilogue kernel; decode-sized products (<= 8 rows) go through an own __dp4a
 * GEMV with the epilogue fused; shapes cuBLASLt refuses go through an own tiled int8 kernel. The
 * conv state (the last d_conv-1 int8 conv inputs) and the FP32 SSM state are carried for decode.
 * Built without CUDA, every entry point fails with "built without CUDA" (ssm/int8_nocuda.c). */
#ifndef MQ_SSM_INT8_H
#define MQ_SSM_INT8_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" { /* the module headers below are C headers without their own guards */
#endif
#include "quantize/q.h"

typedef struct i8g_model i8g_model; /* weights and scales on the GPU */
typedef struct i8g_ws i8g_ws;       /* activations for up to (batch, seqlen), stream, cuBLAS(Lt) */
typedef struct i8g_state i8g_state; /* decode state: int8 conv window + FP32 SSM state per layer */

/* Copies qm to the GPU (qm may be freed afterwards). NULL + mq_errmsg() when no GPU is usable, a
 * quantized role has no scale, the shapes are unsupported (d_conv > 8, d_state > 128, a Hadamard
 * order other than d_inner) or the GPU memory is too small. */
i8g_model *i8g_upload(const q_model *qm);
/* A model of cfg's shapes with random int8 weights and plausible scales made on the GPU, for
 * benchmarks (hadamard: rotate y as quamba does). */
i8g_model *i8g_model_random(const mq_config *cfg, int hadamard, uint64_t seed);
void i8g_model_free(i8g_model *g);
const mq_config *i8g_config(const i8g_model *g);
size_t i8g_model_bytes(const i8g_model *g);
size_t i8g_decode_bytes(const i8g_model *g);   /* weight bytes one decode step reads */

/* Workspace for calls of up to `batch` sequences of up to `seqlen` tokens; own stream and handles,
 * one thread at a time. The model must outlive it. */
i8g_ws *i8g_ws_new(const i8g_model *g, int batch, int seqlen);
void i8g_ws_free(i8g_ws *w);

i8g_state *i8g_state_new(const i8g_model *g, int batch);
void i8g_state_reset(i8g_state *s);
void i8g_state_free(i8g_state *s);

/* Read-only observation of the pass (tests, verify): fn runs on the host in stream order right after
 * the tensor is made; x is a DEVICE pointer, element (r, c) at x[r*ld + c], rows b*T + t.
 * role is an mq_act_role, or I8G_RESID: the FP32 residual stream after block `layer` (the block
 * output, [rows x d_model]). dtype says what x holds; scale is the int8 tensor's scale (0 for float
 * data; a role with per-column scales (M2 CONV_IN) reports its first). For Mamba1 MQ_ACT_DT the int8
 * values are dt_proj's output WITHOUT its bias (add dt_proj.bias after dequantizing to get the
 * simulation's value). SSM_OUT is the FP16 y before the rotation, OUT_PROJ_IN its int8 (rotated)
 * quantization. */
#define I8G_RESID MQ_ACT_NROLES
typedef enum { I8G_I8 = 0, I8G_F16 = 1, I8G_F32 = 2 } i8g_dtype;
typedef struct {
    void (*fn)(void *ctx, int layer, int role, const void *x, i8g_dtype dtype, float scale, int rows, int cols,
               int ld, void *stream);
    void *ctx;
} i8g_hooks;

/* Prefill of tokens[batch x T] (host). state: NULL (fresh sequences, final state dropped) or a
 * state of this batch to continue from and update. hidden: NULL or host [batch*T x d_model] FP32
 * norm_f output. Returns 0, or -1 + error (bad token id, shape beyond the workspace). */
int i8g_prefill(const i8g_model *g, i8g_ws *w, const int32_t *tokens, int batch, int T, i8g_state *s,
                const i8g_hooks *hk, float *hidden);
/* Logits (FP32, host [nrows x vocab]) of rows [row0, row0+nrows) of the last prefill or step. */
int i8g_logits(const i8g_model *g, i8g_ws *w, int row0, int nrows, float *logits);
/* One token per sequence of s's batch: tokens[batch] (host); hidden / logits: NULL or host. */
int i8g_step(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, float *hidden, float *logits);
/* The same step through a CUDA graph (captured on the first call for this workspace, state and
 * want-logits; launched afterwards): what decode loops use. logits: NULL or host [batch x vocab]. */
int i8g_step_graph(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, float *logits);
/* The graph step without host copies: enqueues it and returns (i8g_sync waits); with_logits: the
 * graph also runs lm_head into the workspace, as a sampling loop would (ssmg_step_async's twin). */
int i8g_step_async(const i8g_model *g, i8g_ws *w, i8g_state *s, const int32_t *tokens, int with_logits);
void i8g_sync(i8g_ws *w);
/* Per-token NLL of windows tokens[batch x T]: nll[b*(T-1) + t] (nll may be NULL), *sum their sum. */
int i8g_nll(const i8g_model *g, i8g_ws *w, const int32_t *tokens, int batch, int T, const i8g_hooks *hk,
            float *nll, double *sum);

/* Per-op GPU time of prefill calls (CUDA events between the ops; not inside decode graphs) while on;
 * i8g_profile_report writes "op ms" pairs accumulated since the last report, then resets. */
void i8g_profile(i8g_ws *w, int on);
int i8g_profile_report(i8g_ws *w, char *buf, size_t n);

/* GEMM routes, for tests and benchmarks: I8G_GEMM_AUTO picks as described above; the others force
 * one route where its shape requirements hold (else AUTO's choice). Counters of the routes taken. */
typedef enum { I8G_GEMM_AUTO = 0, I8G_GEMM_LT = 1, I8G_GEMM_TILED = 2, I8G_GEMM_GEMV = 3 } i8g_gemm_route;
void i8g_set_gemm_route(i8g_gemm_route r);
void i8g_gemm_counts(long counts[4]);   /* [unused, cuBLASLt, tiled, GEMV] calls so far */
/* Decode steps of one sequence take the fused kernels (ssm/int8_decode.cu) where the shapes allow
 * (default on); off: the general kernels, which the fused ones are tested against. A CUDA graph
 * keeps the path it was captured with. */
void i8g_set_decode_fused(int on);

#ifdef __cplusplus
}
#endif
#endif
