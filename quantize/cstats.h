/* The quantizer's view of a calibration stats file (calib/calib.h): q_stats answering "absmax or
 * percentile of activation (layer, role, segment)" from the calib names of calib/obs.h, with the
 * statistics that the fusions change supplied by one extra pass when the file lacks them:
 *  - IN_PROJ_IN after the RMSNorm fusion (x / rms(x), no weight): calib observes the weighted norm
 *    output, so the pass runs the calibration windows through the norm-fused model;
 *  - OUT_PROJ_IN after the Hadamard rotation (H y): taken from the file when calib observed
 *    out_proj:input through a Hadamard transform (calib.transforms metadata), else from the pass.
 * The pass uses exactly the stats file's windows (data file checked against data.sha256, samples,
 * seqlen, seed), so every scale of an artifact comes from the same calibration tokens. */
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
    int rot_in_file;          /* out_proj:input in the file is H y */
    float *fused_in;          /* [n_layer] absmax of x / rms(x), or NULL until the pass ran */
    float *rot_out;           /* [n_layer] absmax of H y, or NULL (then from the file if rot_in_file) */
    long pass_tokens;         /* tokens the extra pass ran (0 if none) */
    double pass_seconds;
} q_cstats;

/* Opens the stats file for the model in model_dir: refuses (clear message naming both hashes and
 * paths) a file calibrated on other weights, and one whose architecture differs from cfg. */
int q_cstats_open(q_cstats *s, const char *stats_path, const char *model_dir, const mq_config *cfg);
void q_cstats_close(q_cstats *s);
q_stats q_cstats_iface(q_cstats *s);

/* Bit mask of the fused statistics recipe o needs that are not available yet: 1 = in_proj_in after
 * the norm fusion, 2 = out_proj_in after the rotation. */
int q_cstats_missing(const q_cstats *s, const q_options *o);
/* The extra pass over the stats file's calibration windows with the FP32 model m (the model the
 * file was made from): fills fused_in and rot_out. tokenizer: tokenizer.json for text data.
 * progress: show a progress bar. 0, or -1 + mq_errmsg() (data file changed, too short, ...). */
int q_cstats_fused_pass(q_cstats *s, const mq_model *m, const char *tokenizer, int progress);

/* Calib statistics name of (layer, role, segment) under variant var, into buf; NULL when the calib
 * file has no such statistic (the fused variants the file lacks). */
const char *q_cstats_name(const q_cstats *s, int layer, mq_act_role role, int part, q_stat_variant var, char *buf, size_t n);

#endif
