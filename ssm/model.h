/* The Mamba1 / Mamba2 model on the CPU: weights as FP32 arrays (converted from FP16/BF16/FP32 at
 * load), the reference forward pass (prefill over a sequence, and single-token decode with carried
 * conv and SSM state), and hooks that let calibration observe, and simulated quantization rewrite,
 * every activation the recipes quantize. This is the specification every GPU path is tested against. */
#ifndef MQ_MODEL_H
#define MQ_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "core/cfg.h"
#include "core/dtype.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    float *norm_w;               /* [d_model] pre-mixer RMSNorm */
    float *in_proj, *in_proj_b;  /* [cfg_in_proj_dim x d_model], bias [cfg_in_proj_dim] or NULL */
    float *conv_w, *conv_b;      /* [conv_dim x d_conv], [conv_dim] or NULL */
    float *out_proj, *out_proj_b;/* [d_model x d_inner], bias or NULL */
    float *A_log;                /* Mamba1 [d_inner x d_state]; Mamba2 [n_heads] */
    float *A;                    /* -exp(A_log), precomputed at load, same shape */
    float *D;                    /* Mamba1 [d_inner]; Mamba2 [n_heads] */
    /* Mamba1 only */
    float *x_proj;               /* [dt_rank + 2*d_state x d_inner] */
    float *dt_proj, *dt_proj_b;  /* [d_inner x dt_rank], [d_inner] */
    /* Mamba2 only */
    float *dt_bias;              /* [n_heads] */
    float *gnorm_w;              /* [d_inner] gated RMSNorm weight (mixer.norm.weight) */
} mq_layer;

typedef struct {
    mq_config cfg;
    float *embed;                /* [vocab_size x d_model] */
    float *norm_f;               /* [d_model] */
    float *lm_head;              /* [vocab_size x d_model]; == embed when tied */
    mq_layer *layers;            /* [n_layer] */
    void *arena;                 /* one allocation that owns every array above */
    size_t arena_bytes;
} mq_model;

/* Load a transformers (MambaForCausalLM / Mamba2ForCausalLM) or state-spaces checkpoint directory.
 * Validates every tensor's presence and shape (missing, extra and mis-shaped tensors are errors
 * naming the file and tensor). Returns 0, or -1 with mq_errmsg() set. */
int ssm_load(const char *dir, mq_model *m);
void ssm_free(mq_model *m);

/* ---- activation hooks ----
 * A hook sees an activation right after it is produced and before it is consumed; it may rewrite it
 * in place (simulated quantization) or only read it (calibration, verification). One hook type
 * serves every forward (the CPU reference here and the backends of ssm/backend.h): mq_act says what
 * the data is and where it lives. */
typedef enum {
    MQ_ACT_IN_PROJ_IN,   /* RMSNorm output feeding in_proj                 [T x d_model] */
    MQ_ACT_CONV_IN,      /* conv1d input: M1 x half of in_proj, M2 xBC     [T x conv_dim] */
    MQ_ACT_Z,            /* gate z                                         [T x d_inner] */
    MQ_ACT_SSM_X,        /* conv1d + SiLU output x entering the scan (M1: x_proj input) [T x d_inner] */
    MQ_ACT_X_PROJ_OUT,   /* M1 only: x_proj output [dt_low_rank, B, C]     [T x dt_rank+2*d_state] */
    MQ_ACT_DT,           /* M1: dt_proj output before softplus [T x d_inner]; M2: raw dt [T x n_heads] */
    MQ_ACT_B,            /* B as the scan reads it          [T x n_groups*d_state] (M1: d_state) */
    MQ_ACT_C,            /* C as the scan reads it          [T x n_groups*d_state] (M1: d_state) */
    MQ_ACT_SSM_OUT,      /* M1: y * SiLU(z); M2: gated-RMSNorm output      [T x d_inner] */
    MQ_ACT_OUT_PROJ_IN,  /* what out_proj multiplies (after any rotation a hook applied) [T x d_inner] */
    MQ_ACT_SSM_STATE,    /* final SSM state of the sequence: M1 [d_inner x d_state], M2 [n_heads*head_dim x d_state] */
    MQ_ACT_LM_HEAD_IN,   /* norm_f output                                  [T x d_model] */
    MQ_ACT_RESID,        /* read-only: the FP32 residual stream after block `layer` [T x d_model] */
    MQ_ACT_NROLES
} mq_act_role;

