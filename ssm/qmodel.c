/* The quantized model's pieces (ssm/qmodel.h): fake quantization and rotation of activation rows,
 * int8 weights, the recipe table, the activation scale names, freeing. */
#include "ssm/qmodel.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "core/st.h"
#include "hadamard/had.h"

void q_fake_quant_rows(float *x, int rows, int cols, int ld, float s) {
    #pragma omp parallel for schedule(static) if ((long)rows * cols >= (1L << 16))
    for (int r = 0; r < rows; r++) {
        float *row = x + (size_t)r * ld;
        for (int c = 0; c < cols; c++) row[c] = qr_fake_i8(row[c], s);
    }
}

/* ---- weights ---- */

const char *q_gran_name(q_granularity g) { return g == Q_GRAN_CHANNEL ? "channel" : "tensor"; }

int q_gran_from_name(const char *name, q_granularity *out) {
    if (!strcmp(name, "tensor")) { *out = Q_GRAN_TENSOR; return 0; }
    if (!strcmp(name, "channel")) { *out = Q_GRAN_CHANNEL; return 0; }
    return mq_fail("unknown weight granularity '%s' (expected tensor or channel)", name);
}

static float absmax(const float *x, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        if (a > m) m = a;
    }
    return m;
}

void q_weight_quantize(const float *W, int rows, int cols, q_granularity g, q_weight *w) {
    w->rows = rows;
    w->cols = cols;
    w->nscale = g == Q_GRAN_CHANNEL ? rows : 1;
    w->bits = 8;
    w->group = 0;
    w->q = mq_malloc((size_t)rows * cols);
    w->scale = mq_malloc((size_t)w->nscale * sizeof(float));
    if (g == Q_GRAN_TENSOR) w->scale[0] = qr_scale(absmax(W, (size_t)rows * cols));
    #pragma omp parallel for schedule(static) if ((long)rows * cols >= (1L << 18))
    for (int r = 0; r < rows; r++) {
        const float *row = W + (size_t)r * cols;
        if (g == Q_GRAN_CHANNEL) w->scale[r] = qr_scale(absmax(row, (size_t)cols));
        float s = w->scale[g == Q_GRAN_CHANNEL ? r : 0];
        for (int c = 0; c < cols; c++) w->q[(size_t)r * cols + c] = qr_quant_i8(row[c], s);
    }
}

