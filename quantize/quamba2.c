/* The pieces of the quamba2 recipe (see q.h and docs/recipe.md, "Quamba2"): the 1-D clusterings
 * (Ward, k-means) behind the sort-and-cluster ssm_x scales, those scales for one layer, and int4
 * GPTQ on a Hessian of the layer's calibration inputs. */
#include <stdlib.h>
#include <string.h>
#include "core/err.h"
#include "quantize/q.h"

void q_hessians_free(q_hessians *h) {
    for (int l = 0; h->in_proj && l < h->n_layer; l++) free(h->in_proj[l]);
    for (int l = 0; h->out_proj && l < h->n_layer; l++) free(h->out_proj[l]);
    free(h->in_proj);
    free(h->out_proj);
    free(h->lm_head);
    memset(h, 0, sizeof *h);
}

/* ---- 1-D clustering ---- */

static const float *g_sort_v;
static int by_value(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float x = g_sort_v[i], y = g_sort_v[j];
    return x < y ? -1 : x > y ? 1 : i - j;
}

/* order[n]: the indices of v sorted ascending, ties by index (qsort is not stable; the index is) */
static void sort_order(const float *v, int n, int *order) {
    for (int i = 0; i < n; i++) order[i] = i;
    g_sort_v = v;
    qsort(order, (size_t)n, sizeof *order, by_value);
}

void q_cluster_ward(const float *v, int n, int k, int *group) {
    if (k > n) k = n;
    int *order = mq_malloc((size_t)n * sizeof *order), *start = mq_malloc((size_t)n * sizeof *start);
    int *count = mq_malloc((size_t)n * sizeof *count);
    double *sum = mq_malloc((size_t)n * sizeof *sum);
    sort_order(v, n, order);
    int m = n;   /* clusters, in sorted order: start (in order[]), count, sum */
    for (int i = 0; i < n; i++) start[i] = i, count[i] = 1, sum[i] = v[order[i]];
    while (m > k) {
        int best = 0;
        double bcost = -1;
        for (int i = 0; i + 1 < m; i++) {
            double ma = sum[i] / count[i], mb = sum[i + 1] / count[i + 1];
            double cost = (double)count[i] * count[i + 1] / (count[i] + count[i + 1]) * (ma - mb) * (ma - mb);
            if (bcost < 0 || cost < bcost) bcost = cost, best = i;
        }
        count[best] += count[best + 1];
        sum[best] += sum[best + 1];
        memmove(start + best + 1, start + best + 2, (size_t)(m - best - 2) * sizeof *start);
        memmove(count + best + 1, count + best + 2, (size_t)(m - best - 2) * sizeof *count);
        memmove(sum + best + 1, sum + best + 2, (size_t)(m - best - 2) * sizeof *sum);
        m--;
    }
    for (int c = 0; c < m; c++)
        for (int i = start[c]; i < start[c] + count[c]; i++) group[order[i]] = c;
    free(order);
    free(start);
    free(count);
    free(sum);
}

int q_cluster_kmeans(const float *v, int n, int k, int *group) {
    if (k > n) k = n;
    int *order = mq_malloc((size_t)n * sizeof *order);
    sort_order(v, n, order);
    double cen[64], acc[64];
    int cnt[64], map[64];
    if (k > 64) k = 64;
    for (int j = 0; j < k; j++) cen[j] = v[order[(int)((j + 0.5) * n / k)]];
    for (int i = 0; i < n; i++) group[i] = -1;
    for (int it = 0; it < 100; it++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            int b = 0;
            for (int j = 1; j < k; j++)
                if (fabs(v[i] - cen[j]) < fabs(v[i] - cen[b])) b = j;
            changed |= group[i] != b;
            group[i] = b;
        }
        if (!changed) break;
        for (int j = 0; j < k; j++) acc[j] = 0, cnt[j] = 0;
        for (int i = 0; i < n; i++) acc[group[i]] += v[i], cnt[group[i]]++;
        for (int j = 0; j < k; j++)
            if (cnt[j]) cen[j] = acc[j] / cnt[j];
    }
    /* renumber by ascending centre, dropping empty groups */
    for (int j = 0; j < k; j++) cnt[j] = 0;
    for (int i = 0; i < n; i++) cnt[group[i]]++;
    int used = 0;
    for (int r = 0; r < k; r++) {
        int b = -1;
        for (int j = 0; j < k; j++)
            if (cnt[j] > 0 && (b < 0 || cen[j] < cen[b])) b = j;
        if (b < 0) break;
        map[b] = used++;
        cnt[b] = -1;
    }
    for (int i = 0; i < n; i++) group[i] = map[group[i]];
    free(order);
    return used;
}

