/* GPU benchmark of the int8 pass (not a test): random int8 weights of the real Mamba shapes (Hadamard
 * on y as quamba, synthetic scales) beside the FP16 forward of random FP16 weights of the same shapes,
 * one protocol for both (ssm/backend.h: BE_CUDA_INT8 and BE_CUDA_F16; tests/bench_time.h), one process:
 *   prefill 1x1024 and 8x1024: embedding to norm_f (no lm_head), one synchronized call, median of 7;
 *   decode b = 1, 16, 64: ms per step (one token per sequence) through the CUDA graph with lm_head
 *     into the workspace and no host copy (be_step_async), median of 3 x 50 steps;
 *   (the same for quamba2 W4A16 beside FP16 and quamba2 W4A8 beside the int8 pass, in tables of their own)
 *   memory: device memory the weights, a workspace of 8 x 1024 and one of 64 x 1 and the decode state
 *     of batch 64 hold (the backends' byte counts);
 *   floor: bytes of weights one batch-1 decode step reads / the device-to-device copy rate measured
 *     in the same run (gpu_copy_tbps: read + write bytes per second).
 * Usage: build/bench/bench_int8 [FILTER] [--peers DIR] [--json FILE] prints markdown tables (int8 vs
 * FP16, a per-op breakdown of one int8 prefill); with --peers, the peers' results of the same run
 * (DIR/torch_peer.json, DIR/mssm_peer.json from ../shared/bench, see tools/bench.sh) in a table
 * beside ours; with --json, all of it as docs/bench.json (schema in docs/benchmarks.md).
 * build/bench/bench_int8 NAME --prefill: only the prefills of NAME, both passes, with the per-op times.
 * build/bench/bench_int8 [FILTER] --w4: the W4A16 / W4A8 GEMVs alone on the models' projection shapes.
 * build/bench/bench_int8 [FILTER] --w4a16: only the quamba2 W4A16 pass beside FP16 (the full run has it too).
 * build/bench/bench_int8 [FILTER] --q2: the quamba2 W8A8 and W4A8 passes beside the int8 pass.
 * build/bench/bench_int8 NAME --steps N [--batch B] [--q2]: only N plain decode steps of NAME (N <= 64)
 * for B sequences, int8 (--q2: quamba2 W8A8) then FP16, for a kernel profiler (ncu) to time every
 * kernel of a step.
 * build/bench/bench_int8 --artifact ART MODEL: the same prefill 1x1024 and batch-1 decode for an
 * artifact (mambaq quantize) beside the FP16 forward of its source checkpoint MODEL: the whole
 * artifact path at full size (tests/bench_random_model.c makes such checkpoints). */
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "core/err.h"
#include "core/gpu.h"
#include "export/art.h"
#include "ssm/backend.h"
#include "ssm/gpu_ops.h"

#include "tests/bench_shapes.h"
#include "tests/bench_time.h"

enum { NB = 3 };
static const int batches[NB] = {1, 16, 64};
static char prof[sizeof shapes / sizeof shapes[0]][512]; /* per-op breakdown of one int8 prefill */
static char dprof[sizeof shapes / sizeof shapes[0]][2][2][512]; /* decode breakdowns [shape][kind][b 16, 64] */
enum { PROF_STEPS = 10 };

/* one pass (int8 or FP16) of one shape: prefill ms [2], decode ms [NB], memory GB */
typedef struct { double pre[2], dec[NB], mem_gb, weights_gb, decode_gb; } pass_times;
static pass_times w4t[sizeof shapes / sizeof shapes[0]], f16t[sizeof shapes / sizeof shapes[0]]; /* W4A16, FP16 */
static pass_times w4a8t[sizeof shapes / sizeof shapes[0]], i8t[sizeof shapes / sizeof shapes[0]]; /* W4A8, int8 */

/* A random model of c's shapes (int8: the y rotation as quamba) */
static be *open_random(const mq_config *c, be_kind kind, int batch, int seqlen) {
    be *b = be_open_random(c, kind, 1, 1, batch, seqlen);
    if (!b) mq_die("%s: %s", c->source, mq_errmsg());
    return b;
}
/* The passes time_pass runs: int8, FP16, quamba2 W4A16 (groups of 128, y rotated) and quamba2 W8A8
 * (the int8 pass with scales per column) */
enum { P_INT8, P_F16, P_W4A16, P_Q2, P_W4A8 };
#define W4_GROUP 128
static be *open_pass(const mq_config *c, int pass, int batch, int seqlen) {
    if (pass == P_INT8 || pass == P_F16) return open_random(c, pass == P_INT8 ? BE_CUDA_INT8 : BE_CUDA_F16, batch, seqlen);
    be *b = pass == P_Q2      ? be_open_random_q2(c, 0, 1, batch, seqlen)
            : pass == P_W4A8 ? be_open_random_q2(c, W4_GROUP, 1, batch, seqlen)
                             : be_open_random_w4a16(c, W4_GROUP, 1, batch, seqlen);
    if (!b) mq_die("%s: %s", c->source, mq_errmsg());
    return b;
}