/* Views into wider buffers keep the producer's row stride: M1 CONV_IN and Z, M2 CONV_IN, Z and DT
 * are column slices of in_proj's output (ld = cfg_in_proj_dim); M2 SSM_X, B and C are slices of
 * the conv output (ld = conv_dim); M1 B and C are slices of X_PROJ_OUT (ld = dt_rank + 2*d_state).
 * All other roles are dense (ld = cols).
 * layer is the block index, or -1 for MQ_ACT_LM_HEAD_IN (after the last block). In a prefill,
 * MQ_ACT_SSM_STATE is the state after the last token, reported right after the scan; a rewrite
 * of it is what later steps continue from. MQ_ACT_RESID of block l comes when block l+1's norm
 * has added it up (after norm_f's for the last block); hooks must not write it.
 * Rows are b*T + t for a batch of B sequences of T tokens (SSM_STATE: b*d_inner + channel). */
typedef struct {
    int layer;
    mq_act_role role;
    mq_dtype dtype;     /* MQ_F32 (CPU forwards, states, residual), MQ_F16 or MQ_I8 (GPU passes) */
    float scale;        /* MQ_I8: the tensor's scale (a role with one per segment gives its first); else 0 */
    void *x;            /* element (r, c) is x[r*ld + c] */
    int rows, cols, ld;
    int device;         /* 1: x is GPU memory, produced on `stream` (a cudaStream_t); 0: host memory */
    void *stream;
} mq_act;

/* fn returns 0, or -1 after mq_fail(): the forward stops and returns -1 with that message. */
typedef struct {
    int (*fn)(void *ctx, const mq_act *a);
    void *ctx;
} mq_hooks;

/* Calls hk (if any) on a host FP32 activation: the CPU forwards' and the simulations' way. */
int ssm_hook_f32(const mq_hooks *hk, int layer, mq_act_role role, float *x, int rows, int cols, int ld);

const char *ssm_act_role_name(mq_act_role role);

/* ---- forward ----
 * Prefill: one sequence of T tokens; writes hidden[T x d_model] = norm_f output.
 * hooks may be NULL. Returns 0 or -1 (bad token id, or a hook's error). */
int ssm_forward(const mq_model *m, const int32_t *tokens, int T, const mq_hooks *hooks, float *hidden);

/* Decode state for one sequence (conv window and SSM state per layer). */
typedef struct mq_state mq_state;
mq_state *ssm_state_new(const mq_model *m);
void ssm_state_reset(mq_state *s);
void ssm_state_free(mq_state *s);
/* Prefill that continues from s (reset it for a fresh sequence) and leaves the final conv and SSM
 * states in it, so ssm_step can go on after it. ssm_forward is this with a fresh, dropped state. */
int ssm_prefill(const mq_model *m, mq_state *s, const int32_t *tokens, int T, const mq_hooks *hooks,
                float *hidden);
/* One token: advances the state, writes hidden[d_model]. */
int ssm_step(const mq_model *m, mq_state *s, int32_t token, const mq_hooks *hooks, float *hidden);

/* logits[T x vocab] = hidden * lm_head^T */
void ssm_logits(const mq_model *m, const float *hidden, int T, float *logits);
/* Per-token NLL of tokens[t+1] given tokens[0..t], t = 0..T-2 -> nll[T-1]. Returns the sum.
 * Computes logits in row blocks so memory stays O(block x vocab). NAN + mq_errmsg() on a bad id or
 * a non-finite NLL (naming the first such position). */
double ssm_nll(const mq_model *m, const int32_t *tokens, int T, const mq_hooks *hooks, float *nll);

#ifdef __cplusplus
}
#endif
#endif