void q_weight_alloc_i4(q_weight *w, int rows, int cols, int group) {
    memset(w, 0, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->bits = 4;
    w->group = group;
    w->nscale = rows * (cols / group);
    w->q = mq_malloc((size_t)rows * cols);
    w->scale = mq_malloc((size_t)w->nscale * sizeof(float));
}

void q_weight_quantize_i4(const float *W, int rows, int cols, int group, q_weight *w) {
    q_weight_alloc_i4(w, rows, cols, group);
    #pragma omp parallel for schedule(static) if ((long)rows * cols >= (1L << 18))
    for (int r = 0; r < rows; r++)
        for (int c0 = 0; c0 < cols; c0 += group) {
            const float *v = W + (size_t)r * cols + c0;
            float s = q_i4_scale(absmax(v, (size_t)group));
            w->scale[(size_t)r * (cols / group) + c0 / group] = s;
            for (int c = 0; c < group; c++) w->q[(size_t)r * cols + c0 + c] = q_i4_quant(v[c], s);
        }
}

void q_i4_pack(const int8_t *q, size_t n, uint8_t *packed) {
    for (size_t i = 0; i + 1 < n; i += 2) packed[i / 2] = (uint8_t)((q[i] & 0xf) | ((q[i + 1] & 0xf) << 4));
}

long q_i4_unpack(const uint8_t *packed, size_t n, int8_t *q) {
    long bad = -1;
    for (size_t i = 0; i + 1 < n; i += 2) {
        int lo = packed[i / 2] & 0xf, hi = packed[i / 2] >> 4;
        q[i] = (int8_t)(lo >= 8 ? lo - 16 : lo);
        q[i + 1] = (int8_t)(hi >= 8 ? hi - 16 : hi);
        if (bad < 0 && (lo == 8 || hi == 8)) bad = (long)(lo == 8 ? i : i + 1);
    }
    return bad;
}

void q_weight_dequantize(const q_weight *w, float *W) {
    #pragma omp parallel for schedule(static) if ((long)w->rows * w->cols >= (1L << 18))
    for (int r = 0; r < w->rows; r++)
        for (int c = 0; c < w->cols; c++) W[(size_t)r * w->cols + c] = qr_deq_i8(w->q[(size_t)r * w->cols + c], q_weight_scale_at(w, r, c));
}

void q_weight_copy(const q_weight *src, q_weight *dst) {
    *dst = *src;
    const size_t n = (size_t)src->rows * src->cols;
    dst->q = mq_malloc(n);
    memcpy(dst->q, src->q, n);
    dst->scale = mq_malloc((size_t)src->nscale * sizeof *dst->scale);
    memcpy(dst->scale, src->scale, (size_t)src->nscale * sizeof *dst->scale);
}

void q_weight_free(q_weight *w) {
    free(w->q);
    free(w->scale);
    memset(w, 0, sizeof *w);
}

/* ---- recipes ---- */

static const struct {
    const char *name;
    int percentile, hadamard, fuse_norm, rotate_residual;
} methods[Q_NMETHODS] = {
    [Q_NAIVE] = {"naive", 0, 0, 0, 0},
    [Q_QUAMBA] = {"quamba", 1, 1, 1, 0},
    [Q_PERCENTILE_ONLY] = {"percentile-only", 1, 0, 0, 0},
    [Q_HADAMARD_ONLY] = {"hadamard-only", 0, 1, 0, 0},
    [Q_QUAMBA_ROT] = {"quamba-rot", 1, 1, 1, 1},
    [Q_QUAMBA2] = {"quamba2", 1, 1, 1, 0},
};

const char *q_method_name(q_method m) { return (unsigned)m < Q_NMETHODS ? methods[m].name : "?"; }

int q_method_from_name(const char *name, q_method *out) {
    for (int i = 0; i < Q_NMETHODS; i++)
        if (!strcmp(name, methods[i].name)) { *out = (q_method)i; return 0; }
    return mq_fail("unknown method '%s' (expected naive, quamba, quamba-rot, quamba2, percentile-only or hadamard-only)", name);
}

int q_method_uses_percentile(q_method m) { return (unsigned)m < Q_NMETHODS && methods[m].percentile; }
int q_method_uses_hadamard(q_method m) { return (unsigned)m < Q_NMETHODS && methods[m].hadamard; }
int q_method_fuses_norm(q_method m) { return (unsigned)m < Q_NMETHODS && methods[m].fuse_norm; }
int q_method_rotates_residual(q_method m) { return (unsigned)m < Q_NMETHODS && methods[m].rotate_residual; }
int q_head_untied(const mq_config *c, q_method m) { return !c->tie_embeddings || q_method_rotates_residual(m); }

void q_options_default(q_options *o) {
    memset(o, 0, sizeof *o);
    o->method = Q_QUAMBA;
    o->percentile = 99.95;
    o->weight_gran = Q_GRAN_TENSOR;
    o->wbits = 8;
    o->abits = 8;
    o->group_size = 128;
    o->gptq = 1;
    o->cluster = 1;
    o->state_groups = 1;
}

int q_uses_cluster(const mq_config *c, const q_options *o) {
    (void)c;
    return o->method == Q_QUAMBA2 && o->cluster && o->abits == 8;
}

int q_uses_state_groups(const mq_config *c, const q_options *o) {
    return o->method == Q_QUAMBA2 && o->state_groups && o->abits == 8 && c->arch == MQ_MAMBA2;
}

int q_i4_group(const q_options *o, int cols) { return o->group_size > 0 && cols % o->group_size == 0 ? o->group_size : cols; }

int q_big_wbits(const q_options *o) { return o->method == Q_QUAMBA2 && o->wbits == 4 ? 4 : 8; }

int q_role_quantized(mq_arch arch, const q_options *o, mq_act_role role) {
    if (o->method == Q_QUAMBA2 && o->abits == 16) return 0;   /* W4A16: activations stay float */
    switch (role) {
    case MQ_ACT_IN_PROJ_IN: case MQ_ACT_CONV_IN: case MQ_ACT_Z: case MQ_ACT_SSM_X:
    case MQ_ACT_DT: case MQ_ACT_OUT_PROJ_IN:
        return 1;
    case MQ_ACT_X_PROJ_OUT:
        return arch == MQ_MAMBA1;
    case MQ_ACT_B: case MQ_ACT_C:            /* Mamba1: slices of the x_proj output, already int8 */
        return arch == MQ_MAMBA2;
    case MQ_ACT_LM_HEAD_IN:
        return o->quantize_head;
    default:                                 /* SSM_OUT (rotated first), SSM_STATE */
        return 0;
    }
}

const char *q_role_key(mq_arch arch, mq_act_role role) {
    switch (role) {
    case MQ_ACT_IN_PROJ_IN: return "in_proj_in";
    case MQ_ACT_CONV_IN: return "conv_in";
    case MQ_ACT_Z: return "z";
    case MQ_ACT_SSM_X: return "ssm_x";
    case MQ_ACT_X_PROJ_OUT: return "x_proj_out";
    case MQ_ACT_DT: return arch == MQ_MAMBA1 ? "dt_proj_out" : "dt";
    case MQ_ACT_B: return "B";
    case MQ_ACT_C: return "C";
    case MQ_ACT_SSM_OUT: return "ssm_out";
    case MQ_ACT_OUT_PROJ_IN: return "out_proj_in";
    case MQ_ACT_SSM_STATE: return "ssm_state";
    case MQ_ACT_LM_HEAD_IN: return "lm_head_in";
    default: return "?";
    }
}

const char *q_scale_name(mq_arch arch, int layer, mq_act_role role, char *buf, size_t n) {
    const char *s = "?";
    switch (role) {
    case MQ_ACT_IN_PROJ_IN: s = "in_proj.input_scale"; break;
    case MQ_ACT_CONV_IN: s = "conv1d.input_scale"; break;
    case MQ_ACT_Z: s = "z_scale"; break;
    case MQ_ACT_SSM_X: s = arch == MQ_MAMBA1 ? "x_proj.input_scale" : "x_scale"; break;
    case MQ_ACT_X_PROJ_OUT: s = "x_proj.output_scale"; break;
    case MQ_ACT_DT: s = arch == MQ_MAMBA1 ? "dt_proj.output_scale" : "dt_scale"; break;
    case MQ_ACT_B: s = "B_scale"; break;
    case MQ_ACT_C: s = "C_scale"; break;
    case MQ_ACT_OUT_PROJ_IN: s = "out_proj.input_scale"; break;
    case MQ_ACT_LM_HEAD_IN: snprintf(buf, n, "lm_head.input_scale"); return buf;
    default: break;
    }
    snprintf(buf, n, "backbone.layers.%d.mixer.%s", layer, s);
    return buf;
}


int q_role_parts(mq_arch arch, mq_act_role role) { return arch == MQ_MAMBA2 && role == MQ_ACT_CONV_IN ? 3 : 1; }

void q_role_part_cols(const mq_config *c, mq_act_role role, int part, int *col0, int *ncols) {
    if (q_role_parts(c->arch, role) == 1) {
        *col0 = 0;
        *ncols = -1;  /* all columns */
        return;
    }
    int gn = c->n_groups * c->d_state;
    *col0 = part == 0 ? 0 : part == 1 ? c->d_inner : c->d_inner + gn;
    *ncols = part == 0 ? c->d_inner : gn;
}

int q_rotate_rows(float *x, int rows, int n, int ld) {
    if (ld == n) return had_transform_f32(x, rows, n);
    for (int r = 0; r < rows; r++)
        if (had_transform_f32(x + (size_t)r * ld, 1, n)) return -1;
    return 0;
}

void q_round_f16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = st_f16_to_f32(st_f32_to_f16(x[i]));
}