static void time_pass(const mq_config *c, int pass, const int32_t *tok, pass_times *pt) {
    be *b = open_pass(c, pass, 8, 1024);
    pt->weights_gb = be_weight_bytes(b) / 1e9;
    pt->decode_gb = be_decode_bytes(b) / 1e9;
    pt->mem_gb = (be_weight_bytes(b) + be_ws_bytes(b)) / 1e9;
    pt->pre[0] = bt_prefill_ms(b, tok, 1, 1024);
    pt->pre[1] = bt_prefill_ms(b, tok, 8, 1024);
    be_free(b);
    for (int k = 0; k < NB; k++) { /* decode workspaces of batch x 1 token */
        be *d = open_pass(c, pass, batches[k], 1);
        be_state *s = be_state_new(d, batches[k]);
        if (!s) mq_die("%s", mq_errmsg());
        pt->dec[k] = bt_decode_ms(d, s, tok);
        if (k == NB - 1) {
            const size_t state = (size_t)batches[k] * c->n_layer *
                                 (cfg_conv_dim(c) * (c->d_conv - 1) * (pass == P_F16 || pass == P_W4A16 ? 4 : 1) +
                                  (size_t)c->d_inner * c->d_state * 4);
            pt->mem_gb += (be_ws_bytes(d) + state) / 1e9;
        }
        be_state_free(s);
        be_free(d);
    }
}

/* N decode steps of one shape op by op (a no-op hook: no graph), int8 then FP16, for a kernel
 * profiler (ncu) to time every kernel of a step; no timing here */
static int nop_hook(void *ctx, const mq_act *a) {
    (void)ctx, (void)a;
    return 0;
}
static int profile_steps(const shape *sh, int n, int batch, int q2) {
    mq_config c = make_cfg(sh);
    if (n > 64) n = 64;
    int32_t *tok = bt_tokens(64 * batch, c.vocab_size);
    float *logits = mq_malloc(sizeof(float) * c.vocab_size * batch);
    const int passes[2] = {q2 ? P_Q2 : P_INT8, P_F16};
    for (int p = 0; p < 2; p++) {
        be *b = open_pass(&c, passes[p], batch, 16);
        be_state *s = be_state_new(b, batch);
        mq_hooks nop = {nop_hook, NULL};
        if (!s) mq_die("%s: %s", sh->name, mq_errmsg());
        /* int8 batch 1: the fused kernels run without hooks; they are what a profile should show */
        for (int k = 0; k < n; k++)
            if (be_step(b, s, tok + (size_t)k * batch, p || batch > 1 ? &nop : NULL, NULL, logits))
                mq_die("%s", mq_errmsg());
        be_state_free(s);
        be_free(b);
    }
    free(logits);
    free(tok);
    return 0;
}

/* GPU ms per op of PROF_STEPS decode steps of the given batch, op by op (a no-op hook: no graph, so
 * the host's launch gaps are in it too; the large ops read true) */
static void decode_breakdown(const mq_config *c, int pass, int batch, const int32_t *tok, char *out, size_t n) {
    be *b = open_pass(c, pass, batch, 1);
    be_state *s = be_state_new(b, batch);
    float *logits = mq_malloc(sizeof(float) * c->vocab_size * batch);
    mq_hooks nop = {nop_hook, NULL};
    if (!s) mq_die("%s", mq_errmsg());
    for (int k = 0; k < 2 + PROF_STEPS; k++) {
        if (k == 2) be_profile(b, 1);
        if (be_step(b, s, tok + k * batch, &nop, NULL, logits)) mq_die("%s", mq_errmsg());
    }
    be_profile_report(b, out, n);
    be_profile(b, 0);
    free(logits);
    be_state_free(s);
    be_free(b);
}

/* Prefill only (NAME --prefill): 1x1024 and 8x1024 ms of both passes and the per-op breakdown of a
 * 1x1024 prefill; quick, for comparing kernel variants (e.g. MQ_SCAN_TARGET) in one device call. */
