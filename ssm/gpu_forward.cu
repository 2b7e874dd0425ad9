/* The FP16 forward pass on the GPU, read top to bottom: embedding, then per layer RMSNorm (fused with
 * the residual add) -> in_proj -> conv1d+SiLU -> (Mamba1: x_proj, dt_proj, selective scan gated by
 * SiLU(z); Mamba2: SSD scan, gated RMSNorm) -> out_proj, then norm_f; lm_head and NLL on top.
 * Prefill and decode share this one path (decode = T of 1 continuing a carried state), so prefill
 * == decode holds by construction up to the scan's chunking. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
extern "C" { /* core/err.h is a C header without its own guard */
#include "core/err.h"
}
#include "ssm/gpu_kern.h"

/* ---- profiling (ssmg_profile): an event after each op, attributed to the op that just ended ---- */
enum { P_START, P_EMBED, P_NORM, P_IN_PROJ, P_CONV, P_X_PROJ, P_DT, P_SCAN, P_GNORM, P_OUT_PROJ, P_LM_HEAD, P_NLL,
       P_NCAT };
static const char *prof_names[P_NCAT] = {"", "embed", "rmsnorm", "in_proj", "conv", "x_proj", "dt_proj",
                                         "scan", "gated_norm", "out_proj", "lm_head", "nll"};

