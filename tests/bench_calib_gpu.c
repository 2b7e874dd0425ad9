/* GPU calibration benchmark (not a test): a random-weight model of a real shape (be_open_random, BE_CUDA_F16)
 * observed by every Quamba observer (calib/gpu.h) over random tokens, against the same prefill calls
 * without hooks, to show what the statistics cost beside the forward.
 * Usage: build/bench/bench_calib_gpu [MODEL [MEASURED [TOTAL [SEQLEN [BATCH]]]]]
 *   MODEL mamba-130m | mamba-1.4b | mamba-2.8b | mamba2-2.7b (default mamba-2.8b); MEASURED samples
 *   are timed (default 512) and the time of TOTAL samples (default 512) is extrapolated linearly
 *   from them when MEASURED < TOTAL. Prints one markdown table row. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calib/gpu.h"
#include "core/err.h"
#include "core/gpu.h"
#include "core/progress.h"
#include "ssm/backend.h"

#include "tests/bench_shapes.h"

int main(int argc, char **argv) {
    const char *why;
    if (!gpu_available(&why)) { printf("no GPU (%s): nothing to benchmark\n", why); return 0; }
    const char *name = argc > 1 ? argv[1] : "mamba-2.8b";
    int measured = argc > 2 ? atoi(argv[2]) : 512, total = argc > 3 ? atoi(argv[3]) : 512;
    int seqlen = argc > 4 ? atoi(argv[4]) : 512, batch = argc > 5 ? atoi(argv[5]) : 8;
    const shape *sh = NULL;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) sh = &shapes[i];
    if (!sh || measured < batch || total < measured || seqlen < 1 || batch < 1)
        mq_die("usage: bench_calib_gpu [mamba-130m|mamba-1.4b|mamba-2.8b|mamba2-2.7b] [MEASURED >= BATCH] [TOTAL] [SEQLEN] [BATCH]");
    mq_config c = make_cfg(sh);
    be *g = be_open_random(&c, BE_CUDA_F16, 0, 4321, batch, seqlen);
    if (!g) mq_die("%s", mq_errmsg());
    obs_set *s = obs_set_new(&c, obs_default_pct, obs_default_npct);
    calib_gpu *cg = s ? calib_gpu_new(g, s) : NULL;
    if (!cg) mq_die("%s", mq_errmsg());
    if (c.arch == MQ_MAMBA1) { /* the default dt_proj:output correction, with the random model's bias (-4) */
        float *bias = mq_malloc((size_t)c.n_layer * c.d_inner * sizeof *bias);
        for (size_t i = 0; i < (size_t)c.n_layer * c.d_inner; i++) bias[i] = -4.f;
        if (calib_gpu_set_minus_bias(cg, MQ_ACT_DT, bias)) mq_die("%s", mq_errmsg());
        free(bias);
    }
    int32_t *tok = mq_malloc((size_t)batch * seqlen * sizeof *tok);
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)batch * seqlen; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        tok[i] = (int32_t)(x % (uint64_t)c.vocab_size);
    }
    /* one warm-up call of each (cuBLAS heuristics, module load), then the timed batches */
    if (calib_gpu_observe(cg, tok, batch) || be_prefill(g, tok, batch, seqlen, NULL, NULL, NULL))
        mq_die("%s", mq_errmsg());
    int calls = measured / batch;
    double t0 = prog_now();
    for (int i = 0; i < calls; i++)
        if (calib_gpu_observe(cg, tok, batch)) mq_die("%s", mq_errmsg());
    double t_cal = prog_now() - t0;
    t0 = prog_now();
    for (int i = 0; i < calls; i++)
        if (be_prefill(g, tok, batch, seqlen, NULL, NULL, NULL)) mq_die("%s", mq_errmsg());
    double t_fwd = prog_now() - t0;
    /* where the time goes: a few more calls with events around the observers (not in the timings above) */
    calib_gpu_profile(cg, 1);
    for (int i = 0; i < 4; i++)
        if (calib_gpu_observe(cg, tok, batch)) mq_die("%s", mq_errmsg());
    char rep[1024];
    calib_gpu_profile_report(cg, rep, sizeof rep);
    fprintf(stderr, "profile: %s: %s\n", sh->name, rep);
    int done = calls * batch;
    double tok_s = (double)done * seqlen / t_cal, scale = (double)total / done;
    char note[128] = "measured";
    if (done < total) snprintf(note, sizeof note, "extrapolated from %d measured samples", done);
    printf("| %s (random weights) | %d x %d | %d | %d | %.2f s (%s) | %.0f | %.2f s | %.0f%% |\n", sh->name, total, seqlen,
           batch, obs_count(s), t_cal * scale, note, tok_s, t_fwd * scale, 100.0 * (t_cal - t_fwd) / t_cal);
    fprintf(stderr, "%s: %d calls of %d x %d: calib %.3f s, forward only %.3f s\n", sh->name, calls, batch, seqlen, t_cal, t_fwd);
    calib_gpu_free(cg);
    obs_set_free(s);
    be_free(g);
    free(tok);
    return 0;
}
