/* The FP16 pass's scans (ssm/scan.cuh), and the shared sizing of the scans' time chunks. */
#include <stdlib.h>
#include "ssm/scan.cuh"

void k_scan_m1(const k_scan_m1_args<k_in_f16, half> &a, cudaStream_t st) { scan_m1(a, st); }
void k_scan_m2(const k_scan_m2_args<k_in_f16, half> &a, cudaStream_t st) { scan_m2(a, st); }

int k_scan_m2_group(int N) { return scan_m2_group(N); }

/* Chunks only pay when one pass leaves the SMs short of threads: they cost a second pass over the
 * chunks (pass 1 scans all but the last from zero). The scan's rate is bound by instructions per
 * state update, not by latency, once an SM holds ~192 threads, so from there one pass is fastest
 * (H200, 8 x 1024 tokens: mamba-2.8b 49.6 ms in one pass against 66.8 ms in 4 chunks; mamba2-2.7b
 * 1 x 1024: 28.0 against 29.2 in 7; docs/performance.md). Below it: enough chunks for ~1024
 * (Mamba1: each thread runs d_state recurrences) or ~2048 (Mamba2) threads per SM, but chunks of at
 * least min_chunk steps. MQ_SCAN_TARGET=N (threads per SM) overrides the rule, for the benchmarks. */
int k_scan_chunks(const mq_config *c, int B, int T, int sm_count, int min_chunk) {
    const long per = (long)B * (c->arch == MQ_MAMBA1 ? c->d_inner : (long)c->n_heads * c->head_dim * k_scan_m2_group(c->d_state));
    static long env = -1;
    if (env < 0) {
        const char *s = getenv("MQ_SCAN_TARGET");
        env = s && *s && atol(s) > 0 ? atol(s) : 0;
    }
    if (!env && per >= 192L * sm_count) return 1;
    const long target = (long)sm_count * (env ? env : c->arch == MQ_MAMBA1 ? 1024 : 2048);
    long nc = (target + per - 1) / per, maxc = (T + min_chunk - 1) / min_chunk;
    if (nc > maxc) nc = maxc;
    return nc < 1 ? 1 : (int)nc;
}

/* The parallel Mamba1 scan costs about twice the sequential kernel's instructions per state update
 * (the lane scan, the second walk), so it pays where the sequential kernel needs many time chunks:
 * below 64 channels per SM (H200, scan of a 1 x 1024 prefill: mamba-2.8b, 39 per SM, int8 10.26 ->
 * 7.22 ms; mamba-1.4b, 31 per SM, 5.89 -> 3.87; at 8 x 1024, 248 and 310 per SM, the sequential
 * kernel is faster; between those the threshold is not measured; docs/performance.md). From 64
 * tokens: shorter calls keep the sequential kernel, whose decode steps match it bit for bit.
 * MQ_PSCAN=0 / 1 (never / always) for benchmarks. */
int k_scan_m1_par(const mq_config *c, int B, int T, int sm_count) {
    static int env = -1;
    if (env < 0) {
        const char *s = getenv("MQ_PSCAN");
        env = s && (s[0] == '0' || s[0] == '1') && !s[1] ? s[0] - '0' : 2;
    }
    if (!env || c->arch != MQ_MAMBA1 || c->d_state > 16 || T < 64) return 0;
    return env == 1 || (long)B * c->d_inner < 64L * sm_count;
}

/* From 64 tokens a call has at least one full tile of the SSD kernels; below it the sequential
 * kernel's few steps cost less than three launches. */
#define SSD_MIN_T 64

/* MQ_SSD=0 turns the SSD form off, MQ_SSD_CHUNK=64|128|256 replaces config.json's chunk_size (the
 * result is the same up to FP32 rounding; for the benchmarks) */
int k_scan_ssd_chunk(const mq_config *c, int T) {
    static int env = -1, env_q = 0;
    if (env < 0) {
        const char *s = getenv("MQ_SSD"), *q = getenv("MQ_SSD_CHUNK");
        env_q = q && *q ? atoi(q) : 0;
        env = !(s && s[0] == '0' && !s[1]);
    }
    if (!env || c->arch != MQ_MAMBA2 || c->d_state > 128 || T < SSD_MIN_T) return 0;
    const int q = (env_q > 0 ? env_q : c->chunk_size) / 64 * 64;
    return q < 64 ? 64 : q > 256 ? 256 : q;
}
