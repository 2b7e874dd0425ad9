/* Observers on synthetic arrays: histogram bins against their documented edges, percentiles by
 * selection exactly equal (bit for bit) to a full sort + the same torch.quantile interpolation,
 * interpolation values checked by hand, EMA arithmetic, per-head maxima, and an obs_set fed by
 * hand-made hook calls (names, composites, slices, transforms, shape and missing-role errors). */
#include "tests/test.h"
#include "calib/obs.h"
#include "core/err.h"
#include <float.h>
#include <stdint.h>
#include <time.h>

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {                    /* xorshift64*, uniform in [0, 1) */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (double)((rng * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}
static float nrand(void) { return (float)(sqrt(-2 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand())); }

static int cmpf(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_hist_bins(void) {
    int bad = 0;
    for (int i = 1; i < OBS_HIST_BINS; i++) {
        float e = obs_hist_edge(i);
        bad += obs_hist_bin(e) != i;
        bad += obs_hist_bin(nextafterf(e, 0)) != i - 1;
    }
    T_CHECK(bad == 0, "%d edges land in the wrong bin", bad);
    T_CHECK(obs_hist_edge(0) == 0x1p-16f && obs_hist_edge(OBS_HIST_BINS) == 0x1p16f, "range 2^-16 .. 2^16");
    T_CHECK(obs_hist_bin(0) == 0 && obs_hist_bin(1e-30f) == 0, "tiny values and zero go to bin 0");
    T_CHECK(obs_hist_bin(1.0f) == 1024, "1.0 -> bin 1024, got %d", obs_hist_bin(1.0f));
    T_CHECK(obs_hist_bin(2.0f) == 1088, "2.0 -> bin 1088, got %d", obs_hist_bin(2.0f));
    T_CHECK(obs_hist_bin(65536.0f) == 2047 && obs_hist_bin(INFINITY) == 2047, "overflow bin");
    /* random magnitudes against floor(64 * (log2 a + 16)) computed in double, away from edges */
    int mism = 0, n = 0;
    for (int i = 0; i < 200000; i++) {
        float a = (float)exp2(urand() * 36 - 18);
        double pos = 64 * (log2(a) + 16);
        if (fabs(pos - floor(pos + 0.5)) < 1e-3) continue;
        int want = pos < 0 ? 0 : pos >= 2048 ? 2047 : (int)floor(pos);
        mism += obs_hist_bin(a) != want;
        n++;
    }
    T_CHECK(mism == 0, "%d of %d random values in the wrong bin", mism, n);
}

static void test_quantile_interpolation(void) {
    float a[10];
    for (int i = 0; i < 10; i++) a[i] = (float)i;
    T_NEAR(obs_quantile_sorted(a, 10, 50), 4.5, 1e-6, "median of 0..9");
    T_NEAR(obs_quantile_sorted(a, 10, 99), 8.91, 1e-5, "p99 of 0..9 (rank 0.99 * 9)");
    T_NEAR(obs_quantile_sorted(a, 10, 100), 9, 0, "p100 = max");
    T_NEAR(obs_quantile_sorted(a, 10, 0), 0, 0, "p0 = min");
    float b[4] = {1, 2, 3, 4};  /* torch.quantile(tensor([1.,2.,3.,4.]), 0.9995) = 3.9985 */
    T_NEAR(obs_quantile_sorted(b, 4, 99.95), 3.9985, 2e-6, "torch example");
    float c[1] = {7.5f};
    T_NEAR(obs_quantile_sorted(c, 1, 99.9), 7.5, 0, "size 1");
}

/* selection and histogram-guided selection equal qsort + the same interpolation, bit for bit */
static int check_against_sort(const float *v, size_t n, const double *pct, int nq, const char *what) {
    float *s = malloc(n * sizeof *s), *w = malloc(n * sizeof *w), *cand = malloc(n * sizeof *cand);
    float ref[OBS_MAX_Q], sel[OBS_MAX_Q], hsel[OBS_MAX_Q];
    int64_t hist[OBS_HIST_BINS] = {0};
    for (size_t i = 0; i < n; i++) { s[i] = fabsf(v[i]); w[i] = s[i]; hist[obs_hist_bin(s[i])]++; }
    qsort(s, n, sizeof *s, cmpf);
    for (int q = 0; q < nq; q++) ref[q] = obs_quantile_sorted(s, n, pct[q]);
    obs_percentiles(w, n, pct, nq, sel);
    for (size_t i = 0; i < n; i++) w[i] = fabsf(v[i]);
    obs_percentiles_hist(w, n, hist, pct, nq, cand, hsel);
    int bad = 0;
    for (int q = 0; q < nq; q++) {
        if (memcmp(&ref[q], &sel[q], 4) || memcmp(&ref[q], &hsel[q], 4)) {
            if (bad++ < 3)
                printf("    %s n=%zu p%g: sort %.9g select %.9g hist-select %.9g\n", what, n, pct[q], ref[q], sel[q], hsel[q]);
        }
    }
    free(s); free(w); free(cand);
    return bad;
}

static void test_percentiles_exact(void) {
    const double pct[] = {99, 99.9, 99.95, 99.99, 99.995, 99.999, 100, 0, 50, 1, 99.5, 12.345};
    const int nq = sizeof pct / sizeof pct[0];
    const size_t sizes[] = {1, 2, 3, 5, 16, 17, 33, 100, 1000, 4097, 100003};
    int bad = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *v = malloc(n * sizeof *v);
        for (int kind = 0; kind < 6; kind++) {
            for (size_t i = 0; i < n; i++) {
                switch (kind) {
                case 0: v[i] = nrand(); break;                                   /* gaussian */
                case 1: v[i] = nrand() / (float)(urand() + 1e-3); break;          /* heavy tail, outliers */
                case 2: v[i] = (float)((int)(urand() * 5) - 2); break;            /* many ties, zeros */
                case 3: v[i] = 0.25f; break;                                      /* all equal */
                case 4: v[i] = (float)i; break;                                   /* sorted */
                case 5: v[i] = urand() < 0.9 ? 0.0f : (float)exp(urand() * 40 - 20); break; /* zeros + huge range */
                }
            }
            char what[32];
            snprintf(what, sizeof what, "kind %d", kind);
            bad += check_against_sort(v, n, pct, nq, what);
        }
        free(v);
    }
    T_CHECK(bad == 0, "%d percentiles differ from the sort-based reference", bad);
}

static void test_ema(void) {
    float e = obs_ema(0, 1, 1);
    T_CHECK(e == 1.0f, "first value is taken as is: %g", e);
    e = obs_ema(e, 2, 0);
    T_NEAR(e, 1.01, 1e-7, "1 + 0.01 * (2 - 1)");
    e = obs_ema(e, 3, 0);
    T_NEAR(e, 1.0299, 1e-6, "1.01 + 0.01 * (3 - 1.01)");
    /* through a tensor: per-sample p100 = per-sample absmax; running max and EMA of it */
    obs_tensor t;
    const double pct[] = {100, 50};
    obs_tensor_init(&t, "t", 0, pct, 2);
    float s1[3] = {-4, 1, 2}, s2[3] = {0.5f, -1, 2}, s3[3] = {3, 3, -8};
    T_CHECK(obs_tensor_observe(&t, s1, 1, 3, 3) == 0, "%s", mq_errmsg());
    T_CHECK(obs_tensor_observe(&t, s2, 1, 3, 3) == 0, "%s", mq_errmsg());
    T_CHECK(obs_tensor_observe(&t, s3, 3, 1, 1) == 0, "%s", mq_errmsg());
    float want = 4;
    want = want + 0.01f * (2 - want);
    want = want + 0.01f * (8 - want);
    T_NEAR(t.pema[0], want, 1e-6, "EMA of per-sample absmax 4, 2, 8");
    T_CHECK(t.pmax[0] == 8 && t.absmax == 8, "running max %g absmax %g", t.pmax[0], t.absmax);
    T_CHECK(t.plast[1] == 3 && t.pmax[1] == 3, "medians 2, 1, 3: last %g max %g", t.plast[1], t.pmax[1]);
    T_CHECK(t.nsamples == 3 && t.numel == 9, "counts %lld %lld", (long long)t.nsamples, (long long)t.numel);
    obs_tensor_free(&t);
}

static void test_tensor_strided_groups(void) {
    enum { R = 37, C = 24, LD = 30, H = 4 };
    float x[R * LD];
    for (int i = 0; i < R * LD; i++) x[i] = nrand() * (1 + (i % LD) / 6);
    for (int r = 0; r < R; r++) for (int c = C; c < LD; c++) x[r * LD + c] = 1e6f;  /* padding: never seen */
    x[5 * LD + 7] = -40;
    const double pct[] = {99, 100};
    obs_tensor t, u;
    obs_tensor_init(&t, "cols", 0, pct, 2);
    obs_tensor_set_groups(&t, H, C / H, 1, "head");
    obs_tensor_init(&u, "rows", 0, pct, 2);
    obs_tensor_set_groups(&u, 5, 8, 0, "head");   /* 37 rows in groups of 8: the last has 5 */
    T_CHECK(obs_tensor_observe(&t, x, R, C, LD) == 0, "%s", mq_errmsg());
    T_CHECK(obs_tensor_observe(&u, x, R, C, LD) == 0, "%s", mq_errmsg());
    float colmax[H] = {0}, rowmax[5] = {0}, amax = 0;
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float a = fabsf(x[r * LD + c]);
            amax = fmaxf(amax, a);
            colmax[c / (C / H)] = fmaxf(colmax[c / (C / H)], a);
            rowmax[r / 8] = fmaxf(rowmax[r / 8], a);
        }
    T_CHECK(t.absmax == 40 && amax == 40, "absmax %g", t.absmax);
    for (int h = 0; h < H; h++) T_CHECK(t.gabsmax[h] == colmax[h], "head %d: %g vs %g", h, t.gabsmax[h], colmax[h]);
    for (int g = 0; g < 5; g++) T_CHECK(u.gabsmax[g] == rowmax[g], "row group %d: %g vs %g", g, u.gabsmax[g], rowmax[g]);
    int64_t sum = 0;
    for (int b = 0; b < OBS_HIST_BINS; b++) sum += t.hist[b];
    T_CHECK(sum == R * C && t.numel == R * C, "histogram counts sum to %lld, want %d", (long long)sum, R * C);
    x[3 * LD + 2] = NAN;
    T_CHECK(obs_tensor_observe(&t, x, R, C, LD) == -1, "NaN must be refused");
    T_CHECK(strstr(mq_errmsg(), "cols: non-finite") && strstr(mq_errmsg(), "row 3, column 2"), "message: %s", mq_errmsg());
    T_CHECK(t.nsamples == 1 && t.numel == R * C, "a refused sample accumulates nothing");
    obs_tensor_free(&t);
    obs_tensor_free(&u);
}

/* ---- obs_set driven by hand ---- */

static mq_config cfg_m1(void) {
    mq_config c = {0};
    c.arch = MQ_MAMBA1; c.d_model = 8; c.n_layer = 2; c.d_inner = 16; c.d_state = 4; c.dt_rank = 2; c.d_conv = 4;
    c.vocab_size = 32;
    return c;
}
static mq_config cfg_m2(void) {
    mq_config c = {0};
    c.arch = MQ_MAMBA2; c.d_model = 8; c.n_layer = 2; c.d_inner = 16; c.d_state = 4; c.d_conv = 4; c.vocab_size = 32;
    c.n_heads = 4; c.head_dim = 4; c.n_groups = 2; c.chunk_size = 8;
    return c;
}

typedef struct { mq_act_role role; int rows, cols; } act;
static float *fill(int n, float scale) {
    float *x = malloc(n * sizeof *x);
    for (int i = 0; i < n; i++) x[i] = nrand() * scale;
    return x;
}
static int scale2(void *ctx, int layer, mq_act_role role, float *x, int rows, int cols, int ld) {
    (*(int *)ctx)++;
    for (int r = 0; r < rows; r++) for (int c = 0; c < cols; c++) x[r * ld + c] *= 2;
    return 0;
}

static void test_set_mamba1(void) {
    mq_config c = cfg_m1();
    obs_set *s = obs_set_new(&c, obs_default_pct, obs_default_npct);
    const char *ops[] = {"in_proj:input", "in_proj:output", "x_proj:input", "x_proj:output", "dt_proj:input",
                         "dt_proj:output", "ssm_state_act:input", "had:input", "out_proj:input"};
    T_CHECK(obs_count(s) == 2 * 9 + 1, "%d observers", obs_count(s));
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 9; i++) {
            char name[128];
            snprintf(name, sizeof name, "backbone.layers.%d.mixer.%s", l, ops[i]);
            T_CHECK(obs_find(s, name) != NULL, "missing %s", name);
        }
    T_CHECK(obs_find(s, "lm_head:input") != NULL, "missing lm_head:input");
    int calls = 0;
    obs_set_transform(s, MQ_ACT_OUT_PROJ_IN, scale2, &calls, "x2");
    T_CHECK(!strcmp(obs_transform_name(s, MQ_ACT_OUT_PROJ_IN), "x2") && !strcmp(obs_transform_name(s, MQ_ACT_Z), "identity"), "names");
    mq_hooks h = obs_set_hooks(s);
    enum { T = 20 };
    act acts[] = {{MQ_ACT_IN_PROJ_IN, T, 8}, {MQ_ACT_CONV_IN, T, 16}, {MQ_ACT_Z, T, 16}, {MQ_ACT_SSM_X, T, 16},
                  {MQ_ACT_X_PROJ_OUT, T, 10}, {MQ_ACT_DT, T, 16}, {MQ_ACT_B, T, 4}, {MQ_ACT_C, T, 4},
                  {MQ_ACT_SSM_OUT, T, 16}, {MQ_ACT_OUT_PROJ_IN, T, 16}, {MQ_ACT_SSM_STATE, 16, 4}};
    float conv_abs = 0, z_abs = 0, dtlow_abs = 0, y_abs = 0;
    float gathered[2 * T * 16];
    for (int sample = 0; sample < 2; sample++) {
        obs_begin_sample(s);
        for (int l = 0; l < 2; l++)
            for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
                float *x = fill(acts[a].rows * acts[a].cols, 1 + (float)a);
                float copy[T * 16];
                memcpy(copy, x, acts[a].rows * acts[a].cols * sizeof *x);
                for (int i = 0; l == 1 && sample == 1 && i < acts[a].rows * acts[a].cols; i++) {
                    float v = fabsf(x[i]);
                    if (acts[a].role == MQ_ACT_CONV_IN) { conv_abs = fmaxf(conv_abs, v); gathered[i] = v; }
                    if (acts[a].role == MQ_ACT_Z) { z_abs = fmaxf(z_abs, v); gathered[T * 16 + i] = v; }
                    if (acts[a].role == MQ_ACT_X_PROJ_OUT && i % 10 < 2) dtlow_abs = fmaxf(dtlow_abs, v);
                    if (acts[a].role == MQ_ACT_OUT_PROJ_IN) y_abs = fmaxf(y_abs, v);
                }
                ssm_hook_f32(&h, l, acts[a].role, x, acts[a].rows, acts[a].cols, acts[a].cols);
                T_CHECK(!memcmp(copy, x, acts[a].rows * acts[a].cols * sizeof *x), "observing must not change the activation");
                free(x);
            }
        float *hid = fill(T * 8, 3);
        ssm_hook_f32(&h, 2, MQ_ACT_LM_HEAD_IN, hid, T, 8, 8);
        free(hid);
        T_CHECK(obs_end_sample(s) == 0, "%s", mq_errmsg());
    }
    T_CHECK(calls == 4, "transform called once per layer and sample: %d", calls);
    obs_tensor *o = obs_find(s, "backbone.layers.1.mixer.in_proj:output");
    /* in_proj:output gathers conv_in and z of a sample: its last per-sample p100 is their max */
    T_CHECK(o && o->plast[6] == fmaxf(conv_abs, z_abs), "composite absmax %g vs %g", o ? o->plast[6] : -1, fmaxf(conv_abs, z_abs));
    float ref[OBS_MAX_Q];
    qsort(gathered, 2 * T * 16, sizeof *gathered, cmpf);
    for (int q = 0; q < obs_default_npct; q++) ref[q] = obs_quantile_sorted(gathered, 2 * T * 16, obs_default_pct[q]);
    T_CHECK(o && !memcmp(ref, o->plast, obs_default_npct * sizeof *ref), "composite percentiles over both halves");
    o = obs_find(s, "backbone.layers.1.mixer.dt_proj:input");
    T_CHECK(o && o->plast[6] == dtlow_abs, "dt_proj:input = first dt_rank columns of x_proj out: %g vs %g", o ? o->plast[6] : -1, dtlow_abs);
    o = obs_find(s, "backbone.layers.1.mixer.out_proj:input");
    T_CHECK(o && o->plast[6] == 2 * y_abs, "out_proj:input observed after the transform: %g vs %g", o ? o->plast[6] : -1, 2 * y_abs);
    T_CHECK(o && o->nsamples == 2, "samples %lld", o ? (long long)o->nsamples : -1);
    /* a sample where a role never arrives, and one with a wrong shape */
    obs_begin_sample(s);
    T_CHECK(obs_end_sample(s) == -1 && strstr(mq_errmsg(), "never produced") && strstr(mq_errmsg(), "in_proj:input"),
            "missing activations: %s", mq_errmsg());
    obs_set_free(s);
    s = obs_set_new(&c, obs_default_pct, obs_default_npct);
    h = obs_set_hooks(s);
    obs_begin_sample(s);
    float *x = fill(T * 12, 1);
    ssm_hook_f32(&h, 0, MQ_ACT_SSM_X, x, T, 12, 12);
    free(x);
    T_CHECK(obs_end_sample(s) == -1 && strstr(mq_errmsg(), "x_proj:input") && strstr(mq_errmsg(), "expected T x 16, found 20 x 12"),
            "shape error: %s", mq_errmsg());
    obs_set_free(s);
    double badq[] = {99, 101};
    T_CHECK(obs_set_new(&c, badq, 2) == NULL && strstr(mq_errmsg(), "101"), "bad percentile: %s", mq_errmsg());
}

