/* W8A8 recipes after Quamba (arXiv 2410.13229; enyac-group/Quamba): how the clip of each quantized
 * activation is chosen from calibration statistics, the offline fusions, and q_quantize, which makes
 * the quantized model of ssm/qmodel.h from an FP32 model. docs/recipe.md gives the reason and source
 * of every choice. */
#ifndef MQ_Q_H
#define MQ_Q_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "core/cfg.h"
#include "ssm/qmodel.h"
#ifdef __cplusplus
extern "C" {
#endif

/* Which statistics a scale is computed from. The roles a fusion changes come in variants:
 * IN_PROJ_IN before (PLAIN: weighted RMSNorm output), after the RMSNorm fusion (FUSED: x / rms(x),
 * no weight) and after the residual rotation too (ROTATED: (x / rms(x)) H, H of order d_model);
 * OUT_PROJ_IN before (PLAIN: y) and after the Hadamard rotation of y (FUSED: H y);
 * LM_HEAD_IN as the model computes it (PLAIN: norm_f output) or with norm_f fused into the lm_head
 * and the residual rotated (ROTATED: (x / rms(x)) H). */
typedef enum { Q_STAT_PLAIN = 0, Q_STAT_FUSED = 1, Q_STAT_ROTATED = 2, Q_STAT_NVARIANTS } q_stat_variant;

/* Source of activation statistics (the calib stats file, or a test's own observers).
 * absmax / percentile of |v| over all calibration elements. Return 0, or -1 + mq_fail naming what
 * is missing. p is in (0, 100]. */
/* Hessians H = 2 X^T X of the 4-bit linears' inputs (quamba2 --weight-method gptq), FP64, from the
 * calibration windows run through the recipe's fused model (q_cstats_hessian_pass): in_proj's
 * input x / rms(x) [d_model^2], out_proj's H_y y [d_inner^2], the lm_head's norm_f output. */
typedef struct {
    int n_layer, d_model, d_inner;
    double **in_proj, **out_proj;   /* [n_layer] */
    double *lm_head;                /* or NULL */
    long tokens;
} q_hessians;
void q_hessians_free(q_hessians *h);

typedef struct {
    int (*absmax)(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, float *v);
    int (*percentile)(void *ctx, int layer, mq_act_role role, int part, q_stat_variant var, double p, float *v);
    void *ctx;
    /* quamba2: per-SSD-group (kind "group") or per-channel ("channel") absmax of a role, n values.
     * NULL, or -1 + mq_fail naming what is missing. */
    int (*vector)(void *ctx, int layer, mq_act_role role, const char *kind, float *v, int n);
    const q_hessians *hess;         /* for GPTQ; NULL: none collected */
} q_stats;

/* ---- quamba2 pieces (quantize/quamba2.c) ----
 * Sort-and-cluster of 1-D values: Ward's agglomerative clustering of v[n] into k groups (k <= n),
 * deterministic: the values sorted ascending (ties by index), adjacent clusters merged by the least
 * increase of the within-cluster sum of squares (in 1-D, Ward's optimal merges are between
 * neighbours in sorted order), the leftmost on ties. group[i] in [0, k), numbered by ascending value. */
void q_cluster_ward(const float *v, int n, int k, int *group);
/* 1-D k-means (Lloyd) of v[n] into k groups, initial centres at the (j + 0.5) / k quantiles of the
 * sorted values, at most 100 iterations, points to the nearest centre (the lower on ties); groups
 * renumbered by ascending centre, empty ones dropped. Returns the number of groups used. */
int q_cluster_kmeans(const float *v, int n, int k, int *group);
/* The ssm_x scales of one layer from its per-channel absmax amax[d_inner]: per SSD group, heads
 * (Mamba2: head_dim channels; Mamba1: every channel a head of size 1) by their absmax into Q_XHG
 * head groups (Ward); in each head group, the head dimensions p by max over its heads of
 * amax[h * P + p] into Q_XDG dimension groups (k-means; Mamba1: the head group's channels).
 * scale[g * Q_XCL + hg * Q_XDG + dg] = qr_scale(max absmax of its channels); index[c] the slot of
 * channel c in its group. Slots no channel uses get their head group's largest scale. */
void q_x_cluster(const mq_config *c, const float *amax, float *scale, int8_t *index);
/* int4 GPTQ of W [rows x cols] (cols % group == 0) with the Hessian H [cols x cols] of its input:
 * dampening 0.01 * mean(diag H), dead inputs (H_ii = 0) zeroed, the upper Cholesky factor of H^-1,
 * columns in order (no act-order) in blocks of 128 with the lazy batch update; a group's scale is
 * the absmax of its columns as updated when the group starts. w as q_weight_quantize_i4. 0, or -1 +
 * mq_fail when H is not positive definite after dampening. */
int q_gptq_i4(const float *W, int rows, int cols, int group, const double *H, q_weight *w);

/* The statistics variant a recipe needs for a role (ROTATED for IN_PROJ_IN and LM_HEAD_IN under the
 * residual rotation, FUSED for IN_PROJ_IN under norm fusion and for OUT_PROJ_IN under the Hadamard
 * rotation of y, PLAIN otherwise). */
q_stat_variant q_role_variant(const q_options *o, mq_act_role role);
/* The clip value of a role from the statistics, following the recipe. */
int q_role_clip(const q_options *o, const q_stats *st, int layer, mq_act_role role, int part, float *clip);

/* ---- offline fusions on an FP32 model (in place) ----
 * Norm: in_proj[:, k] *= norm_w[k], norm_w = 1 (the RMSNorm output feeding in_proj is then x/rms(x)).
 * Hadamard: out_proj = out_proj H^T (hadamard/had.h), so out_proj(H y) = out_proj_original(y); the
 * forward must then rotate y online (q_rotate_hooks). Both leave the FP32 function unchanged. */
int q_fuse_norm(mq_model *m);
int q_fuse_hadamard(mq_model *m);

/* Residual rotation (quamba-rot; [code] configure_model with use_had_transform). With H the
 * normalized Hadamard of order d_model, the residual stream r (a row) becomes r H everywhere:
 * embedding E <- E H; in_proj W <- W H after the norm is folded into it (an RMSNorm without weight
 * commutes with an orthogonal H: rms(r H) = rms(r)); out_proj W <- H W, so its output, the residual
 * update, comes out rotated (bias b <- b H); lm_head L <- (L diag(norm_f)) H and norm_f = 1. No
 * online step: every rotation is in the weights. q_fuse_residual does all of it (q_fuse_norm first)
 * on a model whose lm_head is its own array (q_model_copy with untie), and marks it untied. */
int q_fuse_residual(mq_model *m);
/* The steps q_quantize applies to its copies. W [rows x cols] <- H W, H of order rows (every column
 * rotated). L [vocab x d] <- (L diag(norm_f)) H. 0, or -1 + mq_fail for an unsupported order. */
int q_rotate_cols(float *W, int rows, int cols);
int q_rotate_head(float *L, const float *norm_f, int vocab, int d);
/* A deep copy of m in an arena of its own (freed by ssm_free). untie: when m's lm_head is its
 * embedding, the copy gets a separate lm_head array (same values) and tie_embeddings = 0. */
int q_model_copy(const mq_model *m, mq_model *out, int untie);

/* Hooks that rotate y (MQ_ACT_SSM_OUT) by H in place, then pass every call on to `next` (may be
 * NULL), so `next` sees OUT_PROJ_IN rotated. For calibrating a Hadamard-fused model. */
typedef struct {
    const mq_hooks *next;
} q_rotate_ctx;
mq_hooks q_rotate_hooks(q_rotate_ctx *ctx);

/* Build the quantized model from an FP32 source model and statistics. src is not modified. */
int q_quantize(const mq_model *src, const q_stats *st, const q_options *o, q_model *out);

#ifdef __cplusplus
}
#endif
#endif
