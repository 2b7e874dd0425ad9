/* Calibration on the GPU: the statistics of calib/obs.h (absmax, exact per-sample percentiles of
 * |v| as torch.quantile 'linear', running max and Quamba EMA, the 2048-bin log histogram, per-head /
 * per-group absmax, the per-channel absmax of ssm_x) computed from the FP16 GPU forward (ssm/backend.h, BE_CUDA_F16) through its activation hooks, without
 * copying activations to the host. Used by calib_run for --device cuda; the result is the same
 * obs_set, written by the same calib_write_stats.
 *
 * How (calib/calib_cuda.cu): for FP16 data |v|'s 15-bit pattern orders like its value, so one pass
 * builds, per tensor and calibration sample, a 32768-bin histogram of bit patterns (shared-memory
 * atomics, flushed to global memory) plus the absmax and group maxima by max-reduction of the same
 * patterns. When the tensor is complete a prefix scan finds the bins of ranks below / above of every
 * requested percentile (exact order statistics), interpolates as torch does, and maps the pattern
 * histogram onto the log bins. FP32 data (the SSM state, and every transformed activation, e.g.
 * Mamba1's dt_proj:output minus the dt_proj bias) takes an exact two-level radix select instead: a
 * histogram of the top 16 bits, then of the low 16 bits of the values in the few bins that hold the
 * ranks. Per-sample results stay on the GPU and come back once per batch; the host then aggregates
 * them exactly as obs_tensor_observe does (running max, EMA, in sample order).
 *
 * Samples are the sequences of a batch: rows b*T .. b*T+T-1 of each hook call (SSM state: rows
 * b*d_inner ..), so --batch changes only how many sequences share a GPU call. */
#ifndef MQ_CALIB_GPU_H
#define MQ_CALIB_GPU_H
#include <stddef.h>
#include <stdint.h>
#include "calib/calib.h"
#include "ssm/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct calib_gpu calib_gpu;

/* Observers of s (from obs_set_new / calib_observers: the tensor list and group settings are read
 * from it) on b's forward (a BE_CUDA_F16 backend), for calls of up to its batch of sequences of its
 * seqlen tokens. Every tensor name must be one this file knows how to route (the Quamba names of
 * calib/obs.h). NULL + error on an unknown name, another kind of backend, or too little GPU
 * memory. b and s must outlive the result. */
calib_gpu *calib_gpu_new(be *b, obs_set *s);
void calib_gpu_free(calib_gpu *c);

/* Transform for `role`, like obs_set_transform: applied to a copy, every observer of the role then
 * sees the FP32 result (fn NULL: identity again). Set transforms before the first batch. */
int calib_gpu_set_transform(calib_gpu *c, mq_act_role role, calib_gpu_transform_fn fn, void *ctx);
/* Built-in transform: x - bias[layer * cols + col] in FP32 (Mamba1 dt_proj:output: Quamba's dt_proj
 * has no bias). bias: host [n_layer x cols], copied. */
int calib_gpu_set_minus_bias(calib_gpu *c, mq_act_role role, const float *bias);

/* One GPU call: tokens[B x seqlen] (host) are B calibration samples, B <= batch, observed and
 * aggregated into s's tensors in order (the EMA depends on it). 0, or -1 + error (a non-finite
 * activation names the tensor, sample, row and column; s is then partly updated). */
int calib_gpu_observe(calib_gpu *c, const int32_t *tokens, int B);
int64_t calib_gpu_samples(const calib_gpu *c);   /* samples observed so far */

/* Where the time goes (benchmarks): while on, CUDA events around the observers' launches split the
 * GPU time of each call into the forward (from its first hook on) and the observer kernels by kind;
 * the report ("N samples: forward X ms, observe fp16 X ms, ...") sums the calls since the last
 * report, then resets. */
void calib_gpu_profile(calib_gpu *c, int on);
int calib_gpu_profile_report(calib_gpu *c, char *buf, size_t n);

/* The --device cuda runner of calib_run: uploads m, applies the default transforms (Mamba1: dt_proj
 * bias removed) and xf[0..nxf) through their GPU versions xf_gpu[i] (each needs one, or fn NULL for
 * identity; else refused), and
 * observes samples windows tokens + starts[i] of seqlen tokens, batch at a time. *seconds: time of
 * the batches (upload excluded). progress: a bar with tokens/s on stderr. */
int calib_observe_gpu(const mq_model *m, const int32_t *tokens, const size_t *starts, int samples, int seqlen,
                      int batch, obs_set *s, const calib_transform *xf, const calib_gpu_transform_fn *xf_gpu, int nxf,
                      int progress, double *seconds);

/* For tests: the GPU statistics of B samples x[b][rows][cols] (host FP32) as one tensor fed in
 * nparts column slices, through the same kernels. mode 0: x rounded to FP16, 16-bit path; 1: FP32,
 * two-level path; 2: x rounded to FP16, two-level path. Groups as obs_tensor_set_groups (ngroup 0:
 * none). Out per sample: pct[b*nq + q], absmax[b], gabsmax[b*ngroup + g]; hist[OBS_HIST_BINS] summed
 * over samples. */
int calib_gpu_selftest(const float *x, int mode, int B, int rows, int cols, int nparts, const double *pct, int nq,
                       int ngroup, int gsize, int gaxis, float *pct_out, float *absmax, float *gabsmax,
                       int64_t *hist);

#ifdef __cplusplus
}
#endif
#endif
