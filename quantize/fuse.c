/* Offline fusions that leave the FP32 function unchanged (see q.h): the pre-mixer RMSNorm weight
 * folded into in_proj's columns, the Hadamard rotation H of the SSM output y folded into out_proj
 * (W' = W H^T, with y rotated online), the rotation of the residual stream (no online step), plus
 * the hook that does the online rotation of y and the model copy the fusions run on. */
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "hadamard/had.h"
#include "quantize/q.h"

int q_fuse_norm(mq_model *m) {
    const mq_config *c = &m->cfg;
    int N = cfg_in_proj_dim(c), K = c->d_model;
    for (int l = 0; l < c->n_layer; l++) {
        mq_layer *L = &m->layers[l];
        for (int r = 0; r < N; r++)
            for (int k = 0; k < K; k++) L->in_proj[(size_t)r * K + k] *= L->norm_w[k];
        for (int k = 0; k < K; k++) L->norm_w[k] = 1.0f;
    }
    return 0;
}

int q_fuse_hadamard(mq_model *m) {
    const mq_config *c = &m->cfg;
    if (had_factor(c->d_inner, NULL, NULL)) return mq_fail_ctx("%s: out_proj rotation", c->source);
    for (int l = 0; l < c->n_layer; l++)
        if (had_transform_f32(m->layers[l].out_proj, c->d_model, c->d_inner)) return -1;
    return 0;
}

int q_rotate_cols(float *W, int rows, int cols) {
    /* H W = (W^T H)^T: rotate the rows of the transpose (H is symmetric) */
    float *t = mq_malloc((size_t)rows * cols * sizeof *t);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) t[(size_t)c * rows + r] = W[(size_t)r * cols + c];
    int rc = had_transform_f32(t, cols, rows);
    if (!rc)
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) W[(size_t)r * cols + c] = t[(size_t)c * rows + r];
    free(t);
    return rc;
}

int q_rotate_head(float *L, const float *norm_f, int vocab, int d) {
    if (had_factor(d, NULL, NULL)) return -1;
    for (size_t v = 0; v < (size_t)vocab; v++)
        for (int k = 0; k < d; k++) L[v * d + k] *= norm_f[k];
    return had_transform_f32(L, vocab, d);
}

int q_fuse_residual(mq_model *m) {
    mq_config *c = &m->cfg;
    int D = c->d_model, E = c->d_inner, N = cfg_in_proj_dim(c);
    if (had_factor(D, NULL, NULL)) return mq_fail_ctx("%s: residual rotation (order d_model)", c->source);
    if (m->lm_head == m->embed)
        return mq_fail("%s: the residual rotation gives the lm_head norm_f and the embedding not: the lm_head must be "
                       "an array of its own (q_model_copy with untie)", c->source);
    if (q_fuse_norm(m)) return -1;
    for (int l = 0; l < c->n_layer; l++) {
        mq_layer *L = &m->layers[l];
        if (had_transform_f32(L->in_proj, N, D) || q_rotate_cols(L->out_proj, D, E)) return -1;
        if (L->out_proj_b && had_transform_f32(L->out_proj_b, 1, D)) return -1;
    }
    if (had_transform_f32(m->embed, c->vocab_size, D) || q_rotate_head(m->lm_head, m->norm_f, c->vocab_size, D)) return -1;
    for (int k = 0; k < D; k++) m->norm_f[k] = 1.0f;
    c->tie_embeddings = 0;
    return 0;
}

int q_model_copy(const mq_model *m, mq_model *f, int untie) {
    const mq_config *c = &m->cfg;
    int own_head = untie && m->lm_head == m->embed;
    size_t head = own_head ? ((size_t)c->vocab_size * c->d_model * sizeof(float) + 63) / 64 * 64 : 0;
    size_t bytes = (m->arena_bytes + 63) / 64 * 64;
    *f = *m;
    if (posix_memalign(&f->arena, 64, (bytes + head) ? (bytes + head) : 64)) mq_die("out of memory (%zu bytes)", bytes + head);
    memcpy(f->arena, m->arena, m->arena_bytes);
    f->arena_bytes = bytes + head;
    f->layers = mq_malloc((size_t)c->n_layer * sizeof *f->layers);
    ptrdiff_t d = (char *)f->arena - (char *)m->arena;
    const char *lo = m->arena, *hi = lo + m->arena_bytes;
#define REBASE(p) ((p) && (const char *)(p) >= lo && (const char *)(p) < hi ? (float *)((char *)(p) + d) : (p))
    for (int l = 0; l < c->n_layer; l++) {
        mq_layer L = m->layers[l];
        float **fields[] = {&L.norm_w, &L.in_proj, &L.in_proj_b, &L.conv_w, &L.conv_b, &L.out_proj, &L.out_proj_b, &L.A_log,
                            &L.A, &L.D, &L.x_proj, &L.dt_proj, &L.dt_proj_b, &L.dt_bias, &L.gnorm_w};
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            float *p = REBASE(*fields[i]);
            if (p && p == *fields[i]) {   /* not in the arena: the copy would share it */
                free(f->arena);
                free(f->layers);
                memset(f, 0, sizeof *f);
                return mq_fail("q_model_copy: layer %d has an array outside the model's arena (internal error)", l);
            }
            *fields[i] = p;
        }
        f->layers[l] = L;
    }
    f->embed = REBASE(m->embed);
    f->norm_f = REBASE(m->norm_f);
    f->lm_head = REBASE(m->lm_head);
#undef REBASE
    if (own_head) {
        f->lm_head = (float *)((char *)f->arena + bytes);
        memcpy(f->lm_head, f->embed, (size_t)c->vocab_size * c->d_model * sizeof(float));
        f->cfg.tie_embeddings = 0;
    }
    return 0;
}


static int rotate_hook(void *vctx, const mq_act *a) {
    q_rotate_ctx *ctx = vctx;
    if (a->role == MQ_ACT_SSM_OUT) {
        if (a->dtype != MQ_F32 || a->device) return mq_fail("rotating y of layer %d: not host FP32 data", a->layer);
        if (q_rotate_rows(a->x, a->rows, a->cols, a->ld)) return mq_fail_ctx("rotating y of layer %d", a->layer);
    }
    return ctx->next && ctx->next->fn ? ctx->next->fn(ctx->next->ctx, a) : 0;
}

mq_hooks q_rotate_hooks(q_rotate_ctx *ctx) {
    mq_hooks h = {rotate_hook, ctx};
    return h;
}