/* ---- the clustered ssm_x scales ---- */

void q_x_cluster(const mq_config *c, const float *amax, float *scale, int8_t *index) {
    const int m2 = c->arch == MQ_MAMBA2, G = m2 ? c->n_groups : 1, P = m2 ? c->head_dim : 1;
    const int hpg = (m2 ? c->n_heads : c->d_inner) / G;   /* heads per SSD group (M1: channels) */
    float *hv = mq_malloc((size_t)hpg * sizeof *hv), *dv = mq_malloc((size_t)(m2 ? P : hpg) * sizeof *dv);
    int *hg = mq_malloc((size_t)hpg * sizeof *hg), *dg = mq_malloc((size_t)(m2 ? P : hpg) * sizeof *dg);
    int *members = mq_malloc((size_t)hpg * sizeof *members);
    for (int g = 0; g < G; g++) {
        float *sc = scale + (size_t)g * Q_XCL, gmax = 0;
        for (int s = 0; s < Q_XCL; s++) sc[s] = 0;
        for (int j = 0; j < hpg; j++) {
            const float *a = amax + (size_t)(g * hpg + j) * P;
            hv[j] = 0;
            for (int p = 0; p < P; p++) hv[j] = fmaxf(hv[j], a[p]);
            gmax = fmaxf(gmax, hv[j]);
        }
        q_cluster_ward(hv, hpg, Q_XHG, hg);
        for (int h = 0; h < Q_XHG; h++) {
            int nm = 0;
            for (int j = 0; j < hpg; j++)
                if (hg[j] == h) members[nm++] = j;
            if (!nm) continue;
            /* the dimensions of this head group: Mamba2 the P head dimensions (max over its heads),
             * Mamba1 its channels themselves */
            int nd = m2 ? P : nm;
            for (int d = 0; d < nd; d++) {
                dv[d] = 0;
                if (m2)
                    for (int i = 0; i < nm; i++) dv[d] = fmaxf(dv[d], amax[(size_t)(g * hpg + members[i]) * P + d]);
                else
                    dv[d] = hv[members[d]];
            }
            q_cluster_kmeans(dv, nd, Q_XDG, dg);
            for (int i = 0; i < nm; i++)
                for (int p = 0; p < P; p++) {
                    int d = m2 ? p : i, slot = h * Q_XDG + dg[d];
                    size_t ch = (size_t)(g * hpg + members[i]) * P + p;
                    index[ch] = (int8_t)slot;
                    sc[slot] = fmaxf(sc[slot], amax[ch]);
                }
        }
        /* scales from the clips; unused slots take their head group's largest (or the group's) */
        for (int h = 0; h < Q_XHG; h++) {
            float hmax = 0;
            for (int d = 0; d < Q_XDG; d++) hmax = fmaxf(hmax, sc[h * Q_XDG + d]);
            for (int d = 0; d < Q_XDG; d++) {
                float *s = &sc[h * Q_XDG + d];
                *s = qr_scale(*s > 0 ? *s : hmax > 0 ? hmax : gmax);
            }
        }
    }
    free(hv);
    free(dv);
    free(hg);
    free(dg);
    free(members);
}

/* ---- GPTQ ---- */

