/* The host side both GPU passes share (C++, for the CUDA sources of ssm/): device memory, the workspace and
 * the decode state, and prefill / step / logits / NLL around a pass's forward, with CUDA graphs for
 * decode steps, per-op profiling and the activation hooks. A pass (ssm/f16_pass.cu, ssm/i8_pass.cu)
 * brings its weights, its own workspace buffers and two functions: the forward (embedding to norm_f
 * for B sequences of T tokens) and lm_head; everything else is here, written once. */
#ifndef MQ_SSM_CUDA_RT_H
#define MQ_SSM_CUDA_RT_H
#include "ssm/be_impl.h"
#include "ssm/kern.h"

/* ---- device memory ---- */

/* Two-pass layout: with base NULL it only adds up the size; then the same calls hand out 256-byte
 * aligned pointers into base. */
struct rt_carver {
    char *base;
    size_t off;
};
void *rt_carve(rt_carver *c, size_t bytes);
#define RT_CARVE(c, T, n) ((T *)rt_carve((c), sizeof(T) * (size_t)(n)))
/* Synchronous host -> device copies (weights, at upload). */
void rt_put(void *dst, const void *src, size_t bytes);
void rt_put_f32(float *dst, const float *src, size_t n);
void rt_put_const(float *dst, size_t n, float v);
/* FP16 through the FP32 staging buffer `stage` (>= n floats), converted on the device. */
void rt_put_f16(half *dst, const float *src, size_t n, float *stage);
/* The FP32 SSM parameters both passes hold alike (A = -exp(A_log)): Mamba1 A [E x N], D [E];
 * Mamba2 A, D, dt_bias [H], the gated norm's gnorm_w [E] (NULL for Mamba1). */
struct rt_ssm {
    float *A, *D, *dt_bias, *gnorm_w;
};
void rt_carve_ssm(rt_carver *cv, const mq_config *c, rt_ssm *p);
/* from host arrays of those lengths (dt_bias, gnorm_w unused for Mamba1) */
void rt_put_ssm(const rt_ssm *p, const mq_config *c, const float *A, const float *D, const float *dt_bias,
                const float *gnorm_w);
/* a random model's: A = -(1..N) per channel (Mamba1, S4D-real) or -(1 + h % 16) per head (Mamba2),
 * D = 1, dt_bias = -4 (dt ~ softplus(-4) ~ 0.018), gnorm_w = 1 */
void rt_put_ssm_random(const rt_ssm *p, const mq_config *c);
/* The shapes both passes take (d_conv <= 8, d_state <= max_state, Mamba2 heads and groups that fit);
 * 0, or -1 + a message starting with `who`. */
int rt_check_shapes(const mq_config *c, int max_state, const char *who);
/* A usable GPU, or -1 + message. */
int rt_need_gpu(void);

/* ---- profiling categories (the ops of a block) ---- */
enum { RT_P_START, RT_P_EMBED, RT_P_NORM, RT_P_IN_PROJ, RT_P_CONV, RT_P_X_PROJ, RT_P_DT_PROJ, RT_P_SCAN, RT_P_GNORM,
       RT_P_YQUANT, RT_P_OUT_PROJ, RT_P_LM_HEAD, RT_P_NLL, RT_P_NCAT };

struct rt_be;

/* What a pass brings. */
struct rt_pass {
    const char *name;        /* "FP16 GPU forward", "int8 GPU pass": starts its messages */
    size_t conv_elem;        /* bytes of one element of the conv state (FP32 or int8) */
    int min_chunk;           /* shortest time chunk of its scans (k_scan_chunks) */
    /* its own workspace buffers, carved after the shared ones (two passes: sizing, then pointers) */
    void (*layout_ws)(rt_be *r, rt_carver *cv);
    /* after the workspace exists: handles, zeroed scratch; and their release */
    void (*init_ws)(rt_be *r);
    void (*free_ws)(rt_be *r);
    /* B sequences of T tokens already in ws.d_tokens; s: state to continue from and update, or NULL
     * (fresh sequences, final state dropped). Enqueues everything up to norm_f, whose output it
     * leaves in ws.hid16 (FP16, what an FP16 lm_head reads) and ws.hid32; calls rt_set_last. No host
     * sync. 0, or -1 + message (a hook's error). */
    int (*forward)(rt_be *r, int B, int T, be_state *s, const mq_hooks *hk);
    /* logits of hidden rows [r0, r0 + n) (n <= ws.logit_rows) into ws.logits, FP32 */
    void (*lm_head)(rt_be *r, int r0, int n);
    void (*free_weights)(rt_be *r);
};

/* The decode state: per layer the conv window (conv_elem bytes per element) and the FP32 SSM state. */
struct rt_state {
    be_state base;
    unsigned long id;        /* unique per state ever made: keys the decode graph (addresses get reused) */
    void *conv;              /* [n_layer][batch][conv_dim][d_conv-1], oldest first */
    float *ssm;              /* [n_layer][batch][d_inner][d_state] (Mamba2: d_inner = n_heads*head_dim) */
    size_t conv_per_layer;   /* elements */
    size_t ssm_per_layer;
};
static inline float *rt_ssm_state(const be_state *s, int layer) {
    const rt_state *r = (const rt_state *)s;
    return r->ssm + layer * r->ssm_per_layer;
}
template <class T>
static inline T *rt_conv_state(const be_state *s, int layer) {
    const rt_state *r = (const rt_state *)s;
    return (T *)r->conv + layer * r->conv_per_layer;
}

