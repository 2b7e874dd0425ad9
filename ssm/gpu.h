/* FP16 inference of Mamba1 / Mamba2 on one CUDA GPU: weights uploaded from an mq_model, batched
 * prefill (B sequences of T tokens), single-token decode with conv and SSM state kept on the GPU,
 * per-token NLL (lm_head by cuBLAS, fused log-sum-exp), and activation hooks for calibration.
 * Built without CUDA, every entry point fails with "built without CUDA" (ssm/gpu_nocuda.c). */
#ifndef MQ_SSM_GPU_H
#define MQ_SSM_GPU_H
#include <stddef.h>
#include <stdint.h>
#include "ssm/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- precision ----
 * FP16 on the GPU: embedding / lm_head, in_proj, x_proj, dt_proj, out_proj (GEMMs: FP16 in, FP32
 * accumulate, FP16 out; lm_head writes FP32 logits). FP32: A, D, dt biases, conv1d weight and bias,
 * every norm weight, the residual stream, RMSNorm / softplus / SiLU arithmetic, the SSM state and
 * its scan arithmetic. Activations between ops are FP16 (what the int8 recipes quantize). */

typedef struct ssmg_model ssmg_model; /* weights on the GPU; owned by the caller, ssmg_model_free */
typedef struct ssmg_ws ssmg_ws;       /* activations for up to (batch, seqlen), a stream, cuBLAS */
typedef struct ssmg_state ssmg_state; /* decode state of a batch: conv window + SSM state per layer */

/* Copies m to the GPU (m may be freed afterwards). NULL + mq_errmsg() when no GPU is usable,
 * the shapes are unsupported (d_conv > 8, Mamba1 d_state > 64, Mamba2 d_state > 128) or the
 * GPU memory is too small. */
ssmg_model *ssmg_upload(const mq_model *m);
/* A model of cfg's shapes with random weights made on the GPU (benchmarks; no host copy). */
ssmg_model *ssmg_model_random(const mq_config *cfg, uint64_t seed);
void ssmg_model_free(ssmg_model *g);
const mq_config *ssmg_config(const ssmg_model *g);
/* Bytes of weights one decode step reads (every layer, norm_f, lm_head): the bandwidth floor. */
size_t ssmg_decode_bytes(const ssmg_model *g);
size_t ssmg_model_bytes(const ssmg_model *g); /* all device memory the model holds */

/* Workspace for calls of up to `batch` sequences of up to `seqlen` tokens (decode uses seqlen 1
 * rows of it). Holds its own CUDA stream and cuBLAS handle; one thread uses it at a time. The
 * model must outlive it. NULL + error when the GPU memory is too small. */
ssmg_ws *ssmg_ws_new(const ssmg_model *g, int batch, int seqlen);
void ssmg_ws_free(ssmg_ws *w);
size_t ssmg_ws_bytes(const ssmg_ws *w);

/* Decode state for `batch` sequences, zeroed. The model must outlive it. */
ssmg_state *ssmg_state_new(const ssmg_model *g, int batch);
void ssmg_state_reset(ssmg_state *s);
void ssmg_state_free(ssmg_state *s);

/* ---- activation hooks (same roles and points as mq_hooks in ssm/model.h) ----
 * fn runs on the host, in stream order, right after the activation is produced on the GPU and
 * before anything consumes it. x is a DEVICE pointer; element (r, c) is x[r*ld + c]; rows are
 * b*T + t for a batch of B sequences of T tokens (decode: T = 1). The data is FP16 (SSMG_F16)
 * except MQ_ACT_SSM_STATE, FP32 with rows = B * d_inner (Mamba2: B * n_heads * head_dim) and
 * cols = d_state. A hook may read the data (calibration) or rewrite it in place (simulated
 * quantization); it must do its GPU work on `stream` (a cudaStream_t) or synchronize it first.
 * MQ_ACT_LM_HEAD_IN (layer -1) is the FP16 copy of norm_f's output that lm_head reads. Mamba1's
 * MQ_ACT_DT is dt_proj's output with its bias, before softplus, like the CPU's. Decode steps with hooks
 * run without a CUDA graph. */
typedef enum { SSMG_F16 = 0, SSMG_F32 = 1 } ssmg_dtype;
typedef struct {
    void (*fn)(void *ctx, int layer, mq_act_role role, void *x, ssmg_dtype dtype, int rows, int cols,
               int ld, void *stream);
    void *ctx;
} ssmg_hooks;

/* ---- forward ----
 * Prefill of tokens[batch x T] (host, row-major). state: NULL for fresh sequences whose final
 * state is dropped, or a state of this batch size to continue from (reset it for fresh sequences)
 * that receives the final conv and SSM states, so ssmg_step can go on after it. hidden: NULL or
 * host [batch*T x d_model] FP32 norm_f output. The norm_f output also stays in the workspace for
 * ssmg_logits. Returns 0, or -1 + error (bad token id, batch/T beyond the workspace). */
int ssmg_prefill(const ssmg_model *g, ssmg_ws *w, const int32_t *tokens, int batch, int T,
                 ssmg_state *state, const ssmg_hooks *hooks, float *hidden);
/* Logits of rows [row0, row0+nrows) of the last prefill (or step) into host logits[nrows x vocab]. */
int ssmg_logits(const ssmg_model *g, ssmg_ws *w, int row0, int nrows, float *logits);

/* One token per sequence of state's batch: tokens[batch] (host). hidden: NULL or host
 * [batch x d_model]; logits: NULL or host [batch x vocab]. Without hooks the step runs as a CUDA
 * graph captured on the first call for this (workspace, state, want-logits). Returns when done. */
int ssmg_step(const ssmg_model *g, ssmg_ws *w, ssmg_state *s, const int32_t *tokens,
              const ssmg_hooks *hooks, float *hidden, float *logits);
/* The same step without hooks or host copies: enqueues the graph and returns at once (ssmg_sync
 * waits). with_logits: the graph also runs lm_head into the workspace, as a sampling loop would. */
int ssmg_step_async(const ssmg_model *g, ssmg_ws *w, ssmg_state *s, const int32_t *tokens, int with_logits);
void ssmg_sync(ssmg_ws *w);

/* Per-token NLL of windows tokens[batch x T] (host): nll[b*(T-1) + t] = -log p(tokens[b,t+1] |
 * tokens[b,0..t]) for t < T-1 (nll may be NULL); *sum gets their sum (double). Logits are made in
 * row blocks of the workspace, so batch*T*vocab logits never live at once. Returns 0 or -1. */
int ssmg_nll(const ssmg_model *g, ssmg_ws *w, const int32_t *tokens, int batch, int T,
             const ssmg_hooks *hooks, float *nll, double *sum);

/* Perplexity protocol over a token stream: cut ids[n] into non-overlapping windows of `window`
 * tokens (a short tail is dropped), take the first max_windows (all when <= 0), score every token
 * after the first of each window, `batch` windows per GPU call. *nll_sum and *n_scored receive the
 * totals; ppl = exp(nll_sum / n_scored). Makes and frees its own workspace. Returns 0 or -1. */
int ssmg_eval_windows(const ssmg_model *g, const int32_t *ids, size_t n, int window,
                      int max_windows, int batch, double *nll_sum, long *n_scored);

/* Per-op GPU time of prefill / NLL calls (CUDA events between the ops; not in decode graphs) while
 * on. ssmg_profile_report writes "op ms" pairs accumulated since the last report, then resets. */
void ssmg_profile(ssmg_ws *w, int on);
int ssmg_profile_report(ssmg_ws *w, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
