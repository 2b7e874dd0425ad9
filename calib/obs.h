/* Activation observers for calibration: for every activation the Quamba recipes quantize, the
 * statistics of |v| over the calibration samples (absmax, exact per-sample percentiles aggregated as
 * a running max and as Quamba's EMA, a log-scale histogram, and per-head / per-group absmax for
 * Mamba2), named like the official Quamba code names its observers so results can be compared.
 *
 * Names (module path + ":" + Quamba op name + ":input"), from enyac-group/Quamba
 * quamba/modelutils_mamba.py (run_quamba_calibration / run_quamba2_calibration hook every
 * nn.Linear and ActIdentity of the mixer, op = first component of the module name, and record
 * op + ":input" / ":output"), quamba/qMambaLayer.py (MambaSimple) and quamba/qMamba2.py
 * (Mamba2Simple). P = "backbone.layers.<i>.mixer.":
 *
 *   Mamba1                       hook role (ssm/model.h)     what it is
 *   P in_proj:input              MQ_ACT_IN_PROJ_IN           RMSNorm output
 *   P in_proj:output             MQ_ACT_CONV_IN + MQ_ACT_Z   all of in_proj's output [x | z]
 *   P x_proj:input               MQ_ACT_SSM_X                conv1d + SiLU output (SSM input u) + absmax_per_channel
 *   P x_proj:output              MQ_ACT_X_PROJ_OUT           [dt_low_rank | B | C]
 *   P dt_proj:input              MQ_ACT_X_PROJ_OUT cols [0, dt_rank)
 *   P dt_proj:output             MQ_ACT_DT                   dt before softplus
 *   P ssm_state_act:input        MQ_ACT_SSM_STATE            final SSM state [d_inner x d_state]
 *   P had:input                  MQ_ACT_SSM_OUT              y * SiLU(z), before the rotation (*)
 *   P out_proj:input             MQ_ACT_OUT_PROJ_IN          after the rotation (transform below)
 *   lm_head:input                MQ_ACT_LM_HEAD_IN           norm_f output
 *
 *   Mamba2
 *   P in_proj:input              MQ_ACT_IN_PROJ_IN
 *   P in_proj:output             MQ_ACT_Z + MQ_ACT_CONV_IN + MQ_ACT_DT   all of [z | xBC | dt]
 *   P z_act:input                MQ_ACT_Z
 *   P x_conv_in:input            MQ_ACT_CONV_IN cols [0, d_inner)
 *   P B_conv_in:input            MQ_ACT_CONV_IN next n_groups*d_state cols
 *   P C_conv_in:input            MQ_ACT_CONV_IN last n_groups*d_state cols
 *   P dt_act:input               MQ_ACT_DT                   raw dt (before bias and softplus)
 *   P x_conv_out:input           MQ_ACT_SSM_X                + absmax_per_head [n_heads], absmax_per_channel [d_inner]
 *   P B_conv_out:input           MQ_ACT_B                    + absmax_per_group [n_groups]
 *   P C_conv_out:input           MQ_ACT_C                    + absmax_per_group [n_groups]
 *   P ssm_state_act:input        MQ_ACT_SSM_STATE            + absmax_per_head [n_heads]
 *   P had:input                  MQ_ACT_SSM_OUT              gated-RMSNorm output, before rotation (*)
 *   P out_proj:input             MQ_ACT_OUT_PROJ_IN
 *   lm_head:input                MQ_ACT_LM_HEAD_IN
 *
 * (*) "had:input" is a mambaq addition: Quamba's `had` module is not hooked, but the statistic
 * before the rotation is what the un-rotated recipes need. For ActIdentity ops (z_act, x_conv_in,
 * dt_act, ssm_state_act, ...) Quamba's ":output" equals ":input"; only ":input" is stored and
 * calib_stats lookups of ":output" fall back to it. Not observed: out_proj:output and
 * lm_head:output (no hook; Quamba records them but its recipes never read them) and Quamba2's
 * ssd_out_act (the scan output before the gated norm; no hook in the reference forward).
 *
 * Which statistic Quamba itself uses: run_quamba_calibration takes the EMA of the 99.95th percentile
 * (percentile_alpha 0.9995; 0.99999 suggested for small models) for x_proj:input (Mamba1),
 * x_conv_out:input (Mamba2) and ssm_state_act:input, and the running absmax (clamped to >= 1e-5)
 * for every other activation; run_quamba2_calibration uses per-group / per-head absmax instead.
 * Quamba's in_proj:input is the norm output after its weight was fused into in_proj and the
 * residual stream rotated; a recipe that does the same registers an MQ_ACT_IN_PROJ_IN transform.
 *
 * Statistics, per tensor and calibration sample (one sequence; the batch size never changes them):
 *  - absmax: max |v| (raw; Quamba clamps it to >= 1e-5 only when turning it into a scale).
 *  - percentiles of |v| at pct[] (in percent), exactly as torch.quantile(|v|.flatten(), q) with the
 *    default 'linear' interpolation computes them, which is what Quamba's PerTensorPercentileObserver
 *    calls: q = (float)(pct/100), rank = q * (n-1) in float32, below = trunc(rank),
 *    above = ceil(rank), w = rank - below, value = lerp(v[below], v[above], w) over the ascending
 *    order, with torch's lerp (w < 0.5 ? lo + w*(hi-lo) : hi - (hi-lo)*(1-w)). Computed by
 *    selection (histogram-guided candidate filtering + quickselect), never a full sort.
 *  - aggregated over samples as the running max of the per-sample values, and as Quamba's EMA:
 *    ema = first sample's value, then ema += 0.01 * (cur - ema) (float32, as in the observer).
 *  - a histogram of |v| with OBS_HIST_BINS log-scale bins summed over all samples (see obs_hist_bin).
 * Non-finite activations are an error naming the tensor and the sample. */
