/* ssm/forward against transformers: for both proxies, the first 256 tokens of valid.txt through the
 * CPU reference must reproduce reference.safetensors (norm_f output, per-token NLL, logits, top-1);
 * decode steps must agree with prefill; hooks must see every documented role with its documented
 * shape, leave outputs bit-identical when they do not change anything, and be read back by the
 * consumer when they do. */
#include "tests/test.h"
#include "core/err.h"
#include "core/st.h"
#include "ssm/model.h"

typedef struct {
    const char *name;
    int loaded;
    mq_model m;
    st_file *ref;
    const int32_t *tokens;  /* [256] */
    int T;
} proxy;

static proxy g_proxies[2] = {{.name = "mamba1-proxy"}, {.name = "mamba2-proxy"}};

/* Loads the proxy once per program; NULL (and *why) when the shared data is absent. */
static proxy *get_proxy(int i, const char **why) {
    proxy *p = &g_proxies[i];
    if (p->loaded) return p->loaded > 0 ? p : (*why = "load failed earlier", NULL);
    char rel[256];
    snprintf(rel, sizeof rel, "models/%s", p->name);
    const char *dir = t_shared(rel);
    if (!dir) { *why = "../shared/models not found (set MQ_SHARED)"; return NULL; }
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    p->loaded = -1;
    if (ssm_load(dir, &p->m)) { printf("    ssm_load: %s\n", mq_errmsg()); *why = "ssm_load failed"; return NULL; }
    if (!(p->ref = st_open(path))) { printf("    %s\n", mq_errmsg()); *why = "reference unreadable"; return NULL; }
    const st_tensor *t = st_find(p->ref, "tokens");
    if (!t || t->dtype != MQ_I32) { *why = "reference has no int32 tokens"; return NULL; }
    p->tokens = t->data;
    p->T = (int)t->numel;
    p->loaded = 1;
    return p;
}

static const float *ref_f32(proxy *p, const char *name, int64_t numel) {
    const st_tensor *t = st_find(p->ref, name);
    if (!t || t->dtype != MQ_F32 || t->numel != numel) {
        printf("    reference tensor %s missing or not f32[%lld]\n", name, (long long)numel);
        return NULL;
    }
    return t->data;
}

static double rel_fro(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den + 1e-300));
}

static void check_reference(int which) {
    const char *why = "";
    proxy *p = get_proxy(which, &why);
    if (!p) T_SKIP("%s", why);
    const mq_config *c = &p->m.cfg;
    int T = p->T, V = c->vocab_size, Dm = c->d_model;
    const float *ref_h = ref_f32(p, "last_hidden", (int64_t)T * Dm), *ref_nll = ref_f32(p, "nll", T - 1);
    const float *ref_l8 = ref_f32(p, "logits_first8", (int64_t)8 * V);
    const st_tensor *top5 = st_find(p->ref, "top5");
    T_CHECK(ref_h && ref_nll && ref_l8 && top5 && top5->numel == (int64_t)T * 5, "reference tensors");
    if (!ref_h || !ref_nll || !ref_l8 || !top5) return;

    float *h = mq_malloc((size_t)T * Dm * sizeof(float));
    T_CHECK(ssm_forward(&p->m, p->tokens, T, NULL, h) == 0, "%s", mq_errmsg());
    double e = rel_fro(h, ref_h, (size_t)T * Dm);
    printf("    %s: last_hidden rel Frobenius error %.3g\n", p->name, e);
    T_CHECK(e < 1e-4, "last_hidden relative error %.3g", e);

    float *logits = mq_malloc((size_t)T * V * sizeof(float));
    ssm_logits(&p->m, h, T, logits);
    e = rel_fro(logits, ref_l8, (size_t)8 * V);
    printf("    %s: logits_first8 rel Frobenius error %.3g\n", p->name, e);
    T_CHECK(e < 1e-4, "logits_first8 relative error %.3g", e);
    const int32_t *t5 = top5->data;
    int agree = 0;
    for (int t = 0; t < T; t++) {
        const float *row = logits + (size_t)t * V;
        int best = 0;
        for (int v = 1; v < V; v++) best = row[v] > row[best] ? v : best;
        agree += best == t5[t * 5];
    }
    printf("    %s: top-1 agrees at %d / %d positions\n", p->name, agree, T);
    T_CHECK(agree >= 0.99 * T, "top-1 agreement %d / %d", agree, T);

    float *nll = mq_malloc((size_t)(T - 1) * sizeof(float));
    double sum = ssm_nll(&p->m, p->tokens, T, NULL, nll), worst = 0, ref_sum = 0;
    for (int t = 0; t < T - 1; t++) {
        worst = fmax(worst, fabs(nll[t] - ref_nll[t]));
        ref_sum += ref_nll[t];
    }
    printf("    %s: per-token NLL max abs error %.3g, mean %.6f vs %.6f\n", p->name, worst, sum / (T - 1),
           ref_sum / (T - 1));
    T_CHECK(worst < 1e-3, "per-token NLL max abs error %.3g", worst);
    free(h); free(logits); free(nll);
}

