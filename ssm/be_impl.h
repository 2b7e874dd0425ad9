/* Inside ssm/backend.h: the table of operations each kind of backend implements, and the constructors
 * of the CUDA kinds (ssm/cuda_rt.cu; ssm/nocuda.c without CUDA). Only the ssm/ sources include this. */
#ifndef MQ_SSM_BE_IMPL_H
#define MQ_SSM_BE_IMPL_H
#include "ssm/backend.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    void (*destroy)(be *b);
    be_state *(*state_new)(be *b, int batch);
    void (*state_reset)(be_state *s);
    void (*state_free)(be_state *s);
    int (*prefill)(be *b, const int32_t *tokens, int batch, int T, be_state *s, const mq_hooks *hk, float *hidden);
    int (*logits)(be *b, int row0, int nrows, float *logits);
    int (*step)(be *b, be_state *s, const int32_t *tokens, const mq_hooks *hk, float *hidden, float *logits);
    int (*step_async)(be *b, be_state *s, const int32_t *tokens, int with_logits);
    void (*sync)(be *b);
    int (*nll)(be *b, const int32_t *tokens, int batch, int T, const mq_hooks *hk, float *nll, double *sum);
    void (*profile)(be *b, int on);
    int (*profile_report)(be *b, char *buf, size_t n);
} be_ops;

/* Every backend starts with this; the kind's own data follows (impl). */
struct be {
    const be_ops *ops;
    be_kind kind;
    mq_config cfg;
    int batch, seqlen;
    size_t weight_bytes, decode_bytes, ws_bytes;
    void *impl;
};

/* Every state starts with this. */
struct be_state {
    be *owner;
    int batch;
};

/* The CUDA kinds. NULL + message (no GPU, unsupported shapes, GPU memory). */
be *be_cuda_open_f16(const mq_model *m, int batch, int seqlen);
be *be_cuda_open_int8(const q_model *qm, int batch, int seqlen);
be *be_cuda_open_random(const mq_config *cfg, be_kind kind, int hadamard, uint64_t seed, int batch, int seqlen);
/* random quamba2 W8A8 weights on the int8 pass (its scales per column) */
be *be_cuda_open_random_q2(const mq_config *cfg, int w4_group, uint64_t seed, int batch, int seqlen);
/* quamba2 W4A16 on the FP16 pass (ssm/f16_pass.cu): an artifact's q_model, or random weights */
be *be_cuda_open_w4a16(const q_model *qm, int batch, int seqlen);
be *be_cuda_open_random_w4a16(const mq_config *cfg, int group, uint64_t seed, int batch, int seqlen);
/* be_act_download for device data. */
int be_cuda_act_download(const mq_act *a, float *dst);

#ifdef __cplusplus
}
#endif
#endif