void q_model_free(q_model *qm) {
    if (qm->layers)
        for (int l = 0; l < qm->cfg.n_layer; l++) {
            q_layer *L = &qm->layers[l];
            q_weight_free(&L->in_proj);
            q_weight_free(&L->conv1d);
            q_weight_free(&L->out_proj);
            q_weight_free(&L->x_proj);
            q_weight_free(&L->dt_proj);
            free(L->x_index);
            float *f[] = {L->norm_w, L->in_proj_b, L->out_proj_b, L->conv_b, L->A_log, L->D,
                          L->dt_proj_b, L->dt_bias, L->gnorm_w, L->bc_scale[0], L->bc_scale[1], L->x_scale};
            for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) free(f[i]);
        }
    free(qm->layers);
    free(qm->embed);
    free(qm->norm_f);
    free(qm->lm_head);
    q_weight_free(&qm->lm_head_q);
    q_weight_free(&qm->embed_q);
    memset(qm, 0, sizeof *qm);
}

int q_layer_vector_scaled(const q_model *qm, int l, mq_act_role role) {
    const q_layer *L = &qm->layers[l];
    return (role == MQ_ACT_SSM_X && L->x_scale) || ((role == MQ_ACT_B || role == MQ_ACT_C) && L->bc_scale[role == MQ_ACT_C]);
}