static void test_mamba1_reference(void) { check_reference(0); }
static void test_mamba2_reference(void) { check_reference(1); }

/* Step-by-step decode over the first 64 tokens equals prefill; so does prefill(40) + 24 steps. */
static void check_decode(int which) {
    const char *why = "";
    proxy *p = get_proxy(which, &why);
    if (!p) T_SKIP("%s", why);
    int T = 64, Dm = p->m.cfg.d_model;
    float *pre = mq_malloc((size_t)T * Dm * sizeof(float)), *dec = mq_malloc((size_t)T * Dm * sizeof(float));
    T_CHECK(ssm_forward(&p->m, p->tokens, T, NULL, pre) == 0, "%s", mq_errmsg());
    mq_state *s = ssm_state_new(&p->m);
    for (int t = 0; t < T; t++) T_CHECK(ssm_step(&p->m, s, p->tokens[t], NULL, dec + (size_t)t * Dm) == 0, "step %d", t);
    double worst = 0;
    for (int t = 0; t < T; t++) worst = fmax(worst, rel_fro(dec + (size_t)t * Dm, pre + (size_t)t * Dm, Dm));
    T_CHECK(worst < 1e-5, "step vs prefill: worst row relative error %.3g", worst);

    ssm_state_reset(s);
    int T0 = 40;
    T_CHECK(ssm_prefill(&p->m, s, p->tokens, T0, NULL, dec) == 0, "%s", mq_errmsg());
    for (int t = T0; t < T; t++) ssm_step(&p->m, s, p->tokens[t], NULL, dec + (size_t)t * Dm);
    worst = 0;
    for (int t = 0; t < T; t++) worst = fmax(worst, rel_fro(dec + (size_t)t * Dm, pre + (size_t)t * Dm, Dm));
    T_CHECK(worst < 1e-5, "prefill(%d) + steps vs prefill: worst row relative error %.3g", T0, worst);

    int32_t bad = p->m.cfg.vocab_size;
    T_CHECK(ssm_step(&p->m, s, bad, NULL, dec) == -1 && strstr(mq_errmsg(), "vocabulary"), "bad id: %s", mq_errmsg());
    ssm_state_free(s);
    free(pre); free(dec);
}

static void test_mamba1_decode(void) { check_decode(0); }
static void test_mamba2_decode(void) { check_decode(1); }

/* ---- hooks ---- */

typedef struct {
    const mq_config *c;
    int T;
    int calls[65][MQ_ACT_NROLES];  /* [layer + 1][role] */
    int bad;
} recorder;

