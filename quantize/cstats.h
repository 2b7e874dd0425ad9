/* The quantizer's view of a calibration stats file (calib/calib.h): q_stats answering "absmax or
 * percentile of activation (layer, role, segment)" from the calib names of calib/obs.h.
 *
 * Three statistics depend on the recipe's fusions (q_stat_variant):
 *  - in_proj_in: the weighted RMSNorm output (PLAIN), x / rms(x) after the norm is fused into
 *    in_proj (FUSED), or (x / rms(x)) H after the residual rotation too (ROTATED). calib's
 *    in_proj:input holds FUSED when calib ran with the "rmsnorm_unweighted" transform on
 *    in_proj_in (calib.transforms metadata), ROTATED with "rmsnorm_unweighted_hadamard", else PLAIN.
 *  - out_proj_in: y (PLAIN, calib's had:input), or H y after the rotation (FUSED): calib's
 *    out_proj:input when it ran with the "hadamard" transform on out_proj_in.
 *  - lm_head_in: the norm_f output (PLAIN), or (x / rms(x)) H with norm_f fused into the lm_head
 *    and the residual rotated (ROTATED): calib's lm_head:input when it ran with the
 *    "norm_f_unweighted_hadamard" transform on lm_head_in.
 * q_cstats_transforms gives the calib transforms that make a stats file carry what a recipe needs.
 * When a file lacks a variant, q_cstats_fused_pass computes it in one extra pass over exactly the
 * stats file's windows (data file s->data checked against data.sha256, samples, seqlen, seed), so every
 * scale of an artifact comes from the same calibration tokens. */
#ifndef MQ_CSTATS_H
#define MQ_CSTATS_H
#include "calib/calib.h"
#include "quantize/q.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Percentile clips use calib's Quamba EMA aggregation of the per-sample percentiles
 * (PerTensorPercentileObserver), not the running max. */
#define Q_PERCENTILE_EMA 1

typedef struct {
    calib_stats *cs;
    char path[1024];
    char data[4096];          /* the calibration data file the passes read (checked against
                                 data.sha256), resolved by the caller (the metadata's data.path is
                                 only the file's name unless calib ran with record_paths); empty:
                                 data.path as recorded */
    mq_config cfg;
    q_stat_variant in_var;    /* which variant the file's in_proj:input holds */
    q_stat_variant head_var;  /* which variant the file's lm_head:input holds (PLAIN or ROTATED) */
    int rot_in_file;          /* the file's out_proj:input is H y */
    float *pass_in[Q_STAT_NVARIANTS]; /* [variant][n_layer] absmax of in_proj_in from the extra pass, or NULL */
    float *pass_rot;          /* [n_layer] absmax of H y from the extra pass, or NULL */
    float *pass_head;         /* [variant] absmax of lm_head_in from the extra pass, or NULL */
    long pass_tokens;         /* tokens the extra pass ran (0 if none) */
    double pass_seconds;
} q_cstats;

/* Opens the stats file for the model in model_dir: refuses (clear message naming both hashes and
 * paths) a file calibrated on other weights, and one whose architecture differs from cfg. */
int q_cstats_open(q_cstats *s, const char *stats_path, const char *model_dir, const mq_config *cfg);
void q_cstats_close(q_cstats *s);
q_stats q_cstats_iface(q_cstats *s);

/* Bit mask of the statistics recipe o needs that are not available yet: 1 = in_proj_in (the
 * variant the file lacks), 2 = out_proj_in after the rotation, 4 = lm_head_in (the variant the
 * file lacks, with --quantize-head). */
int q_cstats_missing(const q_cstats *s, const q_options *o);
/* The extra pass over the stats file's calibration windows with the FP32 model m (the model the
 * file was made from): fills pass_in (every variant; ROTATED when d_model has a Hadamard order),
 * pass_rot and pass_head. tokenizer: tokenizer.json for text data. progress: show a progress bar.
 * 0, or -1 + mq_errmsg() (data file changed, ...). */
int q_cstats_fused_pass(q_cstats *s, const mq_model *m, const char *tokenizer, int progress);

/* The Hessians of quamba2's GPTQ (q.h q_hessians): the stats file's first calibration windows (at
 * most Q_HESS_MAX_TOKENS tokens) through the FP32 model m with recipe o's fusions (RMSNorm into
 * in_proj, H^T into out_proj with y rotated online), H += 2 X^T X of every in_proj and out_proj input
 * (and the lm_head's with quantize_head). FP64 accumulation of FP32 X^T X per window. 0, or -1. */
#define Q_HESS_MAX_TOKENS 32768
int q_cstats_hessian_pass(q_cstats *s, const mq_model *m, const char *tokenizer, const q_options *o, int progress, q_hessians *h);

/* The calib transforms (at most 3) under which a stats file holds the statistics recipe o needs:
 * in_proj_in "rmsnorm_unweighted" (x / norm_w; ctx = m, which must outlive the calibration) when
 * the recipe fuses the norm, or "rmsnorm_unweighted_hadamard" ((x / norm_w) H) when it rotates the
 * residual; out_proj_in "hadamard" (H y) when it rotates y; lm_head_in "norm_f_unweighted_hadamard"
 * ((x / norm_f) H) when it rotates the residual. A zero weight hides its channel of x / rms(x):
 * the channel counts as 0. Returns their number. */
int q_cstats_transforms(const mq_model *m, const q_options *o, calib_transform *t);

/* Calib statistics name of (layer, role, segment) under variant var, into buf; NULL when the calib
 * file has no such statistic (the fused variants the file lacks). */
const char *q_cstats_name(const q_cstats *s, int layer, mq_act_role role, int part, q_stat_variant var, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