static int prefill_only(const shape *sh) {
    mq_config c = make_cfg(sh);
    int32_t *tok = bt_tokens(8 * 1024, c.vocab_size);
    const be_kind kinds[2] = {BE_CUDA_INT8, BE_CUDA_F16};
    for (int p = 0; p < 2; p++) {
        be *b = open_random(&c, kinds[p], 8, 1024);
        const double t1 = bt_prefill_ms(b, tok, 1, 1024), t8 = bt_prefill_ms(b, tok, 8, 1024);
        char ops[512];
        be_profile(b, 1);
        if (be_prefill(b, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
        be_profile(b, 0);
        be_profile_report(b, ops, sizeof ops);
        printf("%s %s prefill 1x1024 %.2f ms, 8x1024 %.2f ms; 1x1024 per op: %s\n", sh->name, p ? "FP16" : "int8", t1,
               t8, ops);
        be_free(b);
    }
    free(tok);
    return 0;
}

/* The 4-bit weight GEMVs alone (--w4): W4A16 (dp4a layout and tensor cores) and W4A8 on the in_proj
 * and out_proj shapes of the benchmark models (group 128, random codes), 1, 8 and 16 rows (the
 * dp4a-layout kernels up to 8), mean of 200 calls after 3 (CUDA events around back-to-back launches
 * that cycle through weight copies larger than the L2 together, so every call reads its weights
 * from device memory): microseconds, TB/s of packed weights and scales read, and the two
 * projections of all layers summed. */
static int bench_w4(const char *filter) {
    printf("## 4-bit weight GEMVs (build/bench/bench_int8 --w4), %s\n\n", gpu_describe());
    printf("| model | GEMV | N x K | rows | W4A16 us (TB/s) | W4A8 us (TB/s) | W4A16 tensor cores us (TB/s) |\n"
           "|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        const mq_config c = make_cfg(&shapes[i]);
        const int dims[2][2] = {{cfg_in_proj_dim(&c), c.d_model}, {c.d_model, c.d_inner}};
        enum { NR = 3 };
        static const int rows[NR] = {1, 8, 16};
        double layer[NR][3] = {{0}}; /* [rows][W4A16, W4A8, W4A16 mma] us of in_proj + out_proj */
        for (int g = 0; g < 2; g++) {
            const int N = dims[g][0], K = dims[g][1], G = 128;
            int8_t *q = mq_malloc((size_t)N * K), *x8 = mq_malloc((size_t)16 * K);
            float *sc = mq_malloc(sizeof(float) * N * (K / G)), *x = mq_malloc(sizeof(float) * 16 * K);
            float *y = mq_malloc(sizeof(float) * 16 * N);
            for (size_t j = 0; j < (size_t)N * K; j++) q[j] = (int8_t)((int)((uint32_t)(j * 2654435761u) >> 7) % 15 - 7);
            for (size_t j = 0; j < (size_t)N * (K / G); j++) sc[j] = 0.01f;
            for (int j = 0; j < 16 * K; j++) x[j] = 0.5f, x8[j] = (int8_t)(j % 11 - 5);
            const double bytes = (double)N * K / 2 + 4.0 * N * (K / G);
            for (int r = 0; r < NR; r++) {
                const int M = rows[r];
                double u[3] = {0, 0, 0}; /* the dp4a-layout kernels run up to 8 rows */
                if ((M <= 8 && (gop_w4a16_gemv(y, GOP_OUT_F16, x, q, sc, G, NULL, M, N, K, 200, &u[0]) ||
                                gop_w4a8_gemv(y, NULL, GOP_OUT_F16, x8, 0.02f, q, sc, G, NULL, NULL, M, N, K, 200, &u[1]))) ||
                    gop_w4a16_mma(y, GOP_OUT_F16, x, q, sc, G, NULL, M, N, K, 200, &u[2]))
                    mq_die("bench_int8 --w4: %s", mq_errmsg());
                printf("| %s | %s | %d x %d | %d |", shapes[i].name, g ? "out_proj" : "in_proj", N, K, M);
                for (int k = 0; k < 3; k++) {
                    if (u[k] > 0) printf(" %.2f (%.2f) |", u[k], bytes / u[k] / 1e6);
                    else printf(" - |");
                    layer[r][k] += u[k];
                }
                printf("\n");
            }
            free(q), free(x8), free(sc), free(x), free(y);
        }
        for (int r = 0; r < NR; r++) {
            printf("| %s | in_proj + out_proj, %d layers | | %d |", shapes[i].name, c.n_layer, rows[r]);
            for (int k = 0; k < 3; k++)
                if (layer[r][k] > 0) printf(" %.3f ms |", layer[r][k] * c.n_layer / 1e3);
                else printf(" - |");
            printf("\n");
        }
    }
    return 0;
}

/* prefill 1x1024 and batch-1 graph decode of an artifact and of its FP16 source */
static int bench_artifact(const char *art_dir, const char *model_dir) {
    art_artifact art;
    mq_model m;
    if (art_open(art_dir, &art)) mq_die("%s", mq_errmsg());
    if (ssm_load(model_dir, &m)) mq_die("%s", mq_errmsg());
    const mq_config *c = &art.qm.cfg;
    int32_t *tok = bt_tokens(1024, c->vocab_size);
    double pre[2], dec[2];
    be *b[2] = {be_open_qmodel(&art.qm, BE_CUDA_INT8, 1, 1024), be_open_model(&m, BE_CUDA_F16, 1, 1024)};
    if (!b[0] || !b[1]) mq_die("upload: %s", mq_errmsg());
    for (int p = 0; p < 2; p++) {
        be_state *s = be_state_new(b[p], 1);
        if (!s) mq_die("%s", mq_errmsg());
        pre[p] = bt_prefill_ms(b[p], tok, 1, 1024);
        dec[p] = bt_decode_ms(b[p], s, tok);
        be_state_free(s);
    }
    printf("| artifact | int8 model.safetensors GB | prefill 1x1024 ms int8 / FP16 | decode b=1 ms/token int8 / FP16 |\n");
    printf("|---|---|---|---|\n");
    printf("| %s (%s) | %.2f | %.2f / %.2f (%.2fx) | %.3f / %.3f (%.2fx) |\n", art_dir, c->source, art.model_bytes / 1e9,
           pre[0], pre[1], pre[1] / pre[0], dec[0], dec[1], dec[1] / dec[0]);
    be_free(b[0]), be_free(b[1]);
    art_close(&art);
    ssm_free(&m);
    free(tok);
    return 0;
}

/* ---- bench.json and the peers (../shared/bench: torch_decode_peer.py, mamba_ssm_peer.py) ---- */

static const char *const batch_keys[NB] = {"1", "16", "64"}, *const prefill_keys[2] = {"1x1024", "8x1024"};

/* obj[key], created as an object when absent */
static cJSON *obj_at(cJSON *obj, const char *key) {
    cJSON *o = cJSON_GetObjectItemCaseSensitive(obj, key);
    return o ? o : cJSON_AddObjectToObject(obj, key);
}
static void put_ms(cJSON *obj, const char *key, double ms) { cJSON_AddNumberToObject(obj, key, round(ms * 1e4) / 1e4); }

/* our figures of one shape under models[name] */
static void json_ours(cJSON *models, const char *name, const pass_times *i8, const pass_times *f16,
                      const pass_times *w4, const pass_times *w4a8, double tbps) {
    cJSON *m = obj_at(models, name), *dec = obj_at(m, "decode_ms"), *pre = obj_at(m, "prefill_ms");
    const pass_times *pt[4] = {i8, f16, w4, w4a8};
    const char *kind[4] = {"int8", "fp16", "w4a16", "w4a8"};
    cJSON *floor_ms = obj_at(m, "floor_ms"), *wgb = obj_at(m, "decode_weights_gb");
    for (int p = 0; p < 4; p++) {
        cJSON *d = obj_at(dec, kind[p]), *f = obj_at(pre, kind[p]);
        for (int k = 0; k < NB; k++) put_ms(d, batch_keys[k], pt[p]->dec[k]);
        for (int k = 0; k < 2; k++) put_ms(f, prefill_keys[k], pt[p]->pre[k]);
        put_ms(floor_ms, kind[p], pt[p]->decode_gb / tbps);
        put_ms(wgb, kind[p], pt[p]->decode_gb);  /* what one decode step reads */
    }
}

/* a peer's value: a number, or a note of why not (a failure string of the script, or absent) */
static void peer_value(cJSON *dst, const char *key, const cJSON *v, cJSON *notes, const char *what) {
    if (cJSON_IsNumber(v)) {
        put_ms(dst, key, v->valuedouble);
        return;
    }
    char msg[1400];
    snprintf(msg, sizeof msg, "%s: %s", what, cJSON_IsString(v) ? v->valuestring : "not reported");
    cJSON_AddItemToArray(notes, cJSON_CreateString(msg));
}

/* DIR/torch_peer.json (mamba-2.8b shape only) and DIR/mssm_peer.json into models; what is missing
 * or failed goes to notes */
static void json_peers(cJSON *models, const char *dir, cJSON *notes) {
    char path[1024], key[64], what[1200];
    snprintf(path, sizeof path, "%s/torch_peer.json", dir);
    char *txt = mq_read_file(path, NULL);
    cJSON *t = txt ? cJSON_Parse(txt) : NULL;
    if (!t) {
        snprintf(what, sizeof what, "PyTorch peer: %s %s", path, txt ? "is not JSON" : "is absent (the peer did not run)");
        cJSON_AddItemToArray(notes, cJSON_CreateString(what));
    } else {
        cJSON *m = obj_at(models, "mamba-2.8b"), *dec = cJSON_GetObjectItem(t, "torch_fp16_decode");
        const char *runs[2][2] = {{"compiled_graph", "torch_compiled_fp16"}, {"eager_graph", "torch_eager_fp16"}};
        for (int r = 0; r < 2; r++)
            for (int k = 0; k < NB; k++) {
                snprintf(key, sizeof key, "%s_b%s_ms", runs[r][0], batch_keys[k]);
                snprintf(what, sizeof what, "PyTorch peer, mamba-2.8b %s batch %s", runs[r][1], batch_keys[k]);
                peer_value(obj_at(obj_at(m, "decode_ms"), runs[r][1]), batch_keys[k], cJSON_GetObjectItem(dec, key),
                           notes, what);
            }
        cJSON *gem = cJSON_GetObjectItem(t, "prefill_gemm_only"), *g = obj_at(m, "prefill_gemm_only_ms");
        const char *mk[2] = {"M1024", "M8192"}, *kk[2][2] = {{"fp16_all_layers_ms", "torch_fp16"}, {"int8_all_layers_ms", "torch_int8"}};
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++) {
                snprintf(what, sizeof what, "PyTorch peer, mamba-2.8b GEMM-only prefill %s %s", prefill_keys[i], kk[j][1]);
                peer_value(obj_at(g, kk[j][1]), prefill_keys[i], cJSON_GetObjectItem(cJSON_GetObjectItem(gem, mk[i]), kk[j][0]),
                           notes, what);
            }
    }
    cJSON_Delete(t), free(txt);
    snprintf(path, sizeof path, "%s/mssm_peer.json", dir);
    txt = mq_read_file(path, NULL);
    t = txt ? cJSON_Parse(txt) : NULL;
    if (!t) {
        snprintf(what, sizeof what, "mamba_ssm peer: %s %s", path, txt ? "is not JSON" : "is absent (the peer did not run)");
        cJSON_AddItemToArray(notes, cJSON_CreateString(what));
    } else {
        const char *names[2] = {"mamba-2.8b", "mamba2-2.7b"};
        for (int n = 0; n < 2; n++) {
            cJSON *src = cJSON_GetObjectItem(t, names[n]), *m = obj_at(models, names[n]);
            for (int k = 0; k < NB; k++) {
                snprintf(key, sizeof key, "decode_b%s_ms", batch_keys[k]);
                snprintf(what, sizeof what, "mamba_ssm peer, %s decode batch %s", names[n], batch_keys[k]);
                peer_value(obj_at(obj_at(m, "decode_ms"), "mamba_ssm_fp16"), batch_keys[k],
                           cJSON_GetObjectItem(src, key), notes, what);
            }
            if (n == 1) /* its Mamba1 prefill needs the compiled selective_scan_cuda: Mamba2 only */
                for (int k = 0; k < 2; k++) {
                    snprintf(key, sizeof key, "prefill_%s_ms", prefill_keys[k]);
                    snprintf(what, sizeof what, "mamba_ssm peer, %s prefill %s", names[n], prefill_keys[k]);
                    peer_value(obj_at(obj_at(m, "prefill_ms"), "mamba_ssm_fp16"), prefill_keys[k],
                               cJSON_GetObjectItem(src, key), notes, what);
                }
        }
    }
    cJSON_Delete(t), free(txt);
}

/* "%.3f" of models[name][table][kind][key], or "-" */
static double num_at(cJSON *models, const char *name, const char *table, const char *kind, const char *key) {
    cJSON *v = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(models, name), table), kind), key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}