/* rows, cols, ld documented in model.h for (role, arch), for T tokens. */
static void expected_shape(const mq_config *c, int T, mq_act_role r, int *rows, int *cols, int *ld) {
    int m1 = c->arch == MQ_MAMBA1, np = cfg_in_proj_dim(c), cd = cfg_conv_dim(c);
    int nxp = c->dt_rank + 2 * c->d_state, gn = m1 ? c->d_state : c->n_groups * c->d_state;
    *rows = T;
    switch (r) {
    case MQ_ACT_IN_PROJ_IN: case MQ_ACT_LM_HEAD_IN: case MQ_ACT_RESID: *cols = *ld = c->d_model; break;
    case MQ_ACT_CONV_IN: *cols = cd; *ld = np; break;
    case MQ_ACT_Z: *cols = c->d_inner; *ld = np; break;
    case MQ_ACT_SSM_X: *cols = c->d_inner; *ld = m1 ? c->d_inner : cd; break;
    case MQ_ACT_X_PROJ_OUT: *cols = *ld = nxp; break;
    case MQ_ACT_DT: *cols = m1 ? c->d_inner : c->n_heads; *ld = m1 ? c->d_inner : np; break;
    case MQ_ACT_B: case MQ_ACT_C: *cols = gn; *ld = m1 ? nxp : cd; break;
    case MQ_ACT_SSM_OUT: case MQ_ACT_OUT_PROJ_IN: *cols = *ld = c->d_inner; break;
    case MQ_ACT_SSM_STATE:
        *rows = m1 ? c->d_inner : c->n_heads * c->head_dim;
        *cols = *ld = c->d_state;
        break;
    default: *rows = *cols = *ld = -1;
    }
}

static int record_hook(void *ctx, const mq_act *a) {
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    float *x = a->x;
    recorder *rc = ctx;
    int er, ec, el;
    expected_shape(rc->c, rc->T, role, &er, &ec, &el);
    if (layer < -1 || layer >= rc->c->n_layer || (unsigned)role >= MQ_ACT_NROLES || (layer == -1) != (role == MQ_ACT_LM_HEAD_IN)) {
        printf("    unexpected hook call: layer %d role %d\n", layer, (int)role);
        rc->bad++;
        return 0;
    }
    if (rows != er || cols != ec || ld != el) {
        if (rc->bad++ < 5)
            printf("    %s layer %d: got %d x %d ld %d, expected %d x %d ld %d\n", ssm_act_role_name(role), layer,
                   rows, cols, ld, er, ec, el);
    }
    double s = 0;  /* touch every element: a wrong view would read out of bounds (ASan) or NaN */
    for (int r = 0; r < rows; r++)
        for (int cc = 0; cc < cols; cc++) s += x[(size_t)r * ld + cc];
    if (!isfinite(s)) rc->bad++;
    rc->calls[layer + 1][role]++;
    return 0;
}

static void check_hooks_record(int which, int T, int step) {
    const char *why = "";
    proxy *p = get_proxy(which, &why);
    if (!p) T_SKIP("%s", why);
    const mq_config *c = &p->m.cfg;
    recorder *rc = mq_calloc(1, sizeof *rc);
    rc->c = c;
    rc->T = step ? 1 : T;
    mq_hooks hk = {record_hook, rc};
    float *h = mq_malloc((size_t)T * c->d_model * sizeof(float));
    if (step) {
        mq_state *s = ssm_state_new(&p->m);
        for (int t = 0; t < T; t++) ssm_step(&p->m, s, p->tokens[t], &hk, h + (size_t)t * c->d_model);
        ssm_state_free(s);
    } else {
        ssm_forward(&p->m, p->tokens, T, &hk, h);
    }
    T_CHECK(rc->bad == 0, "%d hook calls with unexpected layer, role, shape or values", rc->bad);
    int calls = step ? T : 1, missing = 0;
    for (int l = 0; l < c->n_layer; l++)
        for (int r = 0; r < MQ_ACT_NROLES; r++) {
            int want = r == MQ_ACT_LM_HEAD_IN || (r == MQ_ACT_X_PROJ_OUT && c->arch != MQ_MAMBA1) ? 0 : calls;
            if (rc->calls[l + 1][r] != want && missing++ < 5)
                printf("    layer %d %s: %d calls, expected %d\n", l, ssm_act_role_name(r), rc->calls[l + 1][r], want);
        }
    T_CHECK(rc->calls[0][MQ_ACT_LM_HEAD_IN] == calls, "lm_head_in calls %d", rc->calls[0][MQ_ACT_LM_HEAD_IN]);
    T_CHECK(missing == 0, "%d (layer, role) pairs with the wrong number of calls", missing);
    free(rc); free(h);
}

static void test_hooks_record_prefill(void) { check_hooks_record(0, 19, 0); check_hooks_record(1, 19, 0); }
static void test_hooks_record_step(void) { check_hooks_record(0, 3, 1); check_hooks_record(1, 3, 1); }

