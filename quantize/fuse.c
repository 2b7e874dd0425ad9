/* Offline fusions that leave the FP32 function unchanged (see q.h): the pre-mixer RMSNorm weight
 * folded into in_proj's columns, and the Hadamard rotation H of the SSM output y folded into
 * out_proj (W' = W H^T, with y rotated online), plus the hook that does the online rotation. */
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

int q_rotate_rows(float *x, int rows, int n, int ld) {
    if (ld == n) return had_transform_f32(x, rows, n);
    for (int r = 0; r < rows; r++)
        if (had_transform_f32(x + (size_t)r * ld, 1, n)) return -1;
    return 0;
}

static void rotate_hook(void *vctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    q_rotate_ctx *ctx = vctx;
    if (role == MQ_ACT_SSM_OUT && q_rotate_rows(x, rows, cols, ld))
        mq_die("rotating y of layer %d: %s", layer, mq_errmsg());
    if (ctx->next && ctx->next->fn) ctx->next->fn(ctx->next->ctx, layer, role, x, rows, cols, ld);
}

mq_hooks q_rotate_hooks(q_rotate_ctx *ctx) {
    mq_hooks h = {rotate_hook, ctx};
    return h;
}
