/* Teacher-forced comparison of the int8 pass with the CPU simulation (ssm/qsim.c), for tests and
 * `mambaq verify`.
 *
 * Why forced: requantization is discontinuous. Two faithful implementations that sum in different
 * orders put a few values on opposite sides of a rounding boundary; each such flip perturbs the
 * residual stream by one quantization step of one element, which flips more values in later
 * layers, and after a dozen layers the two runs differ by about as much as either differs from
 * FP32 (measured on the proxies: final hidden states 2% apart, the quantization error being 3%),
 * while their perplexities agree to 0.3%. Comparing free-running outputs therefore cannot separate
 * a wrong kernel from a rounding flip. Instead the simulation is run with every quantized
 * activation replaced, right after it computed its own, by the int8 pass's: each op of the
 * simulation then starts from exactly the int8 pass's inputs, its own output is compared element by
 * element with the int8 pass's (in quantization steps), and the final logits differ only by the
 * FP16 copies the int8 pass keeps (y before the rotation, out_proj's output, lm_head's input).
 *
 * Use: c = qchk_new(qm, T); run the int8 pass over ONE sequence of T tokens with qchk_pass_hooks
 * (device or host pointers as the pass hands them: set host for the CPU mirror); then run the
 * simulation model (q_sim_build of the same q_model) over the same tokens with qchk_sim_hooks
 * (which apply q_sim_hooks themselves); then read qchk_stats. */
#ifndef MQ_QUANTIZE_CHECK_H
#define MQ_QUANTIZE_CHECK_H
#include <stddef.h>
#include "ssm/qmodel.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct qchk qchk;

/* Comparison of one role over all layers (and the worst layer). */
typedef struct {
    long n;            /* elements compared */
    long flips;        /* int8 roles: elements whose int8 code differs (more than half a step apart) */
    double max_steps;  /* int8 roles: largest difference in quantization steps */
    double max_rel;    /* float roles (ssm_out, ssm_state, lm_head_in in FP16): max |diff| / max |sim| of a layer */
    int worst_layer;   /* layer of the largest difference */
    int is_int8;
} qchk_role;

qchk *qchk_new(const q_model *qm, int T);
void qchk_free(qchk *c);
mq_hooks qchk_pass_hooks(qchk *c);
mq_hooks qchk_sim_hooks(qchk *c);
/* per role (index mq_act_role); roles never seen have n == 0 */
const qchk_role *qchk_stats(const qchk *c);
/* One line per compared role ("in_proj_in: 0.012% flips, max 1 step (layer 3)") into buf. */
void qchk_format(const qchk *c, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