static void mark(ssmg_ws *w, int cat) {
    if (!w->prof_on || w->prof_n >= PROF_MAX) return;
    cudaStreamCaptureStatus cs;
    CUDA_CHECK(cudaStreamIsCapturing(w->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) return;
    CUDA_CHECK(cudaEventRecord(w->prof_ev[w->prof_n], w->stream));
    w->prof_cat[w->prof_n++] = (unsigned char)cat;
}
/* after a sync of w->stream */
static void prof_collect(ssmg_ws *w) {
    for (int i = 1; i < w->prof_n; i++) {
        if (w->prof_cat[i] == P_START) continue;
        float ms;
        CUDA_CHECK(cudaEventElapsedTime(&ms, w->prof_ev[i - 1], w->prof_ev[i]));
        w->prof_ms[w->prof_cat[i]] += ms;
    }
    w->prof_n = 0;
}

void ssmg_profile(ssmg_ws *w, int on) {
    if (on && !w->prof_ev) {
        w->prof_ev = (cudaEvent_t *)mq_malloc(sizeof(cudaEvent_t) * PROF_MAX);
        w->prof_cat = (unsigned char *)mq_malloc(PROF_MAX);
        for (int i = 0; i < PROF_MAX; i++) CUDA_CHECK(cudaEventCreate(&w->prof_ev[i]));
    }
    w->prof_on = on;
    w->prof_n = 0;
}

int ssmg_profile_report(ssmg_ws *w, char *buf, size_t n) {
    int k = 0;
    buf[0] = 0;
    for (int c = 1; c < P_NCAT; c++)
        if (w->prof_ms[c] > 0 && (size_t)k < n)
            k += snprintf(buf + k, n - k, "%s%s %.2f", k ? ", " : "", prof_names[c], w->prof_ms[c]);
    memset(w->prof_ms, 0, sizeof w->prof_ms);
    return k;
}

static void hook(const ssmg_hooks *hk, ssmg_ws *w, int layer, mq_act_role role, void *x, ssmg_dtype dt,
                 int rows, int cols, int ld) {
    if (hk && hk->fn) hk->fn(hk->ctx, layer, role, x, dt, rows, cols, ld, (void *)w->stream);
}
#define HOOK16(role, x, rows, cols, ld) hook(hk, w, l, role, (void *)(x), SSMG_F16, rows, cols, ld)

/* Runs the model over B sequences of T tokens already in w->d_tokens. s: state to continue from and
 * update, or NULL (zeros; the final SSM state goes to the workspace scratch). No host sync. */
static void forward(const ssmg_model *g, ssmg_ws *w, int B, int T, ssmg_state *s, const ssmg_hooks *hk) {
    const mq_config *c = &g->cfg;
    const cudaStream_t st = w->stream;
    const int R = B * T, D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv;
    const int in = ssmg_in_dim(c), cd = ssmg_conv_dim(c);
    int nc = ssmg_scan_chunks(c, B, T, g->sm_count);
    if (nc * B > w->chunk_cap) nc = w->chunk_cap / B > 0 ? w->chunk_cap / B : 1;

    mark(w, P_START);
    k_embed(w->resid, g->embed, w->d_tokens, R, D, st);
    mark(w, P_EMBED);
    for (int l = 0; l < c->n_layer; l++) {
        const ssmg_layer *L = &g->layers[l];
        float *conv_state = s ? s->conv + l * s->conv_per_layer : NULL;
        float *ssm_state = s ? s->ssm + l * s->ssm_per_layer : w->state_scratch;

        k_add_rmsnorm(w->resid, l ? w->delta16 : NULL, L->norm_w, w->h16, NULL, R, D, c->norm_eps, st);
        mark(w, P_NORM);
        HOOK16(MQ_ACT_IN_PROJ_IN, w->h16, R, D, D);
        gemm_f16(w->blas, w->h16, D, L->in_proj, w->xz16, 0, in, L->in_proj_b, R, in, D);
        mark(w, P_IN_PROJ);

        half *ssm_out;
        if (c->arch == MQ_MAMBA1) {
            /* in_proj output columns: x [0, E), z [E, 2E) */
            half *x_in = w->xz16, *z = w->xz16 + E;
            const int xw = c->dt_rank + 2 * N;
            HOOK16(MQ_ACT_CONV_IN, x_in, R, E, in);
            HOOK16(MQ_ACT_Z, z, R, E, in);
            k_conv1d_silu(w->xc16, E, x_in, in, conv_state, conv_state != NULL, L->conv_w, L->conv_b, B, T,
                          E, K, st);
            mark(w, P_CONV);
            HOOK16(MQ_ACT_SSM_X, w->xc16, R, E, E);
            gemm_f16(w->blas, w->xc16, E, L->x_proj, w->xdbl16, 0, xw, NULL, R, xw, E);
            mark(w, P_X_PROJ);
            HOOK16(MQ_ACT_X_PROJ_OUT, w->xdbl16, R, xw, xw);
            /* dt_proj with its bias, as the CPU reference (MQ_ACT_DT sees dt before softplus) */
            gemm_f16(w->blas, w->xdbl16, xw, L->dt_proj, w->dt16, 0, E, L->dt_proj_b, R, E, c->dt_rank);
            mark(w, P_DT);
            HOOK16(MQ_ACT_DT, w->dt16, R, E, E);
            HOOK16(MQ_ACT_B, w->xdbl16 + c->dt_rank, R, N, xw);
            HOOK16(MQ_ACT_C, w->xdbl16 + c->dt_rank + N, R, N, xw);
            scan1_args a = {w->xc16, E, w->dt16, E, NULL, L->A, L->D,
                            w->xdbl16 + c->dt_rank, w->xdbl16 + c->dt_rank + N, xw, z, in, w->y16, E,
                            ssm_state, s != NULL, w->chunk_state, w->chunk_dt, B, T, E, N, nc};
            k_scan1(&a, st);
            mark(w, P_SCAN);
            hook(hk, w, l, MQ_ACT_SSM_STATE, ssm_state, SSMG_F32, B * E, N, N);
            ssm_out = w->y16;
        } else {
            /* in_proj output columns: z [0, E), xBC [E, E + cd), dt [E + cd, E + cd + H) */
            const int G = c->n_groups, H = c->n_heads;
            half *z = w->xz16, *xbc = w->xz16 + E, *dt = w->xz16 + E + cd;
            HOOK16(MQ_ACT_CONV_IN, xbc, R, cd, in);
            HOOK16(MQ_ACT_Z, z, R, E, in);
            HOOK16(MQ_ACT_DT, dt, R, H, in);
            k_conv1d_silu(w->xc16, cd, xbc, in, conv_state, conv_state != NULL, L->conv_w, L->conv_b, B, T,
                          cd, K, st);
            mark(w, P_CONV);
            HOOK16(MQ_ACT_SSM_X, w->xc16, R, E, cd);
            HOOK16(MQ_ACT_B, w->xc16 + E, R, G * N, cd);
            HOOK16(MQ_ACT_C, w->xc16 + E + G * N, R, G * N, cd);
            scan2_args a = {w->xc16, cd, dt, in, L->dt_bias, L->A, L->D, c->dt_limit_min, c->dt_limit_max,
                            w->xc16 + E, w->xc16 + E + G * N, cd, w->y16, E, ssm_state, s != NULL,
                            w->chunk_state, w->chunk_dt, B, T, H, c->head_dim, N, G, nc};
            k_scan2(&a, st);
            mark(w, P_SCAN);
            hook(hk, w, l, MQ_ACT_SSM_STATE, ssm_state, SSMG_F32, B * E, N, N);
            /* one group over all of d_inner, as transformers' MambaRMSNormGated and the CPU
             * reference (mamba_ssm would use d_inner / n_groups; equal when n_groups == 1) */
            k_gated_rmsnorm(w->g16, E, w->y16, E, z, in, L->gnorm_w, R, E, E, c->norm_eps,
                            c->norm_before_gate, st);
            mark(w, P_GNORM);
            ssm_out = w->g16;
        }
        HOOK16(MQ_ACT_SSM_OUT, ssm_out, R, E, E);
        HOOK16(MQ_ACT_OUT_PROJ_IN, ssm_out, R, E, E);
        gemm_f16(w->blas, ssm_out, E, L->out_proj, w->delta16, 0, D, L->out_proj_b, R, D, E);
        mark(w, P_OUT_PROJ);
    }
    k_add_rmsnorm(w->resid, w->delta16, g->norm_f, w->hid16, w->hid32, R, D, c->norm_eps, st);
    mark(w, P_NORM);
    hook(hk, w, -1, MQ_ACT_LM_HEAD_IN, w->hid16, SSMG_F16, R, D, D);
    w->last_B = B;
    w->last_T = T;
}

/* Checks ids and enqueues their upload to w->d_tokens. */
static int upload_tokens(const ssmg_model *g, ssmg_ws *w, const int32_t *tokens, int n) {
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= g->cfg.vocab_size)
            return mq_fail("GPU forward: token %d at position %d is outside the vocabulary (%d)", tokens[i], i,
                           g->cfg.vocab_size);
    CUDA_CHECK(cudaMemcpyAsync(w->d_tokens, tokens, sizeof(int32_t) * n, cudaMemcpyHostToDevice, w->stream));
    return 0;
}