static const char *cell(cJSON *models, const char *name, const char *table, const char *kind, const char *key,
                        char *buf, size_t n) {
    double v = num_at(models, name, table, kind, key);
    if (v >= 0) snprintf(buf, n, table[0] == 'd' ? "%.3f" : "%.2f", v);
    else snprintf(buf, n, "-");
    return buf;
}

/* the "beside the peers" table of every model in the json */
static void print_peer_table(cJSON *models, cJSON *notes) {
    static const char *const rows[][2] = {
        {"int8", "mambaq int8"},
        {"fp16", "mambaq FP16"},
        {"torch_compiled_fp16", "PyTorch FP16, torch.compile'd layer, step in a CUDA graph"},
        {"torch_eager_fp16", "PyTorch FP16, eager layer, step in a CUDA graph"},
        {"mamba_ssm_fp16", "state-spaces mamba_ssm FP16 (Triton kernels, its CUDA-graph decode)"},
    };
    printf("\n## Decode and prefill beside the peers (ms; same run)\n\n");
    printf("| model | implementation | decode b=1 | b=16 | b=64 | prefill 1x1024 | 8x1024 |\n|---|---|---|---|---|---|---|\n");
    for (cJSON *m = models->child; m; m = m->next)
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            char c[5][32];
            for (int k = 0; k < NB; k++) cell(models, m->string, "decode_ms", rows[r][0], batch_keys[k], c[k], 32);
            for (int k = 0; k < 2; k++) cell(models, m->string, "prefill_ms", rows[r][0], prefill_keys[k], c[3 + k], 32);
            if (!strcmp(c[0], "-") && !strcmp(c[3], "-")) continue; /* that peer does not run this shape */
            printf("| %s | %s | %s | %s | %s | %s | %s |\n", m->string, rows[r][1], c[0], c[1], c[2], c[3], c[4]);
        }
    printf("\nint8 decode speed-up (time of the other / time of int8; > 1: int8 faster), batch 1 / 16 / 64:\n\n");
    for (cJSON *m = models->child; m; m = m->next) {
        printf("- %s:", m->string);
        for (size_t r = 1; r < sizeof rows / sizeof rows[0]; r++) {
            char buf[160];
            int n = snprintf(buf, sizeof buf, " vs %s", r == 1 ? "our FP16" : rows[r][0]), any = 0;
            for (int k = 0; k < NB; k++) {
                double i8 = num_at(models, m->string, "decode_ms", "int8", batch_keys[k]);
                double o = num_at(models, m->string, "decode_ms", rows[r][0], batch_keys[k]);
                any |= o > 0 && i8 > 0;
                if (o > 0 && i8 > 0) n += snprintf(buf + n, sizeof buf - n, "%s%.2fx", k ? " / " : " ", o / i8);
                else n += snprintf(buf + n, sizeof buf - n, "%s-", k ? " / " : " ");
            }
            if (any) printf("%s%s", buf, r + 1 < sizeof rows / sizeof rows[0] ? ";" : "");
        }
        printf("\n");
    }
    for (cJSON *n = notes->child; n; n = n->next) printf("%s- %s\n", n == notes->child ? "\n" : "", n->valuestring);
}