/* Rewrites every element with its own value: must change nothing, bit for bit. */
static int identity_hook(void *ctx, const mq_act *a) {
    const int rows = a->rows, cols = a->cols, ld = a->ld;
    float *x = a->x;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            volatile float v = x[(size_t)r * ld + c];
            x[(size_t)r * ld + c] = v;
        }
    return 0;
}

typedef struct { int layer; mq_act_role role; } target;
/* Halves one activation: the consumer must see it. */
static int halve_hook(void *ctx, const mq_act *a) {
    const int layer = a->layer, rows = a->rows, cols = a->cols, ld = a->ld;
    const mq_act_role role = a->role;
    float *x = a->x;
    const target *tg = ctx;
    if (layer != tg->layer || role != tg->role) return 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) x[(size_t)r * ld + c] *= 0.5f;
    return 0;
}

static void check_hooks_rewrite(int which) {
    const char *why = "";
    proxy *p = get_proxy(which, &why);
    if (!p) T_SKIP("%s", why);
    const mq_config *c = &p->m.cfg;
    int T = 24, Dm = c->d_model;
    float *base = mq_malloc((size_t)T * Dm * sizeof(float)), *h = mq_malloc((size_t)T * Dm * sizeof(float));
    ssm_forward(&p->m, p->tokens, T, NULL, base);
    mq_hooks id = {identity_hook, NULL};
    ssm_forward(&p->m, p->tokens, T, &id, h);
    T_CHECK(!memcmp(h, base, (size_t)T * Dm * sizeof(float)), "identity hook changed the prefill output");

    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        if (r == MQ_ACT_SSM_STATE || (r == MQ_ACT_X_PROJ_OUT && c->arch != MQ_MAMBA1)) continue;
        target tg = {r == MQ_ACT_LM_HEAD_IN ? -1 : 1, r};
        mq_hooks hk = {halve_hook, &tg};
        ssm_forward(&p->m, p->tokens, T, &hk, h);
        T_CHECK(memcmp(h, base, (size_t)T * Dm * sizeof(float)) != 0, "%s: rewriting %s did not change the output",
                p->name, ssm_act_role_name(r));
    }
    /* The state rewritten at the end of a prefill is what the next step starts from. */
    target tg = {1, MQ_ACT_SSM_STATE};
    mq_hooks hk = {halve_hook, &tg};
    mq_state *s = ssm_state_new(&p->m);
    ssm_prefill(&p->m, s, p->tokens, T - 1, NULL, h);
    ssm_step(&p->m, s, p->tokens[T - 1], NULL, h);
    T_CHECK(rel_fro(h, base + (size_t)(T - 1) * Dm, Dm) < 1e-5, "prefill + step");
    ssm_state_reset(s);
    ssm_prefill(&p->m, s, p->tokens, T - 1, &hk, h);
    ssm_step(&p->m, s, p->tokens[T - 1], NULL, h);
    T_CHECK(rel_fro(h, base + (size_t)(T - 1) * Dm, Dm) > 1e-4, "rewriting ssm_state did not reach the next step");
    ssm_state_free(s);
    free(base); free(h);
}

static void test_hooks_rewrite(void) { check_hooks_rewrite(0); check_hooks_rewrite(1); }

static void test_role_names(void) {
    for (int r = 0; r < MQ_ACT_NROLES; r++) {
        const char *n = ssm_act_role_name(r);
        T_CHECK(n && *n && strcmp(n, "unknown"), "role %d has no name", r);
        for (int q = 0; q < r; q++) T_CHECK(strcmp(n, ssm_act_role_name(q)), "roles %d and %d share a name", q, r);
    }
    T_CHECK(!strcmp(ssm_act_role_name(MQ_ACT_NROLES), "unknown"), "out of range");
}

int main(void) {
    T_RUN(test_role_names);
    T_RUN(test_mamba1_reference);
    T_RUN(test_mamba2_reference);
    T_RUN(test_mamba1_decode);
    T_RUN(test_mamba2_decode);
    T_RUN(test_hooks_record_prefill);
    T_RUN(test_hooks_record_step);
    T_RUN(test_hooks_rewrite);
    for (int i = 0; i < 2; i++)
        if (g_proxies[i].loaded > 0) { ssm_free(&g_proxies[i].m); st_close(g_proxies[i].ref); }
    return t_summary();
}