static void test_set_mamba2(void) {
    mq_config c = cfg_m2();
    obs_set *s = obs_set_new(&c, obs_default_pct, obs_default_npct);
    const char *ops[] = {"in_proj:input", "in_proj:output", "z_act:input", "x_conv_in:input", "B_conv_in:input",
                         "C_conv_in:input", "dt_act:input", "x_conv_out:input", "B_conv_out:input",
                         "C_conv_out:input", "ssm_state_act:input", "had:input", "out_proj:input"};
    T_CHECK(obs_count(s) == 2 * 13 + 1, "%d observers", obs_count(s));
    for (int i = 0; i < 13; i++) {
        char name[128];
        snprintf(name, sizeof name, "backbone.layers.1.mixer.%s", ops[i]);
        T_CHECK(obs_find(s, name) != NULL, "missing %s", name);
    }
    mq_hooks h = obs_set_hooks(s);
    enum { T = 9 };
    int conv_dim = 16 + 2 * 2 * 4;
    act acts[] = {{MQ_ACT_IN_PROJ_IN, T, 8}, {MQ_ACT_Z, T, 16}, {MQ_ACT_CONV_IN, T, conv_dim}, {MQ_ACT_DT, T, 4},
                  {MQ_ACT_SSM_X, T, 16}, {MQ_ACT_B, T, 8}, {MQ_ACT_C, T, 8}, {MQ_ACT_SSM_STATE, 16, 4},
                  {MQ_ACT_SSM_OUT, T, 16}, {MQ_ACT_OUT_PROJ_IN, T, 16}};
    float Bconv_in[2] = {0}, heads[4] = {0}, state_heads[4] = {0}, Bgroups[2] = {0};
    obs_begin_sample(s);
    for (int l = 0; l < 2; l++)
        for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
            int rows = acts[a].rows, cols = acts[a].cols;
            float *x = fill(rows * cols, 1);
            for (int i = 0; l == 0 && i < rows * cols; i++) {
                int col = i % cols, row = i / cols;
                float v = fabsf(x[i]);
                if (acts[a].role == MQ_ACT_CONV_IN && col >= 16 && col < 24) Bconv_in[0] = fmaxf(Bconv_in[0], v);
                if (acts[a].role == MQ_ACT_CONV_IN && col >= 24) Bconv_in[1] = fmaxf(Bconv_in[1], v);
                if (acts[a].role == MQ_ACT_SSM_X) heads[col / 4] = fmaxf(heads[col / 4], v);
                if (acts[a].role == MQ_ACT_B) Bgroups[col / 4] = fmaxf(Bgroups[col / 4], v);
                if (acts[a].role == MQ_ACT_SSM_STATE) state_heads[row / 4] = fmaxf(state_heads[row / 4], v);
            }
            ssm_hook_f32(&h, l, acts[a].role, x, rows, cols, cols);
            free(x);
        }
    float *hid = fill(T * 8, 1);
    ssm_hook_f32(&h, -1, MQ_ACT_LM_HEAD_IN, hid, T, 8, 8);
    free(hid);
    T_CHECK(obs_end_sample(s) == 0, "%s", mq_errmsg());
    obs_tensor *o = obs_find(s, "backbone.layers.0.mixer.B_conv_in:input");
    T_CHECK(o && o->absmax == Bconv_in[0], "B_conv_in slice %g vs %g", o ? o->absmax : -1, Bconv_in[0]);
    o = obs_find(s, "backbone.layers.0.mixer.C_conv_in:input");
    T_CHECK(o && o->absmax == Bconv_in[1], "C_conv_in slice %g vs %g", o ? o->absmax : -1, Bconv_in[1]);
    o = obs_find(s, "backbone.layers.0.mixer.x_conv_out:input");
    T_CHECK(o && o->ngroup == 4 && !strcmp(o->gkind, "head"), "x per head");
    for (int i = 0; o && i < 4; i++) T_CHECK(o->gabsmax[i] == heads[i], "head %d %g vs %g", i, o->gabsmax[i], heads[i]);
    o = obs_find(s, "backbone.layers.0.mixer.B_conv_out:input");
    for (int i = 0; o && i < 2; i++) T_CHECK(o->gabsmax[i] == Bgroups[i], "B group %d %g vs %g", i, o->gabsmax[i], Bgroups[i]);
    o = obs_find(s, "backbone.layers.0.mixer.ssm_state_act:input");
    for (int i = 0; o && i < 4; i++) T_CHECK(o->gabsmax[i] == state_heads[i], "state head %d", i);
    o = obs_find(s, "backbone.layers.0.mixer.in_proj:output");
    T_CHECK(o && o->numel == T * (16 + conv_dim + 4), "in_proj:output gathers z, xBC, dt: %lld", o ? (long long)o->numel : -1);
    obs_set_free(s);
}

/* How long one sample of a 512 x 768 activation takes (printed, not asserted). */
static void test_speed(void) {
    enum { R = 512, C = 768 };
    float *x = fill(R * C, 1);
    for (int i = 0; i < R * C; i += 997) x[i] *= 30;
    obs_tensor t;
    obs_tensor_init(&t, "speed", 0, obs_default_pct, obs_default_npct);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 20; i++) obs_tensor_observe(&t, x, R, C, C);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double ms = ((b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) * 1e-6) / 20;
    printf("    observe 512 x 768: %.2f ms (%.2f ns/value)\n", ms, ms * 1e6 / (R * C));
    obs_tensor_free(&t);
    free(x);
}

int main(void) {
    T_RUN(test_hist_bins);
    T_RUN(test_quantile_interpolation);
    T_RUN(test_percentiles_exact);
    T_RUN(test_ema);
    T_RUN(test_tensor_strided_groups);
    T_RUN(test_set_mamba1);
    T_RUN(test_set_mamba2);
    T_RUN(test_speed);
    return t_summary();
}
