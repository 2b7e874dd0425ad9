/* Teacher-forced comparison of the int8 pass with the CPU simulation (see check.h). */
#include "quantize/check.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "ssm/backend.h"

typedef struct {
    int8_t *q;      /* int8 codes, or */
    float *f;       /* float data */
    int rows, cols;
} capture;

struct qchk {
    const q_model *qm;
    int T, L;
    capture *cap;   /* [(L + 1) x MQ_ACT_NROLES]; slot L holds layer -1 (lm_head input) */
    qchk_role st[MQ_ACT_NROLES];
    q_sim_ctx sc;
    mq_hooks sim;
};

qchk *qchk_new(const q_model *qm, int T) {
    qchk *c = mq_calloc(1, sizeof *c);
    c->qm = qm;
    c->T = T;
    c->L = qm->cfg.n_layer;
    c->cap = mq_calloc((size_t)(c->L + 1) * MQ_ACT_NROLES, sizeof *c->cap);
    c->sim = q_sim_hooks(&c->sc, qm);
    for (int r = 0; r < MQ_ACT_NROLES; r++) c->st[r].worst_layer = -2;
    return c;
}

void qchk_free(qchk *c) {
    if (!c) return;
    for (int i = 0; i < (c->L + 1) * MQ_ACT_NROLES; i++) free(c->cap[i].q), free(c->cap[i].f);
    free(c->cap);
    free(c);
}

static capture *slot(qchk *c, int layer, int role) {
    if (layer < -1 || layer >= c->L || role < 0 || role >= MQ_ACT_NROLES) return NULL;
    return &c->cap[(size_t)(layer < 0 ? c->L : layer) * MQ_ACT_NROLES + role];
}

static int pass_hook(void *ctx, const mq_act *a) {
    qchk *c = ctx;
    capture *k = slot(c, a->layer, a->role);
    if (!k || a->role == MQ_ACT_RESID) return 0; /* anything not compared */
    const size_t n = (size_t)a->rows * a->cols;
    float *f = mq_malloc(n * sizeof(float) + 4);
    if (be_act_download(a, f)) {
        free(f);
        return mq_fail_ctx("int8 check");
    }
    free(k->q), free(k->f);
    k->q = NULL, k->f = NULL;
    k->rows = a->rows, k->cols = a->cols;
    if (a->dtype == MQ_I8) {
        k->q = mq_malloc(n + 1);
        for (size_t i = 0; i < n; i++) k->q[i] = (int8_t)f[i];
        free(f);
    } else {
        k->f = f;
    }
    return 0;
}

/* scale of column col of an int8 role (segments of the Mamba2 conv input, quamba2's vectors) */
static float col_scale(const q_model *qm, int layer, int role, int col) {
    return q_act_col_scale(qm, layer, layer < 0 ? MQ_ACT_LM_HEAD_IN : (mq_act_role)role, col);
}

static void note_float(qchk *c, int layer, int role, const capture *k, const float *x, int rows, int cols, int ld) {
    if (!k->f || k->rows != rows || k->cols != cols) return;
    double md = 0, mm = 0;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            double s = x[(size_t)r * ld + j], g = k->f[(size_t)r * cols + j];
            mm = fmax(mm, fabs(s));
            if (!(fabs(g - s) <= md)) md = fabs(g - s);
        }
    qchk_role *st = &c->st[role];
    double rel = md / (mm > 0 ? mm : 1);
    st->n += (long)rows * cols;
    if (!(rel <= st->max_rel)) st->max_rel = rel, st->worst_layer = layer;
}

static int sim_hook(void *ctx, const mq_act *a) {
    qchk *c = ctx;
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    float *x = a->x;
    capture *k = slot(c, layer, role);
    if (role == MQ_ACT_SSM_OUT || role == MQ_ACT_SSM_STATE) { /* before the rotation; the state as it is */
        if (k) note_float(c, layer, role, k, x, rows, cols, ld);
        return c->sim.fn(c->sim.ctx, a);
    }
    if (c->sim.fn(c->sim.ctx, a)) return -1; /* the simulation's own quantization */
    if (!k) return 0;
    if (k->f) {
        note_float(c, layer, role, k, x, rows, cols, ld);
        return 0;
    }
    if (!k->q) return 0;
    qchk_role *st = &c->st[role];
    st->is_int8 = 1;
    if (k->rows != rows || k->cols != cols) {
        fprintf(stderr, "int8 check: layer %d %s is %dx%d in the int8 pass, %dx%d in the simulation\n", layer,
                ssm_act_role_name(role), k->rows, k->cols, rows, cols);
        st->max_steps = INFINITY, st->worst_layer = layer;
        return 0;
    }
    const int m1dt = role == MQ_ACT_DT && c->qm->cfg.arch == MQ_MAMBA1;
    for (int j = 0; j < cols; j++) {
        const float s = col_scale(c->qm, layer, role, j), b = m1dt ? c->qm->layers[layer].dt_proj_b[j] : 0.f;
        for (int r = 0; r < rows; r++) {
            float *px = x + (size_t)r * ld + j;
            /* the int8 pass's value, dequantized the simulation's way (Mamba1 dt: bias added after) */
            float v = (float)k->q[(size_t)r * cols + j] * s;
            if (m1dt) v += b;
            double steps = fabs((double)v - *px) / s;
            if (steps > 0.5) st->flips++;
            if (!(steps <= st->max_steps)) st->max_steps = steps, st->worst_layer = layer;
            *px = v; /* forced: the next op starts from the int8 pass's input */
        }
    }
    st->n += (long)rows * cols;
    return 0;
}

mq_hooks qchk_pass_hooks(qchk *c) {
    mq_hooks h = {pass_hook, c};
    return h;
}
mq_hooks qchk_sim_hooks(qchk *c) {
    mq_hooks h = {sim_hook, c};
    return h;
}
const qchk_role *qchk_stats(const qchk *c) { return c->st; }

void qchk_format(const qchk *c, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int r = 0; r < MQ_ACT_NROLES && k < n; r++) {
        const qchk_role *s = &c->st[r];
        if (!s->n) continue;
        int w;
        if (s->is_int8)
            w = snprintf(buf + k, n - k, "    %-12s %9ld values, %.4f%% one code apart, max %.3g steps (layer %d)\n",
                         ssm_act_role_name((mq_act_role)r), s->n, 100.0 * s->flips / s->n, s->max_steps, s->worst_layer);
        else
            w = snprintf(buf + k, n - k, "    %-12s %9ld values, max |diff| %.3g of the layer's max |value| (layer %d)\n",
                         ssm_act_role_name((mq_act_role)r), s->n, s->max_rel, s->worst_layer);
        if (w < 0) break;
        k += (size_t)w;
    }
}
