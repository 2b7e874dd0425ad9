/* The quantized model: what an artifact holds and every quantized forward runs (the CPU simulation
 * here, the int8 GPU pass of ssm/backend.h), made by the recipes of quantize/ and written / read by
 * export/. Its weights, the recipe names it records, the names and segments of its activation
 * scales, and the simulated W8A8 forward that is the bit-level specification of the int8 pass.
 * Numbers are quantized by core/qrule.h's rule. */
#ifndef MQ_QMODEL_H
#define MQ_QMODEL_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "core/cfg.h"
#include "core/qrule.h"
#include "ssm/model.h"
#ifdef __cplusplus
extern "C" {
#endif

/* In place quantize -> dequantize of x[rows x cols] with row stride ld, one scale. */
void q_fake_quant_rows(float *x, int rows, int cols, int ld, float s);
/* Rotate rows [rows x n] with stride ld in place (x_row <- x_row H^T, hadamard/had.h). */
int q_rotate_rows(float *x, int rows, int n, int ld);

/* ---- weights ---- */
typedef enum { Q_GRAN_TENSOR = 0, Q_GRAN_CHANNEL = 1 } q_granularity;
const char *q_gran_name(q_granularity g);
int q_gran_from_name(const char *name, q_granularity *out);   /* -1 + mq_fail if unknown */

/* An int8 weight [rows x cols] (PyTorch layout [out x in]) with one scale (tensor) or one per row
 * (channel = output channel); or (bits 4, quamba2) an int4 weight, its codes in [-7, 7] held one per
 * int8 here (the artifact packs two per byte), one scale per `group` consecutive columns of a row. */
typedef struct {
    int8_t *q;
    float *scale;
    int rows, cols;
    int nscale;          /* 1 or rows (int8); rows * cols / group (int4) */
    int bits;            /* 8 (0 reads as 8) or 4 */
    int group;           /* int4: columns per scale (cols = one per row); 0 for int8 */
} q_weight;

/* Quantize W (absmax clip per tensor or per output row). Allocates w->q and w->scale. */
void q_weight_quantize(const float *W, int rows, int cols, q_granularity g, q_weight *w);
/* int4 by round-to-nearest: absmax clip per `group` columns of a row (cols % group == 0),
 * s = max(clip, 1e-5) / 7, q = clamp(rint(v / s), -7, 7). Allocates w->q and w->scale. */
#define Q_I4_QMAX 7
void q_weight_quantize_i4(const float *W, int rows, int cols, int group, q_weight *w);
/* An empty int4 weight of that layout (q and scale allocated). */
void q_weight_alloc_i4(q_weight *w, int rows, int cols, int group);
/* The int4 rule: the scale of a clip, and the code of v (NaN -> 0). */
static inline float q_i4_scale(float clip) { return (clip >= QR_MIN_CLIP ? clip : QR_MIN_CLIP) / Q_I4_QMAX; }
static inline int8_t q_i4_quant(float v, float s) {
    float q = rintf(v / s);
    return (int8_t)(q > Q_I4_QMAX ? Q_I4_QMAX : q < -Q_I4_QMAX ? -Q_I4_QMAX : q == q ? q : 0);
}
/* The scale of element (r, c). */
static inline float q_weight_scale_at(const q_weight *w, int r, int c) {
    if (w->bits == 4) return w->scale[(size_t)r * (w->cols / w->group) + c / w->group];
    return w->scale[w->nscale == 1 ? 0 : r];
}
/* Two int4 codes a byte: column 2j in the low nibble, 2j+1 in the high nibble, two's complement
 * (-7 -> 0x9). q[n] (n even) -> packed[n / 2]; unpack refuses the code -8 (returns its index, or -1). */
void q_i4_pack(const int8_t *q, size_t n, uint8_t *packed);
long q_i4_unpack(const uint8_t *packed, size_t n, int8_t *q);
/* W[rows x cols] = q * s. */
void q_weight_dequantize(const q_weight *w, float *W);
void q_weight_free(q_weight *w);
void q_weight_copy(const q_weight *src, q_weight *dst);   /* a deep copy */

/* ---- recipes ---- */
typedef enum {
    Q_NAIVE = 0,         /* absmax clip everywhere */
    Q_QUAMBA,            /* percentile clip of the SSM input x, Hadamard on y, RMSNorm fused */
    Q_PERCENTILE_ONLY,   /* naive + percentile clip of x (ablation) */
    Q_HADAMARD_ONLY,     /* naive + Hadamard on y (ablation) */
    Q_QUAMBA_ROT,        /* quamba + the residual stream rotated by H of order d_model (q_fuse_residual) */
    Q_QUAMBA2,           /* quamba + per-state-group B/C scales, clustered ssm_x scales, W8A8 / W4A8 / W4A16 */
    Q_NMETHODS
} q_method;

const char *q_method_name(q_method m);
int q_method_from_name(const char *name, q_method *out);      /* -1 + mq_fail listing the names */
int q_method_uses_percentile(q_method m);
int q_method_uses_hadamard(q_method m);
int q_method_fuses_norm(q_method m);
int q_method_rotates_residual(q_method m);
/* Does the quantized model carry an lm_head of its own (not the embedding)? Yes when the source
 * is untied, and under the residual rotation, which gives the lm_head norm_f and H but the
 * embedding only H. (With quantize_head the int8 lm_head is a tensor of its own either way.) */
int q_head_untied(const mq_config *c, q_method m);

typedef struct {
    q_method method;
    double percentile;          /* in (0, 100]; used for SSM x when the method clips by percentile */
    q_granularity weight_gran;
    int quantize_head;          /* also quantize lm_head (weight and input); else it stays FP16 */
    int quantize_embedding;     /* int8 embedding, one scale per row; implies quantize_head */
    /* quamba2 only (the other methods are W8A8 and ignore these) */
    int wbits;                  /* 8, or 4: in_proj, out_proj (and lm_head with quantize_head) int4 */
    int abits;                  /* 8, or 16: no activation quantized (y is still rotated) */
    int group_size;             /* int4: columns per scale (-1 or a size that does not divide: per row) */
    int gptq;                   /* int4 weights by GPTQ (needs q_stats.hess), else round-to-nearest */
    int cluster;                /* ssm_x: 4 x 4 clustered scales per SSD group, else one per tensor */
    int state_groups;           /* Mamba2 B, C: one scale per SSD group (n_groups), else one per tensor */
} q_options;
void q_options_default(q_options *o);   /* quamba, 99.95, tensor, no head; quamba2: w8a8, 128, gptq, cluster, groups */

/* quamba2's layout of the ssm_x scales: per SSD group, Q_XHG head groups x Q_XDG dimension groups. */
#define Q_XHG 4
#define Q_XDG 4
#define Q_XCL (Q_XHG * Q_XDG)
/* Which of the quamba2 features a q_model's options use (0 for the other methods). */
int q_uses_cluster(const mq_config *c, const q_options *o);
int q_uses_state_groups(const mq_config *c, const q_options *o);
/* Columns per scale of a 4-bit weight with `cols` columns: group_size when it divides cols, else cols. */
int q_i4_group(const q_options *o, int cols);
/* Weight bits of in_proj / out_proj / lm_head under o (8 unless quamba2 with wbits 4). */
int q_big_wbits(const q_options *o);

/* Does recipe `o` quantize activation `role` of this architecture? (The W8A8 block of Quamba:
 * in_proj input; in_proj outputs x (conv input) and z; conv1d+SiLU output x; M1 x_proj output
 * (dt, B, C share it) and dt_proj output; M2 dt, B and C; the out_proj input. LM_HEAD_IN only with
 * quantize_head.) */
int q_role_quantized(mq_arch arch, const q_options *o, mq_act_role role);
/* Artifact name of the scale of `role` in `layer` (layer -1 for LM_HEAD_IN), e.g.
 * "backbone.layers.3.mixer.x_proj.input_scale". Returns buf. */
const char *q_scale_name(mq_arch arch, int layer, mq_act_role role, char *buf, size_t n);
/* Short stable name of a quantized role used in quant_config.json and tables ("ssm_x"...). */
const char *q_role_key(mq_arch arch, mq_act_role role);
/* Scales of a role: 1, except the Mamba2 conv input xBC, which has one per segment x, B, C
 * (Quamba2's x_conv_in / B_conv_in / C_conv_in). Segment p covers columns q_role_part_cols. */
#define Q_MAX_PARTS 3
int q_role_parts(mq_arch arch, mq_act_role role);
void q_role_part_cols(const mq_config *c, mq_act_role role, int part, int *col0, int *ncols);

/* ---- the quantized model (what an artifact holds, in memory) ----
 * Float tensors are FP32 arrays holding FP16-representable values (the artifact stores them as F16),
 * so a q_model built by q_quantize and one read back by art_open are identical. */
typedef struct {
    float *norm_w;                  /* [d_model]; ones when the norm is fused */
    q_weight in_proj, conv1d, out_proj;
    float *in_proj_b, *out_proj_b;  /* or NULL */
    float *conv_b;                  /* [conv_dim] or NULL */
    float *A_log, *D;
    q_weight x_proj, dt_proj;       /* Mamba1 */
    float *dt_proj_b;               /* Mamba1 [d_inner] */
    float *dt_bias, *gnorm_w;       /* Mamba2 */
    float act_scale[MQ_ACT_NROLES][Q_MAX_PARTS]; /* [role][part]; 0 = the role stays float */
    float *bc_scale[2];             /* quamba2 state groups: B and C scales [n_groups], else NULL */
    float *x_scale;                 /* quamba2 cluster: ssm_x scales [n_groups][Q_XHG][Q_XDG], else NULL */
    int8_t *x_index;                /* [d_inner]: each channel's scale in its SSD group's Q_XCL */
} q_layer;

typedef struct {
    mq_config cfg;                  /* the source's (tie_embeddings as its config.json says) */
    q_options opt;
    int hadamard_n, hadamard_m, hadamard_k;  /* order of the rotation of y (0 when none) */
    int resid_n, resid_m, resid_k;  /* order of the residual rotation (d_model; 0 when none) */
    float *embed;                   /* [vocab x d_model] (rotated under the residual rotation); with
                                     * quantize_embedding the FP16-rounded dequantized embed_q, so
                                     * every forward (simulation, int8 GPU pass) reads it unchanged */
    q_weight embed_q;               /* when quantize_embedding: int8 [vocab x d_model], scale per row
                                     * (q == NULL otherwise); a tied lm_head is then lm_head_q = embed_q */
    float *norm_f;                  /* [d_model]; ones when fused into the lm_head */
    float *lm_head;                 /* [vocab x d_model] when q_head_untied and not quantized, else NULL */
    q_weight lm_head_q;             /* when quantize_head (q == NULL otherwise) */
    float lm_head_in_scale;         /* when quantize_head */
    q_layer *layers;
} q_model;

void q_model_free(q_model *qm);
/* Does layer l hold role's scales as a quamba2 vector (clustered ssm_x, B / C per SSD group)? */
int q_layer_vector_scaled(const q_model *qm, int l, mq_act_role role);
/* The scale of (layer, role, part) for tables: act_scale, or the largest of a vector's. */
float q_layer_scale_max(const q_model *qm, int l, mq_act_role role, int part);
/* The scale of column col of (layer l, role) as the simulation applies it: quamba2's clustered ssm_x
 * and per-group B / C, the Mamba2 conv input's segments, else the role's one scale (0: float; l -1:
 * the lm_head input's). */
float q_act_col_scale(const q_model *qm, int l, mq_act_role role, int col);
/* qm->embed (allocated when NULL) = embed_q dequantized, rounded through FP16. */
void q_embed_dequantize(q_model *qm);
/* Round every element through FP16 (what the artifact keeps for float tensors). */
void q_round_f16(float *x, size_t n);

/* ---- simulated quantization ----
 * q_sim_build: the FP32 model whose weights are the dequantized int8 weights (fusions included) and
 * whose other tensors are the q_model's. q_sim_hooks: rewrites every quantized activation in place
 * (quantize -> dequantize with the q_model's scale) and rotates y by H before quantizing it, as the
 * int8 GPU pass does. The hook context points into qm, which must outlive it. */
int q_sim_build(const q_model *qm, mq_model *m);
void q_sim_free(mq_model *m);   /* = ssm_free: same ownership (arena + layers) */
typedef struct {
    const q_model *qm;
} q_sim_ctx;
mq_hooks q_sim_hooks(q_sim_ctx *ctx, const q_model *qm);

#ifdef __cplusplus
}
#endif
#endif
