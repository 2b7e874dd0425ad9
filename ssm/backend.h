/* One forward interface for every precision and device. A backend holds a model's weights where it
 * runs and a workspace for calls of up to (batch x seqlen) tokens; eval, generate, verify, calib,
 * sweep, the tests and the benchmarks drive all four the same way:
 *   BE_CPU_F32   the FP32 reference forward (ssm/model.h) on an mq_model
 *   BE_CPU_SIM   the simulated W8A8 forward of a quantized model (ssm/qmodel.h) on the CPU
 *   BE_CUDA_F16  the FP16 forward on one CUDA GPU
 *   BE_CUDA_INT8 the GPU pass of a quantized model on one CUDA GPU: the int8 pass (the simulation's
 *                bit-level twin; quamba2 W8A8 and W4A8 too), or for quamba2 W4A16 the FP16 pass with
 *                int4 in_proj / out_proj (the simulation up to FP16 rounding)
 * Built without CUDA, or with no usable GPU, the CUDA kinds fail to open with a message saying why.
 * One thread uses a backend at a time. Tokens, hidden states and logits are host arrays; hooks
 * (ssm/model.h) see each activation where it is produced (device memory for the CUDA kinds, which
 * call them once per batch with rows b*T + t; the CPU kinds call them once per sequence). */
#ifndef MQ_SSM_BACKEND_H
#define MQ_SSM_BACKEND_H
#include <stddef.h>
#include <stdint.h>
#include "ssm/model.h"
#include "ssm/qmodel.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { BE_CPU_F32, BE_CPU_SIM, BE_CUDA_F16, BE_CUDA_INT8, BE_NKINDS } be_kind;

typedef struct be be;             /* owned by the caller: be_free */
typedef struct be_state be_state; /* decode state of a batch (conv window + SSM state per layer): be_state_free */

/* "cpu-f32", "cpu-sim", "cuda-f16", "cuda-int8"; and a phrase for people ("FP16 on the GPU"). */
const char *be_kind_name(be_kind k);
const char *be_kind_text(be_kind k);
int be_kind_is_cuda(be_kind k);
/* --device cpu|cuda|auto -> *cuda (auto: a usable GPU). -1 + message: unknown name, or cuda asked
 * for without a usable GPU. */
int be_device_parse(const char *device, int *cuda);

/* ---- opening ----
 * A float model: BE_CPU_F32 keeps a pointer to m (m must outlive the backend); BE_CUDA_F16 copies
 * it to the GPU (m may be freed afterwards). A quantized model: BE_CPU_SIM builds the simulation's
 * FP32 model and keeps a pointer to qm (qm must outlive the backend); BE_CUDA_INT8 uploads qm.
 * A random model of cfg's shapes made on the GPU (benchmarks; hadamard: rotate y as quamba does,
 * int8 only). batch x seqlen: the largest call (decode steps use rows of it). NULL + mq_errmsg(). */
be *be_open_model(const mq_model *m, be_kind kind, int batch, int seqlen);
be *be_open_qmodel(const q_model *qm, be_kind kind, int batch, int seqlen);
be *be_open_random(const mq_config *cfg, be_kind kind, int hadamard, uint64_t seed, int batch, int seqlen);
/* Random quamba2 W4A16 weights (int4 in_proj / out_proj, groups of `group` columns, y rotated) on the
 * GPU, kind BE_CUDA_INT8 (benchmarks). */
be *be_open_random_w4a16(const mq_config *cfg, int group, uint64_t seed, int batch, int seqlen);
/* Random quamba2 W8A8 weights (the int8 pass with its scales per column: clustered x, B / C per SSD
 * group; y rotated), or with w4_group > 0 W4A8 (int4 in_proj / out_proj, w4_group columns per
 * scale), on the GPU, kind BE_CUDA_INT8 (benchmarks). */
be *be_open_random_q2(const mq_config *cfg, int w4_group, uint64_t seed, int batch, int seqlen);
void be_free(be *b);

be_kind be_kind_of(const be *b);
const mq_config *be_config(const be *b);
int be_max_batch(const be *b);
int be_max_seqlen(const be *b);
size_t be_weight_bytes(const be *b);   /* weights held where the backend runs */
size_t be_decode_bytes(const be *b);   /* weight bytes one decode step reads: the bandwidth floor */
size_t be_ws_bytes(const be *b);       /* the workspace */

/* ---- decode state ---- */
be_state *be_state_new(be *b, int batch);   /* zeroed; NULL + message */
void be_state_reset(be_state *s);
void be_state_free(be_state *s);

/* ---- forward ----
 * Prefill of tokens[batch x T] (row-major). s: NULL for fresh sequences whose final state is
 * dropped, or a state of this batch size to continue from (reset it for fresh sequences) that
 * receives the final states, so be_step can go on after it. hidden: NULL or [batch*T x d_model]
 * FP32 norm_f output. The norm_f output also stays for be_logits. 0, or -1 + message (bad token
 * id, shape beyond the workspace, a hook's error). */
int be_prefill(be *b, const int32_t *tokens, int batch, int T, be_state *s, const mq_hooks *hk, float *hidden);
/* Logits of rows [row0, row0 + nrows) of the last prefill or step into logits[nrows x vocab]. */
int be_logits(be *b, int row0, int nrows, float *logits);
/* One token per sequence of s's batch: tokens[batch]. hidden: NULL or [batch x d_model]; logits:
 * NULL or [batch x vocab]. Without hooks the CUDA kinds run the step as a CUDA graph. */
int be_step(be *b, be_state *s, const int32_t *tokens, const mq_hooks *hk, float *hidden, float *logits);
/* The same step without hooks or host copies: enqueues it and returns (be_sync waits); with_logits:
 * lm_head runs too, into the workspace, as a sampling loop would. The CPU kinds run it at once. */
int be_step_async(be *b, be_state *s, const int32_t *tokens, int with_logits);
void be_sync(be *b);
/* Per-token NLL of windows tokens[batch x T]: nll[b*(T-1) + t] = -log p(tokens[b,t+1] | tokens[b,..t])
 * (nll may be NULL); *sum their sum. Logits are made in row blocks, never all at once. */
int be_nll(be *b, const int32_t *tokens, int batch, int T, const mq_hooks *hk, float *nll, double *sum);

/* Perplexity protocol over a token stream: cut ids[n] into non-overlapping windows of `window`
 * tokens (a short tail is dropped), take the first max_windows (all when <= 0), score every token
 * after the first of each window, the backend's batch of windows per call. progress(ctx, done,
 * total) after each call (may be NULL). *nll_sum, *n_scored: the totals; ppl = exp(sum / scored).
 * nll_sq_sum: NULL, or the sum of the squared per-token NLLs (for the standard error of the mean). */
int be_eval_windows(be *b, const int32_t *ids, size_t n, int window, int max_windows, double *nll_sum,
                    long *n_scored, double *nll_sq_sum, void (*progress)(void *ctx, int done, int total), void *ctx);

/* Per-op time of prefill / NLL calls while on (CUDA events; the CPU kinds report nothing);
 * be_profile_report writes "op ms" pairs accumulated since the last report, then resets. */
void be_profile(be *b, int on);
int be_profile_report(be *b, char *buf, size_t n);

/* A hook's activation as dense host FP32 [rows x cols] (int8 codes as they are, not scaled), from
 * host or device memory (waiting for the producer's stream). 0, or -1 + message. */
int be_act_download(const mq_act *a, float *dst);

#ifdef __cplusplus
}
#endif
#endif
