/* q_quantize: FP32 model + activation statistics + recipe -> q_model (int8 weights with their
 * scales, activation scales, the float tensors rounded to FP16). The fusions of the recipe are
 * applied to FP32 copies of in_proj / out_proj (and, under the residual rotation, of the embedding,
 * out_proj's bias and the lm_head) before they are quantized or rounded, one layer at a time, so
 * the source model is never copied whole. quamba2 adds int4 in_proj / out_proj / lm_head (GPTQ on
 * q_stats.hess, or RTN) and its vector scales (B / C per SSD group, clustered ssm_x). */
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "core/st.h"
#include "hadamard/had.h"
#include "quantize/q.h"


/* FP16-rounded copy of src[n]; NULL when src is NULL. Fails on values FP16 cannot hold. */
static float *dup16(const float *src, size_t n, const char *what, int layer, int *bad) {
    if (!src) return NULL;
    float *d = mq_malloc(n * sizeof *d);
    memcpy(d, src, n * sizeof *d);
    q_round_f16(d, n);
    for (size_t i = 0; i < n && !*bad; i++)
        if (!isfinite(d[i]) && isfinite(src[i])) {
            mq_fail("layer %d %s[%zu] = %g does not fit in FP16", layer, what, i, (double)src[i]);
            *bad = 1;
        }
    return d;
}

/* in_proj / out_proj / lm_head: int8 per the granularity, or (quamba2 wbits 4) int4 per group by
 * GPTQ on the Hessian H of its input, or by round-to-nearest */
static int big_weight(const float *W, int rows, int cols, const q_options *o, const double *H, const char *what, int layer, q_weight *w) {
    if (q_big_wbits(o) == 8) {
        q_weight_quantize(W, rows, cols, o->weight_gran, w);
        return 0;
    }
    if (cols % 2) return mq_fail("layer %d %s: int4 weights need an even number of columns (two a byte), found %d", layer, what, cols);
    int group = q_i4_group(o, cols);
    if (!o->gptq) {
        q_weight_quantize_i4(W, rows, cols, group, w);
        return 0;
    }
    if (!H) return mq_fail("layer %d %s: GPTQ needs the Hessian of its input (no Hessian pass ran; --weight-method rtn does without)", layer, what);
    return q_gptq_i4(W, rows, cols, group, H, w) ? mq_fail_ctx("layer %d %s", layer, what) : 0;
}

/* quamba2's activation scales that are vectors: B and C per SSD group, ssm_x clustered */
static int quamba2_scales(const mq_config *c, const q_options *o, const q_stats *st, int l, q_layer *L) {
    if (q_uses_state_groups(c, o))
        for (int k = 0; k < 2; k++) {
            mq_act_role role = k ? MQ_ACT_C : MQ_ACT_B;
            L->bc_scale[k] = mq_malloc((size_t)c->n_groups * sizeof(float));
            if (!st->vector) return mq_fail("statistics without per-group absmax (quamba2 B/C scales)");
            if (st->vector(st->ctx, l, role, "group", L->bc_scale[k], c->n_groups)) return -1;
            for (int g = 0; g < c->n_groups; g++) L->bc_scale[k][g] = qr_scale(L->bc_scale[k][g]);
        }
    if (q_uses_cluster(c, o)) {
        float *amax = mq_malloc((size_t)c->d_inner * sizeof *amax);
        if (!st->vector) {
            free(amax);
            return mq_fail("statistics without per-channel absmax (quamba2 ssm_x clustering)");
        }
        if (st->vector(st->ctx, l, MQ_ACT_SSM_X, "channel", amax, c->d_inner)) {
            free(amax);
            return -1;
        }
        int G = c->arch == MQ_MAMBA2 ? c->n_groups : 1;
        L->x_scale = mq_malloc((size_t)G * Q_XCL * sizeof(float));
        L->x_index = mq_malloc((size_t)c->d_inner);
        q_x_cluster(c, amax, L->x_scale, L->x_index);
        free(amax);
    }
    return 0;
}

static float *ones(size_t n) {
    float *d = mq_malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = 1.0f;
    return d;
}