/* --q2: quamba2 W8A8 (scales per column: Mamba1's x_proj through FP16, the scans reading a scale per
 * column) and W4A8 (int4 in_proj / out_proj, groups of 128) beside the plain int8 pass, the int8
 * table's protocol, and the per-op times of a 1x1024 prefill and of batch-64 decode steps of each */
static int bench_q2(const char *filter) {
    static const int passes[3] = {P_INT8, P_Q2, P_W4A8};
    printf("quamba2 W8A8 / W4A8 / quamba W8A8 (the int8 pass), ms (programmatic dependent launches %s):\n\n| model | "
           "prefill 1x1024 | prefill 8x1024 | decode b=1 | decode b=16 | decode b=64 |\n|---|---|---|---|---|---|\n",
           gop_pdl_on() ? "on" : "off");
    char ops[sizeof shapes / sizeof shapes[0]][3][512], dops[sizeof shapes / sizeof shapes[0]][3][512];
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        mq_config c = make_cfg(&shapes[i]);
        int32_t *tok = bt_tokens(8 * 1024, c.vocab_size);
        pass_times t[3];
        for (int p = 0; p < 3; p++) {
            time_pass(&c, passes[p], tok, &t[p]);
            be *g = open_pass(&c, passes[p], 1, 1024);
            be_profile(g, 1);
            if (be_prefill(g, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            be_profile(g, 0);
            be_profile_report(g, ops[i][p], sizeof ops[i][p]);
            be_free(g);
            decode_breakdown(&c, passes[p], 64, tok, dops[i][p], sizeof dops[i][p]);
        }
        printf("| %s | %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %.3f / %.3f / %.3f | %.3f / %.3f / %.3f | "
               "%.3f / %.3f / %.3f |\n", shapes[i].name, t[1].pre[0], t[2].pre[0], t[0].pre[0], t[1].pre[1], t[2].pre[1],
               t[0].pre[1], t[1].dec[0], t[2].dec[0], t[0].dec[0], t[1].dec[1], t[2].dec[1], t[0].dec[1], t[1].dec[2],
               t[2].dec[2], t[0].dec[2]);
        fflush(stdout);
        free(tok);
    }
    printf("\nprefill 1x1024, GPU ms per op (quamba2 W8A8, W4A8, quamba):\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!filter || strstr(shapes[i].name, filter))
            printf("- %s: %s\n  %s\n  %s\n", shapes[i].name, ops[i][1], ops[i][2], ops[i][0]);
    printf("\ndecode b=64, GPU ms per op over %d steps, op by op (quamba2 W8A8, W4A8, quamba):\n", PROF_STEPS);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!filter || strstr(shapes[i].name, filter))
            printf("- %s: %s\n  %s\n  %s\n", shapes[i].name, dops[i][1], dops[i][2], dops[i][0]);
    return 0;
}

/* A table of a 4-bit pass's times w beside a reference pass's f (the ratio: f's time / w's) */
static void w4_table(const char *title, const char *filter, const pass_times *w, const pass_times *f, double tbps) {
    printf("\n%s:\n\n| model | weights GB | prefill 1x1024 ms | prefill 8x1024 ms | decode b=1 ms/token | b=1 floor ms "
           "(reached) | decode b=16 ms/step | decode b=64 ms/step |\n|---|---|---|---|---|---|---|---|\n", title);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        const pass_times *a = &w[i], *b = &f[i];
        const double fl = a->decode_gb / tbps;
        printf("| %s | %.2f | %.2f (%.2fx) | %.2f (%.2fx) | %.3f (%.2fx) | %.3f (%.0f%%) | %.3f (%.2fx) | %.3f (%.2fx) |\n",
               shapes[i].name, a->weights_gb, a->pre[0], b->pre[0] / a->pre[0], a->pre[1], b->pre[1] / a->pre[1], a->dec[0],
               b->dec[0] / a->dec[0], fl, 100 * fl / a->dec[0], a->dec[1], b->dec[1] / a->dec[1], a->dec[2],
               b->dec[2] / a->dec[2]);
    }
}

