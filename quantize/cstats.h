/* The quantizer's view of a calibration stats file (calib/calib.h): q_stats answering "absmax or
 * percentile of activation (layer, role, segment)" from the calib names of calib/obs.h.
 *
 * Two statistics depend on the recipe's fusions (q_stat_variant):
 *  - in_proj_in: the weighted RMSNorm output (PLAIN), or x / rms(x) after the norm is fused into
 *    in_proj (FUSED). calib's in_proj:input holds the FUSED one when calib ran with the
 *    "rmsnorm_unweighted" transform on in_proj_in (calib.transforms metadata), else PLAIN.
 *  - out_proj_in: y (PLAIN, calib's had:input), or H y after the rotation (FUSED): calib's
 *    out_proj:input when it ran with the "hadamard" transform on out_proj_in.
 * q_cstats_transforms gives the calib transforms that make a stats file carry what a recipe needs.
 * When a file lacks a variant, q_cstats_fused_pass computes it in one extra pass over exactly the
 * stats file's windows (data file checked against data.sha256, samples, seqlen, seed), so every
 * scale of an artifact comes from the same calibration tokens. */
#ifndef MQ_CSTATS_H
#define MQ_CSTATS_H
#include "calib/calib.h"
#include "quantize/q.h"

/* Percentile clips use calib's Quamba EMA aggregation of the per-sample percentiles
 * (PerTensorPercentileObserver), not the running max. */
#define Q_PERCENTILE_EMA 1

typedef struct {
    calib_stats *cs;
    char path[1024];
    mq_config cfg;
    q_stat_variant in_var;    /* which variant the file's in_proj:input holds */
    int rot_in_file;          /* the file's out_proj:input is H y */
    float *pass_in[2];        /* [variant][n_layer] absmax of in_proj_in from the extra pass, or NULL */
    float *pass_rot;          /* [n_layer] absmax of H y from the extra pass, or NULL */
    long pass_tokens;         /* tokens the extra pass ran (0 if none) */
    double pass_seconds;
} q_cstats;

/* Opens the stats file for the model in model_dir: refuses (clear message naming both hashes and
 * paths) a file calibrated on other weights, and one whose architecture differs from cfg. */
int q_cstats_open(q_cstats *s, const char *stats_path, const char *model_dir, const mq_config *cfg);
void q_cstats_close(q_cstats *s);
q_stats q_cstats_iface(q_cstats *s);

/* Bit mask of the statistics recipe o needs that are not available yet: 1 = in_proj_in (the
 * variant the file lacks), 2 = out_proj_in after the rotation. */
int q_cstats_missing(const q_cstats *s, const q_options *o);
/* The extra pass over the stats file's calibration windows with the FP32 model m (the model the
 * file was made from): fills pass_in (both variants) and pass_rot. tokenizer: tokenizer.json for
 * text data. progress: show a progress bar. 0, or -1 + mq_errmsg() (data file changed, ...). */
int q_cstats_fused_pass(q_cstats *s, const mq_model *m, const char *tokenizer, int progress);

/* The calib transforms (at most 2) under which a stats file holds the statistics recipe o needs:
 * in_proj_in "rmsnorm_unweighted" (x / norm_w; ctx = m, which must outlive the calibration) when
 * the recipe fuses the norm, out_proj_in "hadamard" (H y) when it rotates. Returns their number. */
int q_cstats_transforms(const mq_model *m, const q_options *o, calib_transform *t);

/* Calib statistics name of (layer, role, segment) under variant var, into buf; NULL when the calib
 * file has no such statistic (the fused variants the file lacks). */
const char *q_cstats_name(const q_cstats *s, int layer, mq_act_role role, int part, q_stat_variant var, char *buf, size_t n);

#endif