/* The workspace part both passes use. */
struct rt_ws {
    int rows;                          /* batch * seqlen */
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_ws;                     /* cuBLAS workspace (set, so graph capture never allocates) */
    int32_t *d_tokens, *d_targets;     /* [rows] */
    float *resid, *hid32, *nll;        /* [rows x d_model] x2, [rows] */
    half *hid16;                       /* [rows x d_model] norm_f output in FP16 */
    float *cstate, *cdt;               /* scan chunk carries for up to chunk_cap (chunks x sequences) */
    int chunk_cap;
    float *state_scratch;              /* final SSM state of one layer when no state is given */
    float *logits;                     /* FP32 logits of up to logit_rows rows */
    int logit_rows;
    int last_B, last_T;                /* shape of the last forward whose hidden rows are held */
    int prof_on, prof_n;               /* profiling: an event after each op, the op it ends */
    cudaEvent_t *prof_ev;
    unsigned char *prof_cat;
    double prof_ms[RT_P_NCAT];
    cudaGraphExec_t graph;             /* decode-step graph and what it was captured for */
    unsigned long graph_state;
    int graph_B, graph_logits;
    void *arena;
};

/* A CUDA backend: the backend header, the pass, the shared workspace; the pass's own struct starts
 * with this one. */
struct rt_be {
    be base;
    const rt_pass *pass;
    rt_ws ws;
    int sm_count;
    void *weights;                     /* the one allocation holding the pass's weights */
};

/* Opens r (allocated by the pass; pass, kind, cfg and weights set): the shared and the pass's
 * workspace for batch x seqlen, stream, cuBLAS. Returns &r->base, or NULL + message after freeing
 * r (and its weights) when the GPU memory is too small. */
be *rt_open(rt_be *r, int batch, int seqlen);
/* Frees r and its weights when opening fails before rt_open. */
void rt_discard(rt_be *r);
/* The passes' random models (benchmarks): ssm/f16_pass.cu, ssm/i8_pass.cu. */
be *rt_f16_random(const mq_config *cfg, int w4_group, uint64_t seed, int batch, int seqlen);
/* q2: quamba2 W8A8's scales per column (x per channel, Mamba1's x_proj through k_i8_linear_xcols,
 * Mamba2's B and C per SSD group), all equal here: the timing of those paths */
be *rt_i8_random(const mq_config *cfg, int hadamard, int q2, uint64_t seed, int batch, int seqlen);
/* the same as quamba2 W4A8: q2's scales and int4 in_proj / out_proj, `group` columns per scale */
be *rt_i8_random_w4a8(const mq_config *cfg, int group, uint64_t seed, int batch, int seqlen);


/* For the forwards: time chunks of a scan of B x T tokens (within the workspace's carries), the
 * profiling mark after an op, the hook call (0, or the hook's -1), and the shape of the rows held. */
int rt_chunks(const rt_be *r, int B, int T);
/* The SSD chunk length of a Mamba2 scan of B x T tokens (k_scan_ssd_chunk) when the carries hold its
 * chunks, else 0 (the sequential kernel). */
int rt_ssd_chunk(const rt_be *r, int B, int T);
void rt_mark(rt_be *r, int cat);
int rt_hook(rt_be *r, const mq_hooks *hk, int layer, mq_act_role role, const void *x, mq_dtype dt, float scale, int rows,
            int cols, int ld);
void rt_set_last(rt_be *r, int B, int T);
/* The embedding of the R tokens in ws.d_tokens into the FP32 residual ws.resid, between marks. */
void rt_embed(rt_be *r, const half *embed, int R);
/* After a block's (or norm_f's, layer = n_layer) add + RMSNorm of R rows: its mark, and the hook of
 * the residual the add completed (block layer - 1). 0, or the hook's -1. */
int rt_after_norm(rt_be *r, const mq_hooks *hk, int layer, int R);
/* Layer l's conv window and SSM state: s's, or (no state: fresh sequences) no window and the
 * workspace's scratch state. */
template <class C>
static inline void rt_layer_state(const rt_be *r, const be_state *s, int l, C **conv, float **ssm) {
    *conv = s ? rt_conv_state<C>(s, l) : NULL;
    *ssm = s ? rt_ssm_state(s, l) : r->ws.state_scratch;
}
/* The state, shape and chunk fields every scan's arguments share (k_scan_m1_args, k_scan_m2_args). */
template <class A>
static inline void rt_scan_state(A &a, const rt_be *r, float *ssm, int state_in, int B, int T, int nc) {
    a.state = ssm, a.state_in = state_in, a.B = B, a.T = T;
    a.nc = nc, a.cstate = r->ws.cstate, a.cdt = r->ws.cdt;
}
/* Lays out a pass's weights (two passes of `layout` over r: sizing, then pointers into one
 * allocation, r->weights). 0, or -1 + message (too little GPU memory). */
int rt_carve_weights(rt_be *r, void (*layout)(rt_be *r, rt_carver *cv));

#endif