int main(int argc, char **argv) {
    const char *filter = NULL, *json_out = NULL, *peers = NULL;
    int steps = -1, batch = 1, prefill = 0, w4 = 0, w4a16_only = 0, q2 = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json_out = argv[++i];
        else if (!strcmp(argv[i], "--peers") && i + 1 < argc) peers = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill")) prefill = 1;
        else if (!strcmp(argv[i], "--w4")) w4 = 1;
        else if (!strcmp(argv[i], "--w4a16")) w4a16_only = 1;
        else if (!strcmp(argv[i], "--q2")) q2 = 1;
        else if (!strcmp(argv[i], "--artifact") && i + 2 < argc) {
            const char *why;
            if (!gpu_available(&why)) return printf("bench_int8: no usable GPU (%s)\n", why), 0;
            return bench_artifact(argv[i + 1], argv[i + 2]);
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_int8 [FILTER] [--peers DIR] [--json FILE] | NAME --steps N [--batch B] [--q2] | "
                            "NAME --prefill | [FILTER] --w4 | [FILTER] --w4a16 | [FILTER] --q2 | --artifact ART MODEL\n");
            return 2;
        } else filter = argv[i];
    }
    const char *why;
    if (!gpu_available(&why)) {
        printf("bench_int8: no usable GPU (%s)\n", why);
        return 0;
    }
    if (w4) return bench_w4(filter);
    if (q2 && steps < 0 && !prefill) return bench_q2(filter);
    if (steps >= 0 || prefill) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            if (filter && !strcmp(shapes[i].name, filter))
                return prefill ? prefill_only(&shapes[i]) : profile_steps(&shapes[i], steps, batch < 1 ? 1 : batch, q2);
        mq_die("bench_int8: no shape named %s", filter ? filter : "(none given)");
    }
    const double tbps = gpu_copy_tbps((size_t)1 << 30);
    if (tbps <= 0) mq_die("bench_int8: %s", mq_errmsg());
    cJSON *root = cJSON_CreateObject(), *notes = cJSON_CreateArray();
    {
        char name[128], date[32];
        snprintf(name, sizeof name, "%s", gpu_describe());
        name[strcspn(name, ",")] = 0;
        time_t now = time(NULL);
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
        cJSON_AddStringToObject(root, "gpu", name);
        cJSON_AddStringToObject(root, "gpu_detail", gpu_describe());
        cJSON_AddStringToObject(root, "date", date);
        if (getenv("BENCH_COMMIT")) cJSON_AddStringToObject(root, "commit", getenv("BENCH_COMMIT"));
        cJSON_AddNumberToObject(root, "copy_tbps", round(tbps * 1000) / 1000);
    }
    cJSON *models = cJSON_AddObjectToObject(root, "models");
    if (!w4a16_only) {
        printf("## int8 pass vs FP16 forward (build/bench/bench_int8), %s\n\n", gpu_describe());
        printf("Each cell: int8 / FP16 (ratio = FP16 time / int8 time; > 1 means int8 is faster). Floor: weights one "
               "decode step reads / %.2f TB/s, the device-to-device copy rate measured in this run (read + write). "
               "Programmatic dependent launches: %s.\n\n",
               tbps, gop_pdl_on() ? "on" : "off (MQ_PDL=0, or no sm_90 code in the build)");
        printf("| model | weights GB int8 / FP16 | prefill 1x1024 ms | prefill 8x1024 ms | decode b=1 ms/token | "
               "b=1 floor ms (reached) | decode b=16 ms/step | decode b=64 ms/step | GPU memory GB |\n");
        printf("|---|---|---|---|---|---|---|---|---|\n");
    }
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        mq_config c = make_cfg(&shapes[i]);
        int32_t *tok = bt_tokens(8 * 1024, c.vocab_size);
        pass_times a, b;
        memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
        if (w4a16_only) { /* --w4a16: FP16 and W4A16 only, for the table below */
            time_pass(&c, P_F16, tok, &f16t[i]);
            time_pass(&c, P_W4A16, tok, &w4t[i]);
            for (int bi = 0; bi < 2; bi++) {
                char ops[512];
                decode_breakdown(&c, P_W4A16, bi ? 16 : 1, tok, ops, sizeof ops);
                printf("%s W4A16 decode b=%d, ms per op over %d steps (y_quant: the rotation): %s\n", shapes[i].name,
                       bi ? 16 : 1, PROF_STEPS, ops);
            }
            free(tok);
            continue;
        }
        time_pass(&c, P_INT8, tok, &a);
        { /* one more int8 prefill with events between the ops, for the breakdown */
            be *g = open_random(&c, BE_CUDA_INT8, 1, 1024);
            be_profile(g, 1);
            if (be_prefill(g, tok, 1, 1024, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
            be_profile(g, 0);
            be_profile_report(g, prof[i], sizeof prof[i]);
            be_free(g);
        }
        time_pass(&c, P_F16, tok, &b);
        f16t[i] = b;
        time_pass(&c, P_W4A16, tok, &w4t[i]);
        time_pass(&c, P_W4A8, tok, &w4a8t[i]);
        i8t[i] = a;
        for (int k = 0; k < 2; k++)
            for (int bi = 0; bi < 2; bi++)
                decode_breakdown(&c, k ? P_F16 : P_INT8, bi ? 64 : 16, tok, dprof[i][k][bi],
                                 sizeof dprof[i][k][bi]);
        const double f8 = a.decode_gb / tbps, f16 = b.decode_gb / tbps;
        printf("| %s | %.2f / %.2f | %.2f / %.2f (%.2fx) | %.2f / %.2f (%.2fx) | %.3f / %.3f (%.2fx) | "
               "%.3f (%.0f%%) / %.3f (%.0f%%) | %.3f / %.3f (%.2fx) | %.3f / %.3f (%.2fx) | %.2f / %.2f |\n",
               shapes[i].name, a.weights_gb, b.weights_gb, a.pre[0], b.pre[0], b.pre[0] / a.pre[0], a.pre[1], b.pre[1],
               b.pre[1] / a.pre[1], a.dec[0], b.dec[0], b.dec[0] / a.dec[0], f8, 100 * f8 / a.dec[0], f16,
               100 * f16 / b.dec[0], a.dec[1], b.dec[1], b.dec[1] / a.dec[1], a.dec[2], b.dec[2], b.dec[2] / a.dec[2],
               a.mem_gb, b.mem_gb);
        fflush(stdout);
        json_ours(models, shapes[i].name, &a, &b, &w4t[i], &w4a8t[i], tbps);
        free(tok);
    }
    char title[256];
    snprintf(title, sizeof title, "quamba2 W4A16 (int4 in_proj / out_proj, groups of %d, FP16 activations, y rotated; the FP16 "
             "pass otherwise), ratio = FP16 time / W4A16 time", W4_GROUP);
    w4_table(title, filter, w4t, f16t, tbps);
    if (w4a16_only) {
        cJSON_Delete(root), cJSON_Delete(notes);
        return 0;
    }
    snprintf(title, sizeof title, "quamba2 W4A8 (int4 in_proj / out_proj, groups of %d; int8 activations with quamba2's scales: "
             "x clustered, B / C per group), ratio = int8 pass (quamba W8A8) time / W4A8 time", W4_GROUP);
    w4_table(title, filter, w4a8t, i8t, tbps);
    printf("\nint8 prefill 1x1024, GPU ms per op (CUDA events between the ops):\n");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        printf("- %s: %s\n", shapes[i].name, prof[i]);
    }
    printf("\nDecode at batch 16 and 64, GPU ms per op summed over %d steps (op by op without the graph, so the "
           "host's launch gaps count too; the large ops read true):\n\n| model | pass | batch | ms per op |\n|---|---|---|---|\n",
           PROF_STEPS);
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        if (filter && !strstr(shapes[i].name, filter)) continue;
        for (int k = 0; k < 2; k++)
            for (int bi = 0; bi < 2; bi++)
                printf("| %s | %s | %d | %s |\n", shapes[i].name, k ? "FP16" : "int8", bi ? 64 : 16, dprof[i][k][bi]);
    }
    if (peers) json_peers(models, peers, notes);
    else cJSON_AddItemToArray(notes, cJSON_CreateString("peers not run (no --peers)"));
    print_peer_table(models, notes);
    cJSON_AddItemToObject(root, "notes", notes);
    int rc = 0;
    if (json_out) {
        char *txt = cJSON_Print(root);
        rc = mq_write_file_atomic(json_out, txt, strlen(txt));
        if (rc) fprintf(stderr, "bench_int8: %s\n", mq_errmsg());
        free(txt);
    }
    cJSON_Delete(root);
    return rc ? 1 : 0;
}