#ifndef MQ_OBS_H
#define MQ_OBS_H
#include <stddef.h>
#include <stdint.h>
#include "core/cfg.h"
#include "ssm/model.h"
#ifdef __cplusplus
extern "C" {
#endif

#define OBS_MAX_Q 32
#define OBS_MAX_GROUPS 1024   /* per-head / per-group maxima: heads of one layer */
#define OBS_EMA_ALPHA 0.01f
/* Histogram: bin i counts |v| in [2^(-16 + i/64), 2^(-16 + (i+1)/64)), edges rounded to float32;
 * bin 0 also counts everything below 2^-16 (zeros included) and bin 2047 everything from 2^16
 * (the FP16 range, 6e-5 .. 65504, lies inside). 64 bins per octave: each bin is 1.09% wide. */
#define OBS_HIST_BINS 2048
#define OBS_HIST_PER_OCTAVE 64
#define OBS_HIST_LOG2_MIN (-16)

/* Default percentile list (percent). */
extern const double obs_default_pct[];
extern const int obs_default_npct;

/* ---- building blocks (pure functions on arrays) ---- */

/* Histogram bin of a = |v| (a >= 0, finite or +inf). */
int obs_hist_bin(float a);
/* Lower edge of bin i, 0 <= i <= OBS_HIST_BINS (i = OBS_HIST_BINS: the upper edge of the last
 * bin, 2^16). Bin i holds a with edge(i) <= a < edge(i+1) (bins 0 and last also hold the tails). */
float obs_hist_edge(int i);

/* torch.quantile 'linear' on an ascending array (see the header comment); pct in [0, 100]. */
float obs_quantile_sorted(const float *sorted, size_t n, double pct);
/* Percentiles of a[0..n) (n >= 1; values already |v|, finite), written to out[nq]. Reorders a. */
void obs_percentiles(float *a, size_t n, const double *pct, int nq, float *out);
/* Same, using hist[OBS_HIST_BINS] = histogram of a[] to copy only the top candidates into cand
 * (capacity n) before selecting: one cheap filtering pass instead of selection over all of a. */
void obs_percentiles_hist(const float *a, size_t n, const int64_t *hist, const double *pct, int nq,
                          float *cand, float *out);
/* Quamba's EMA step: the first sample's value, then prev + alpha * (cur - prev), in float32. */
float obs_ema(float prev, float cur, int first);

/* ---- one observed tensor ---- */
typedef struct {
    char name[112];          /* "backbone.layers.3.mixer.x_proj:input" */
    int layer;               /* -1 for lm_head */
    int nq;
    double pct[OBS_MAX_Q];
    int64_t nsamples;
    int64_t numel;           /* elements seen over all samples (= sum of hist) */
    float absmax;
    float pmax[OBS_MAX_Q];   /* running max over samples of the per-sample percentiles */
    float pema[OBS_MAX_Q];   /* Quamba EMA of the per-sample percentiles */
    float plast[OBS_MAX_Q];  /* the last sample's percentiles */
    int64_t *hist;           /* [OBS_HIST_BINS] */
    /* per-head / per-group absmax: ngroup groups of gsize rows (gaxis 0) or columns (gaxis 1) */
    int ngroup, gsize, gaxis;
    const char *gkind;       /* "head" or "group" */
    float *gabsmax;          /* [ngroup] running max, NULL when ngroup == 0 */
    /* per-channel (column) absmax, for quamba2's clustered ssm_x scales: [nchan] running max, NULL
     * when nchan == 0; cobserved counts the samples that updated it (it is written only when every
     * sample did: statistics files from before the GPU observers kept it lack it) */
    int nchan;
    float *cabsmax;
    int64_t cobserved;
    /* composite tensors (in_proj:output) gather nparts hook calls of one sample into buf */
    int nparts;
    unsigned parts_seen;
    float *buf;
    size_t nbuf, capbuf;
    int seen;                /* observed in the current sample */
} obs_tensor;

void obs_tensor_init(obs_tensor *t, const char *name, int layer, const double *pct, int nq);
/* Per-head/group absmax: groups of gsize along axis (0: rows, 1: columns). */
void obs_tensor_set_groups(obs_tensor *t, int ngroup, int gsize, int gaxis, const char *kind);
/* Per-channel absmax over ncols columns (every column of every call). */
void obs_tensor_set_channels(obs_tensor *t, int ncols);
void obs_tensor_free(obs_tensor *t);
/* One whole sample of the tensor, element (r, c) at x[r*ld + c]. 0, or -1 + mq_errmsg() when a
 * value is NaN/Inf (nothing is accumulated then). */
int obs_tensor_observe(obs_tensor *t, const float *x, int rows, int cols, int ld);

/* ---- every observer of a model ---- */
typedef int (*obs_transform_fn)(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld);
typedef struct obs_set obs_set;

/* Observers for every quantized activation of every layer of cfg's architecture (names above). */
obs_set *obs_set_new(const mq_config *cfg, const double *pct, int nq);
void obs_set_free(obs_set *s);
/* Register a transform applied to a copy of `role`'s activation before it is observed (the forward
 * is not changed): e.g. the Hadamard rotation for MQ_ACT_OUT_PROJ_IN, so out_proj:input holds the
 * statistics of what the rotated int8 out_proj will see. Default: identity. name is recorded in
 * the stats metadata. */
void obs_set_transform(obs_set *s, mq_act_role role, obs_transform_fn fn, void *ctx, const char *name);
const char *obs_transform_name(const obs_set *s, mq_act_role role);   /* "identity" by default */
/* Hooks for ssm_forward: route each activation to its observers. */
mq_hooks obs_set_hooks(obs_set *s);
/* Bracket one calibration sample (one sequence). obs_end_sample returns -1 + mq_errmsg() when an
 * activation was non-finite, had an unexpected shape, or was never produced. */
void obs_begin_sample(obs_set *s);
int obs_end_sample(obs_set *s);
/* For messages about activations that never came: counts one more in *n and appends name to
 * buf ("a, b, c") while fewer than 4 are listed; the message adds ", ..." when *n > 3. */
void obs_list_missing(char *buf, size_t size, int *n, const char *name);
int64_t obs_samples(const obs_set *s);

int obs_count(const obs_set *s);
obs_tensor *obs_get(obs_set *s, int i);
obs_tensor *obs_find(obs_set *s, const char *name);   /* NULL if absent */

#ifdef __cplusplus
}
#endif
#endif