int q_quantize(const mq_model *src, const q_stats *st, const q_options *opt, q_model *out) {
    const mq_config *c = &src->cfg;
    q_options oo = *opt;
    oo.quantize_head |= oo.quantize_embedding;   /* an int8 embedding comes with an int8 lm_head */
    const q_options *o = &oo;
    memset(out, 0, sizeof *out);
    out->cfg = *c;
    out->opt = *o;
    if ((unsigned)o->method >= Q_NMETHODS) return mq_fail("invalid method %d", (int)o->method);
    if (q_method_uses_percentile(o->method) && !(o->percentile > 0 && o->percentile <= 100))
        return mq_fail("percentile %g is outside (0, 100]", o->percentile);
    int had = q_method_uses_hadamard(o->method), fuse = q_method_fuses_norm(o->method);
    int rot = q_method_rotates_residual(o->method);
    if (had) {
        if (had_factor(c->d_inner, &out->hadamard_m, &out->hadamard_k))
            return mq_fail_ctx("method %s rotates y of width d_inner", q_method_name(o->method));
        out->hadamard_n = c->d_inner;
    }
    if (rot) {
        if (had_factor(c->d_model, &out->resid_m, &out->resid_k))
            return mq_fail_ctx("method %s rotates the residual stream of width d_model", q_method_name(o->method));
        out->resid_n = c->d_model;
    }
    int D = c->d_model, E = c->d_inner, N = cfg_in_proj_dim(c), CD = cfg_conv_dim(c), bad = 0;
    size_t nA = c->arch == MQ_MAMBA1 ? (size_t)E * c->d_state : (size_t)c->n_heads;
    size_t nD = c->arch == MQ_MAMBA1 ? (size_t)E : (size_t)c->n_heads;
    out->layers = mq_calloc((size_t)c->n_layer, sizeof *out->layers);
    float *tmp = mq_malloc((size_t)(N > D ? N : D) * (E > D ? E : D) * sizeof *tmp);

    for (int l = 0; l < c->n_layer && !bad; l++) {
        const mq_layer *S = &src->layers[l];
        q_layer *L = &out->layers[l];
        /* in_proj, with the RMSNorm weight folded into its columns */
        memcpy(tmp, S->in_proj, (size_t)N * D * sizeof *tmp);
        if (fuse)
            for (int r = 0; r < N; r++)
                for (int k = 0; k < D; k++) tmp[(size_t)r * D + k] *= S->norm_w[k];
        if (rot && had_transform_f32(tmp, N, D)) { bad = 1; break; }   /* its input arrives as norm(r) H */
        if (big_weight(tmp, N, D, o, st->hess ? st->hess->in_proj[l] : NULL, "in_proj", l, &L->in_proj)) { bad = 1; break; }
        L->norm_w = fuse ? ones((size_t)D) : dup16(S->norm_w, (size_t)D, "norm.weight", l, &bad);
        /* out_proj, rotated: W' = W H^T; under the residual rotation also H_D W', so it adds a
         * rotated update to the rotated residual */
        memcpy(tmp, S->out_proj, (size_t)D * E * sizeof *tmp);
        if (had && had_transform_f32(tmp, D, E)) { bad = 1; break; }
        if (rot && q_rotate_cols(tmp, D, E)) { bad = 1; break; }
        if (big_weight(tmp, D, E, o, st->hess ? st->hess->out_proj[l] : NULL, "out_proj", l, &L->out_proj)) { bad = 1; break; }
        q_weight_quantize(S->conv_w, CD, c->d_conv, o->weight_gran, &L->conv1d);
        L->in_proj_b = dup16(S->in_proj_b, (size_t)N, "in_proj.bias", l, &bad);
        if (rot && S->out_proj_b) {
            memcpy(tmp, S->out_proj_b, (size_t)D * sizeof *tmp);
            if (had_transform_f32(tmp, 1, D)) { bad = 1; break; }
            L->out_proj_b = dup16(tmp, (size_t)D, "out_proj.bias", l, &bad);
        } else {
            L->out_proj_b = dup16(S->out_proj_b, (size_t)D, "out_proj.bias", l, &bad);
        }
        L->conv_b = dup16(S->conv_b, (size_t)CD, "conv1d.bias", l, &bad);
        L->A_log = dup16(S->A_log, nA, "A_log", l, &bad);
        L->D = dup16(S->D, nD, "D", l, &bad);
        if (c->arch == MQ_MAMBA1) {
            q_weight_quantize(S->x_proj, c->dt_rank + 2 * c->d_state, E, o->weight_gran, &L->x_proj);
            q_weight_quantize(S->dt_proj, E, c->dt_rank, o->weight_gran, &L->dt_proj);
            L->dt_proj_b = dup16(S->dt_proj_b, (size_t)E, "dt_proj.bias", l, &bad);
        } else {
            L->dt_bias = dup16(S->dt_bias, (size_t)c->n_heads, "dt_bias", l, &bad);
            L->gnorm_w = dup16(S->gnorm_w, (size_t)E, "mixer.norm.weight", l, &bad);
        }
        if (o->method == Q_QUAMBA2 && quamba2_scales(c, o, st, l, L)) { bad = 1; break; }
        for (int r = 0; r < MQ_ACT_NROLES && !bad; r++) {
            if (r == MQ_ACT_LM_HEAD_IN || !q_role_quantized(c->arch, o, (mq_act_role)r)) continue;
            if (q_layer_vector_scaled(out, l, (mq_act_role)r)) continue;   /* quamba2's, set above */
            for (int p = 0; p < q_role_parts(c->arch, (mq_act_role)r) && !bad; p++) {
                float clip;
                if (q_role_clip(o, st, l, (mq_act_role)r, p, &clip)) bad = 1;
                else L->act_scale[r][p] = qr_scale(clip);
            }
        }
    }
    free(tmp);
    if (!bad) {
        size_t ne = (size_t)c->vocab_size * D;
        /* under the residual rotation: E H, and the lm_head (L diag(norm_f)) H of its own */
        float *emb = rot ? mq_malloc(ne * sizeof *emb) : NULL, *head = rot ? mq_malloc(ne * sizeof *head) : NULL;
        if (rot) {
            memcpy(emb, src->embed, ne * sizeof *emb);
            memcpy(head, src->lm_head, ne * sizeof *head);
            if (had_transform_f32(emb, c->vocab_size, D) || q_rotate_head(head, src->norm_f, c->vocab_size, D)) bad = 1;
        }
        const float *lm = rot ? head : src->lm_head;
        out->embed = dup16(rot ? emb : src->embed, ne, "embeddings.weight", -1, &bad);
        out->norm_f = rot ? ones((size_t)D) : dup16(src->norm_f, (size_t)D, "norm_f.weight", -1, &bad);
        if (!bad && o->quantize_embedding) {
            /* per row; the FP16-rounded dequantized table is what the forwards read */
            q_weight_quantize(rot ? emb : src->embed, c->vocab_size, D, Q_GRAN_CHANNEL, &out->embed_q);
            q_embed_dequantize(out);
        }
        if (!bad && o->quantize_head) {
            /* a tied lm_head stays the embedding: its int8 table, scale per row */
            if (o->quantize_embedding && !q_head_untied(c, o->method)) q_weight_copy(&out->embed_q, &out->lm_head_q);
            else if (big_weight(lm, c->vocab_size, D, o, st->hess ? st->hess->lm_head : NULL, "lm_head", -1, &out->lm_head_q)) bad = 1;
            float clip;
            if (bad || !q_role_quantized(c->arch, o, MQ_ACT_LM_HEAD_IN)) { /* W4A16: the input stays float */ }
            else if (q_role_clip(o, st, -1, MQ_ACT_LM_HEAD_IN, 0, &clip)) bad = 1;
            else out->lm_head_in_scale = qr_scale(clip);
        } else if (!bad && q_head_untied(c, o->method)) {
            out->lm_head = dup16(lm, ne, "lm_head.weight", -1, &bad);
        }
        free(emb);
        free(head);
    }
    if (bad) {
        q_model_free(out);
        return -1;
    }
    return 0;
}