/* In place lower Cholesky factor of A [n x n] (A = L L^T; the upper triangle is zeroed). */
static int cholesky(double *A, int n) {
    for (int j = 0; j < n; j++) {
        double d = A[(size_t)j * n + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * n + k] * A[(size_t)j * n + k];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        A[(size_t)j * n + j] = d;
        #pragma omp parallel for schedule(static) if (n >= 256)
        for (int i = j + 1; i < n; i++) {
            double s = A[(size_t)i * n + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * n + k] * A[(size_t)j * n + k];
            A[(size_t)i * n + j] = s / d;
        }
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) A[(size_t)i * n + j] = 0;
    return 0;
}

/* U [n x n], upper, with H^-1 = U^T U: L = chol(H); H^-1 = L^-T L^-1; U = chol(H^-1)^T. */
static int hinv_upper(double *H, int n, double *U) {
    if (cholesky(H, n)) return -1;
    /* Linv = L^-1 (lower), by forward substitution, into U */
    memset(U, 0, (size_t)n * n * sizeof *U);
    for (int j = 0; j < n; j++) {
        U[(size_t)j * n + j] = 1 / H[(size_t)j * n + j];
        for (int i = j + 1; i < n; i++) {
            double s = 0;
            for (int k = j; k < i; k++) s += H[(size_t)i * n + k] * U[(size_t)k * n + j];
            U[(size_t)i * n + j] = -s / H[(size_t)i * n + i];
        }
    }
    /* H^-1 = Linv^T Linv, into H */
    #pragma omp parallel for schedule(static) if (n >= 256)
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = i > j ? i : j; k < n; k++) s += U[(size_t)k * n + i] * U[(size_t)k * n + j];
            H[(size_t)i * n + j] = s;
        }
    if (cholesky(H, n)) return -1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) U[(size_t)i * n + j] = H[(size_t)j * n + i];
    return 0;
}

int q_gptq_i4(const float *W, int rows, int cols, int group, const double *Hin, q_weight *w) {
    const int n = cols, B = 128;
    double *H = mq_malloc((size_t)n * n * sizeof *H), *U = mq_malloc((size_t)n * n * sizeof *U);
    memcpy(H, Hin, (size_t)n * n * sizeof *H);
    char *dead = mq_calloc((size_t)n, 1);
    double mean = 0;
    for (int i = 0; i < n; i++) {
        if (H[(size_t)i * n + i] == 0) dead[i] = 1, H[(size_t)i * n + i] = 1;
        mean += H[(size_t)i * n + i];
    }
    double damp = 0.01 * mean / n;
    for (int i = 0; i < n; i++) H[(size_t)i * n + i] += damp;
    int rc = hinv_upper(H, n, U);
    free(H);
    if (rc) {
        free(U);
        free(dead);
        return mq_fail("GPTQ: the Hessian [%d x %d] is not positive definite after dampening", n, n);
    }
    q_weight_alloc_i4(w, rows, cols, group);
    #pragma omp parallel for schedule(dynamic, 8)
    for (int r = 0; r < rows; r++) {
        double *x = mq_malloc((size_t)n * sizeof *x), err[128];
        for (int i = 0; i < n; i++) x[i] = dead[i] ? 0 : W[(size_t)r * cols + i];
        float s = 1;
        for (int i1 = 0; i1 < n; i1 += B) {
            int i2 = i1 + B < n ? i1 + B : n;
            for (int i = i1; i < i2; i++) {
                if (i % group == 0) {
                    double m = 0;
                    for (int c = i; c < i + group; c++) m = fmax(m, fabs(x[c]));
                    s = q_i4_scale((float)m);
                    w->scale[(size_t)r * (cols / group) + i / group] = s;
                }
                int8_t q = q_i4_quant((float)x[i], s);
                w->q[(size_t)r * cols + i] = q;
                double e = (x[i] - (double)q * s) / U[(size_t)i * n + i];
                err[i - i1] = e;
                for (int j = i + 1; j < i2; j++) x[j] -= e * U[(size_t)i * n + j];
            }
            for (int j = i2; j < n; j++) {
                double d = 0;
                for (int k = i1; k < i2; k++) d += err[k - i1] * U[(size_t)k * n + j];
                x[j] -= d;
            }
        }
        free(x);
    }
    free(U);
    free(dead);
    return 0;
}