float q_layer_scale_max(const q_model *qm, int l, mq_act_role role, int part) {
    const q_layer *L = &qm->layers[l];
    if (!q_layer_vector_scaled(qm, l, role)) return L->act_scale[role][part];
    const float *v = role == MQ_ACT_SSM_X ? L->x_scale : L->bc_scale[role == MQ_ACT_C];
    int n = role == MQ_ACT_SSM_X ? (qm->cfg.arch == MQ_MAMBA2 ? qm->cfg.n_groups : 1) * Q_XCL : qm->cfg.n_groups;
    float m = 0;
    for (int i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
    return m;
}

float q_act_col_scale(const q_model *qm, int l, mq_act_role role, int col) {
    if (l < 0) return role == MQ_ACT_LM_HEAD_IN ? qm->lm_head_in_scale : 0.f;
    const q_layer *L = &qm->layers[l];
    const mq_config *c = &qm->cfg;
    if (role == MQ_ACT_SSM_X && L->x_scale) /* the channel's slot among its SSD group's Q_XCL */
        return L->x_scale[(col / (c->d_inner / (c->arch == MQ_MAMBA2 ? c->n_groups : 1))) * Q_XCL + L->x_index[col]];
    if ((role == MQ_ACT_B || role == MQ_ACT_C) && L->bc_scale[role == MQ_ACT_C])
        return L->bc_scale[role == MQ_ACT_C][col / c->d_state];
    for (int p = 1; p < q_role_parts(c->arch, role); p++) {
        int c0, nc;
        q_role_part_cols(c, role, p, &c0, &nc);
        if (col >= c0 && col < c0 + nc) return L->act_scale[role][p];
    }
    return L->act_scale[role][0];
}

void q_embed_dequantize(q_model *qm) {
    const size_t n = (size_t)qm->embed_q.rows * qm->embed_q.cols;
    if (!qm->embed) qm->embed = mq_malloc(n * sizeof *qm->embed);
    q_weight_dequantize(&qm->embed_q, qm->embed);
    q_round_f16(qm->embed, n);
}
