/* Simulated W8A8 on the CPU (see ssm/qmodel.h): the FP32 model of a q_model (dequantized int8 weights with
 * the fusions in them, FP16-exact float tensors) and the hooks that quantize -> dequantize every
 * quantized activation with the artifact's scale, after rotating y by H where the recipe does.
 * This is the bit-level target of the int8 GPU pass: the same rule (core/qrule.h), the same scales, applied
 * to the same activations at the same points of the block. The residual rotation (quamba-rot) is
 * all in the weights (rotated embedding, in_proj, out_proj, lm_head; norm_f ones), so the hooks
 * are the same for it: in_proj's and lm_head's inputs simply arrive rotated. */
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "ssm/qmodel.h"

/* Bump allocator over one block: the arrays of the model are carved from m->arena. */
typedef struct {
    float *base;
    size_t used, cap;
} bump;

static float *take(bump *b, size_t n) {
    float *p = b->base + b->used;
    b->used += (n + 15) & ~(size_t)15;  /* 64-byte aligned arrays */
    if (b->used > b->cap) mq_die("q_sim_build: arena overflow (internal error)");
    return p;
}

static float *copy_or_null(bump *b, const float *src, size_t n) {
    if (!src) return NULL;
    float *p = take(b, n);
    memcpy(p, src, n * sizeof *p);
    return p;
}

static float *deq(bump *b, const q_weight *w) {
    float *p = take(b, (size_t)w->rows * w->cols);
    q_weight_dequantize(w, p);
    return p;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

int q_sim_build(const q_model *qm, mq_model *m) {
    const mq_config *c = &qm->cfg;
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    size_t D = (size_t)c->d_model, E = (size_t)c->d_inner, N = (size_t)cfg_in_proj_dim(c);
    size_t CD = (size_t)cfg_conv_dim(c), V = (size_t)c->vocab_size;
    size_t nA = c->arch == MQ_MAMBA1 ? E * (size_t)c->d_state : (size_t)c->n_heads;
    size_t nD = c->arch == MQ_MAMBA1 ? E : (size_t)c->n_heads;
    size_t per = round16(D) + round16(N * D) + round16(N) + round16(CD * c->d_conv) + round16(CD)
               + round16(D * E) + round16(D) + 2 * round16(nA) + round16(nD);
    if (c->arch == MQ_MAMBA1)
        per += round16((size_t)(c->dt_rank + 2 * c->d_state) * E) + round16(E * c->dt_rank) + round16(E);
    else
        per += round16((size_t)c->n_heads) + round16(E);
    size_t total = per * c->n_layer + round16(V * D) * 2 + round16(D);
    void *arena;
    if (posix_memalign(&arena, 64, total * sizeof(float) + 64)) mq_die("out of memory allocating %zu bytes", total * sizeof(float));
    bump b = {arena, 0, total};
    m->arena = arena;
    m->arena_bytes = total * sizeof(float);
    m->layers = mq_calloc((size_t)c->n_layer, sizeof *m->layers);

    for (int l = 0; l < c->n_layer; l++) {
        const q_layer *Q = &qm->layers[l];
        mq_layer *L = &m->layers[l];
        L->norm_w = copy_or_null(&b, Q->norm_w, D);
        L->in_proj = deq(&b, &Q->in_proj);
        L->in_proj_b = copy_or_null(&b, Q->in_proj_b, N);
        L->conv_w = deq(&b, &Q->conv1d);
        L->conv_b = copy_or_null(&b, Q->conv_b, CD);
        L->out_proj = deq(&b, &Q->out_proj);
        L->out_proj_b = copy_or_null(&b, Q->out_proj_b, D);
        L->A_log = copy_or_null(&b, Q->A_log, nA);
        L->A = take(&b, nA);
        for (size_t i = 0; i < nA; i++) L->A[i] = -expf(L->A_log[i]);
        L->D = copy_or_null(&b, Q->D, nD);
        if (c->arch == MQ_MAMBA1) {
            L->x_proj = deq(&b, &Q->x_proj);
            L->dt_proj = deq(&b, &Q->dt_proj);
            L->dt_proj_b = copy_or_null(&b, Q->dt_proj_b, E);
        } else {
            L->dt_bias = copy_or_null(&b, Q->dt_bias, (size_t)c->n_heads);
            L->gnorm_w = copy_or_null(&b, Q->gnorm_w, E);
        }
    }
    m->embed = copy_or_null(&b, qm->embed, V * D);
    m->norm_f = copy_or_null(&b, qm->norm_f, D);
    if (qm->lm_head_q.q) m->lm_head = deq(&b, &qm->lm_head_q);
    else if (qm->lm_head) m->lm_head = copy_or_null(&b, qm->lm_head, V * D);
    else m->lm_head = m->embed;
    m->cfg.tie_embeddings = m->lm_head == m->embed;   /* what was built decides (the residual rotation unties) */
    return 0;
}

void q_sim_free(mq_model *m) { ssm_free(m); }

static int sim_hook(void *vctx, const mq_act *a) {
    const q_model *qm = ((q_sim_ctx *)vctx)->qm;
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    float *x = a->x;
    if (a->dtype != MQ_F32 || a->device)
        return mq_fail("simulated W8A8: layer %d %s is not host FP32 data", layer, ssm_act_role_name(role));
    if (role == MQ_ACT_LM_HEAD_IN) {
        if (qm->lm_head_in_scale > 0) q_fake_quant_rows(x, rows, cols, ld, qm->lm_head_in_scale);
        return 0;
    }
    if (layer < 0 || layer >= qm->cfg.n_layer || role == MQ_ACT_RESID) return 0;
    if (role == MQ_ACT_SSM_OUT) /* the online half of the Hadamard fusion; OUT_PROJ_IN (next call) quantizes H y */
        return qm->hadamard_n && q_rotate_rows(x, rows, cols, ld) ? mq_fail_ctx("rotating y of layer %d", layer) : 0;
    const q_layer *L = &qm->layers[layer];
    if (role == MQ_ACT_DT && qm->cfg.arch == MQ_MAMBA1) {
        /* Quamba's dt_proj has no bias (the scan adds it): quantize dt_proj's output without it */
        float s = L->act_scale[role][0];
        if (!(s > 0)) return 0;
        for (int r = 0; r < rows; r++) {
            float *row = x + (size_t)r * ld;
            for (int c = 0; c < cols; c++) row[c] = qr_fake_i8(row[c] - L->dt_proj_b[c], s) + L->dt_proj_b[c];
        }
        return 0;
    }
    /* every column by its scale (q_act_col_scale: the role's one, one per segment of the Mamba2 conv
     * input, quamba2's clustered x and per-group B / C); 0 leaves the column float */
    float *s = mq_malloc((size_t)cols * sizeof *s + 4);
    int any = 0;
    for (int c = 0; c < cols; c++) any |= (s[c] = q_act_col_scale(qm, layer, role, c)) > 0;
    if (any) {
        #pragma omp parallel for schedule(static) if ((long)rows * cols >= (1L << 16))
        for (int r = 0; r < rows; r++) {
            float *row = x + (size_t)r * ld;
            for (int c = 0; c < cols; c++)
                if (s[c] > 0) row[c] = qr_fake_i8(row[c], s[c]);
        }
    }
    free(s);
    return 0;
}

mq_hooks q_sim_hooks(q_sim_ctx *ctx, const q_model *qm) {
    ctx->qm = qm;
    mq_hooks h = {sim_hook, ctx};
    return h;
}