static int check_call(const ssmg_model *g, ssmg_ws *w, int B, int T, const ssmg_state *s) {
    if (w->g != g) return mq_fail("GPU forward: workspace belongs to another model");
    if (B < 1 || T < 1 || B > w->batch || T > w->seqlen)
        return mq_fail("GPU forward: batch %d x %d tokens does not fit the workspace (%d x %d)", B, T, w->batch,
                       w->seqlen);
    if (s && (s->g != g || s->batch != B))
        return mq_fail("GPU forward: state is for batch %d of %s model, call has batch %d", s->batch,
                       s->g == g ? "this" : "another", B);
    return 0;
}

int ssmg_prefill(const ssmg_model *g, ssmg_ws *w, const int32_t *tokens, int B, int T, ssmg_state *s,
                 const ssmg_hooks *hk, float *hidden) {
    if (check_call(g, w, B, T, s) || upload_tokens(g, w, tokens, B * T)) return -1;
    forward(g, w, B, T, s, hk);
    if (hidden)
        CUDA_CHECK(cudaMemcpyAsync(hidden, w->hid32, sizeof(float) * (size_t)B * T * g->cfg.d_model,
                                   cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    prof_collect(w);
    return 0;
}

/* logits of hidden rows [r0, r0+n) (n <= logit_rows) into w->logits, FP32 */
static void lm_head_rows(const ssmg_model *g, ssmg_ws *w, int r0, int n) {
    const int D = g->cfg.d_model, V = g->cfg.vocab_size;
    gemm_f16(w->blas, w->hid16 + (size_t)r0 * D, D, g->lm_head, w->logits, 1, V, NULL, n, V, D);
}

int ssmg_logits(const ssmg_model *g, ssmg_ws *w, int row0, int nrows, float *logits) {
    const int V = g->cfg.vocab_size;
    if (row0 < 0 || nrows < 0 || row0 + nrows > w->last_B * w->last_T)
        return mq_fail("GPU logits: rows %d..%d beyond the %d rows of the last forward", row0, row0 + nrows,
                       w->last_B * w->last_T);
    for (int r = 0; r < nrows; r += w->logit_rows) {
        int n = nrows - r < w->logit_rows ? nrows - r : w->logit_rows;
        lm_head_rows(g, w, row0 + r, n);
        CUDA_CHECK(cudaMemcpyAsync(logits + (size_t)r * V, w->logits, sizeof(float) * (size_t)n * V,
                                   cudaMemcpyDeviceToHost, w->stream));
        CUDA_CHECK(cudaStreamSynchronize(w->stream)); /* w->logits is reused by the next block */
    }
    return 0;
}

/* Decode graph: everything from the embedding to norm_f (and lm_head when asked) in one launch.
 * Tokens are uploaded before the launch into the fixed w->d_tokens the graph reads. */
static void capture_step(const ssmg_model *g, ssmg_ws *w, ssmg_state *s, int want_logits) {
    if (w->graph) CUDA_CHECK(cudaGraphExecDestroy(w->graph));
    cudaGraph_t graph;
    CUDA_CHECK(cudaStreamBeginCapture(w->stream, cudaStreamCaptureModeThreadLocal));
    forward(g, w, s->batch, 1, s, NULL);
    if (want_logits) lm_head_rows(g, w, 0, s->batch);
    CUDA_CHECK(cudaStreamEndCapture(w->stream, &graph));
    CUDA_CHECK(cudaGraphInstantiate(&w->graph, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    w->graph_state_id = s->id;
    w->graph_logits = want_logits;
}

int ssmg_step_async(const ssmg_model *g, ssmg_ws *w, ssmg_state *s, const int32_t *tokens, int with_logits) {
    if (!s) return mq_fail("GPU step: no state");
    if (check_call(g, w, s->batch, 1, s) || upload_tokens(g, w, tokens, s->batch)) return -1;
    with_logits = with_logits != 0;
    if (!w->graph || w->graph_state_id != s->id || w->graph_logits != with_logits) capture_step(g, w, s, with_logits);
    CUDA_CHECK(cudaGraphLaunch(w->graph, w->stream));
    w->last_B = s->batch;
    w->last_T = 1;
    return 0;
}

int ssmg_step(const ssmg_model *g, ssmg_ws *w, ssmg_state *s, const int32_t *tokens, const ssmg_hooks *hk,
              float *hidden, float *logits) {
    if (!s) return mq_fail("GPU step: no state");
    const int B = s->batch;
    if (hk && hk->fn) {
        if (check_call(g, w, B, 1, s) || upload_tokens(g, w, tokens, B)) return -1;
        forward(g, w, B, 1, s, hk);
        if (logits) lm_head_rows(g, w, 0, B);
        mark(w, P_LM_HEAD);
    } else if (ssmg_step_async(g, w, s, tokens, logits != NULL)) {
        return -1;
    }
    if (hidden)
        CUDA_CHECK(cudaMemcpyAsync(hidden, w->hid32, sizeof(float) * (size_t)B * g->cfg.d_model,
                                   cudaMemcpyDeviceToHost, w->stream));
    if (logits)
        CUDA_CHECK(cudaMemcpyAsync(logits, w->logits, sizeof(float) * (size_t)B * g->cfg.vocab_size,
                                   cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    prof_collect(w);
    return 0;
}

int ssmg_nll(const ssmg_model *g, ssmg_ws *w, const int32_t *tokens, int B, int T, const ssmg_hooks *hk,
             float *nll, double *sum) {
    if (T < 2) return mq_fail("GPU NLL: windows of %d tokens score nothing", T);
    if (ssmg_prefill(g, w, tokens, B, T, NULL, hk, NULL)) return -1;
    const int R = B * T, V = g->cfg.vocab_size;
    int32_t *tg = (int32_t *)mq_malloc(sizeof(int32_t) * R);
    float *h = (float *)mq_malloc(sizeof(float) * R);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) tg[b * T + t] = t < T - 1 ? tokens[b * T + t + 1] : -1;
    CUDA_CHECK(cudaMemcpyAsync(w->d_targets, tg, sizeof(int32_t) * R, cudaMemcpyHostToDevice, w->stream));
    mark(w, P_START);
    for (int r = 0; r < R; r += w->logit_rows) {
        int n = R - r < w->logit_rows ? R - r : w->logit_rows;
        lm_head_rows(g, w, r, n);
        mark(w, P_LM_HEAD);
        k_nll(w->nll + r, w->logits, w->d_targets + r, n, V, w->stream);
        mark(w, P_NLL);
    }
    CUDA_CHECK(cudaMemcpyAsync(h, w->nll, sizeof(float) * R, cudaMemcpyDeviceToHost, w->stream));
    CUDA_CHECK(cudaStreamSynchronize(w->stream));
    prof_collect(w);
    double s = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T - 1; t++) {
            s += h[b * T + t];
            if (nll) nll[b * (T - 1) + t] = h[b * T + t];
        }
    *sum = s;
    free(tg);
    free(h);
    return 0;
}

int ssmg_eval_windows(const ssmg_model *g, const int32_t *ids, size_t n, int window, int max_windows, int batch,
                      double *nll_sum, long *n_scored) {
    if (window < 2 || batch < 1) return mq_fail("GPU eval: window %d, batch %d", window, batch);
    long nw = (long)(n / (size_t)window);
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    if (nw < 1) return mq_fail("GPU eval: %zu tokens make no window of %d", n, window);
    if (batch > nw) batch = (int)nw;
    ssmg_ws *w = ssmg_ws_new(g, batch, window);
    if (!w) return -1;
    double total = 0;
    for (long w0 = 0; w0 < nw; w0 += batch) {
        int b = nw - w0 < batch ? (int)(nw - w0) : batch;
        double s;
        if (ssmg_nll(g, w, ids + (size_t)w0 * window, b, window, NULL, NULL, &s)) { ssmg_ws_free(w); return -1; }
        total += s;
    }
    ssmg_ws_free(w);
    *nll_sum = total;
    *n_scored = nw * (window - 1);
    return 0;
}
