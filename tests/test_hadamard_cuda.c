/* GPU Hadamard tests: the CUDA transforms (FP32, FP16, fused FP16 -> int8) against the CPU
 * reference for every order up to 8192 plus the GPU maxima, odd row counts, in and out of place.
 * They skip when gpu_available() is 0; the argument checks run everywhere (they stop before CUDA). */
#define MQ_WANT_CUDA_CHECK
#include "tests/test.h"
#include <stdint.h>
#include "core/err.h"
#include "core/gpu.h"
#include "hadamard/had.h"

/* IEEE half <-> float, round to nearest even (no _Float16: the GPU machine's compiler may lack it). */
static float h2f(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 31, m = h & 1023, f;
    if (e == 0) { float v = ldexpf((float)m, -24); return s ? -v : v; }
    f = s | (e == 31 ? 0x7F800000u | (m << 13) : ((e + 112) << 23) | (m << 13));
    float out;
    memcpy(&out, &f, 4);
    return out;
}
static uint16_t f2h(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    uint16_t s = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7FFFFFFFu;
    if (a > 0x7F800000u) return s | 0x7E00;                                  /* NaN */
    if (a >= 0x477FF000u) return s | 0x7C00;                                 /* >= 65520: inf */
    if (a < 0x38800000u) return s | (uint16_t)rintf(fabsf(x) * 16777216.0f); /* subnormal */
    uint32_t h = (((a >> 23) - 112) << 10) | ((a & 0x7FFFFF) >> 13), rem = a & 0x1FFF;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return s | (uint16_t)h;
}

static void test_half_conversion(void) {
    T_CHECK(f2h(1.0f) == 0x3C00 && f2h(-2.0f) == 0xC000 && f2h(65504.0f) == 0x7BFF && f2h(1e6f) == 0x7C00,
            "f2h basics");
    T_CHECK(f2h(1.0f + 1.0f / 2048) == 0x3C00 && f2h(1.0f + 3.0f / 2048) == 0x3C02, "f2h ties to even");
    T_CHECK(f2h(5.9604645e-08f) == 0x0001 && h2f(0x0001) == 5.9604645e-08f, "subnormals");
    int bad = 0;
    for (uint32_t h = 0; h < 0x7C00; h++) bad += f2h(h2f((uint16_t)h)) != h;
    T_CHECK(bad == 0, "%d finite halves do not round-trip", bad);
}

static void test_argument_errors(void) {
    float *p = (float *)(uintptr_t)0x100000;  /* never dereferenced: every call returns before any CUDA call */
#ifdef MQ_CUDA
    T_CHECK(had_cuda_transform_f32(p, p, 4, 100, NULL) == -1 && strstr(mq_errmsg(), "100"), "n=100: %s", mq_errmsg());
    T_CHECK(had_cuda_transform_f16(p, p, 4, 36, NULL) == -1 && strstr(mq_errmsg(), "36"), "n=36: %s", mq_errmsg());
    T_CHECK(had_cuda_transform_f32(p, p, 4, 32768, NULL) == -1 && strstr(mq_errmsg(), "32768"), "too large: %s", mq_errmsg());
    T_CHECK(had_cuda_transform_f32(p, p, -1, 64, NULL) == -1 && strstr(mq_errmsg(), "-1"), "rows -1: %s", mq_errmsg());
    T_CHECK(had_cuda_transform_f32(p, p, 0, 64, NULL) == 0, "zero rows is a no-op: %s", mq_errmsg());
    T_CHECK(had_cuda_transform_f32(p + 1, p + 1, 2, 64, NULL) == -1 && strstr(mq_errmsg(), "aligned"), "misaligned: %s", mq_errmsg());
    T_CHECK(had_cuda_transform_f32(p, p + 64, 2, 64, NULL) == -1 && strstr(mq_errmsg(), "overlap"), "overlap: %s", mq_errmsg());
    T_CHECK(had_cuda_transform_quant_f16(p, (int8_t *)p, 2, 64, 0.0f, NULL) == -1 && strstr(mq_errmsg(), "scale"), "scale 0: %s", mq_errmsg());
#else
    (void)p;
    T_SKIP("built without CUDA");
#endif
}

#ifdef MQ_CUDA
/* Every order up to 8192 (all m * 2^k) and the largest GPU order of each m. */
static int gpu_orders(int *out) {
    static const int ms[] = {1, 12, 20, 28}, extra[] = {16384, 12288, 10240, 14336};
    int cnt = 0;
    for (int i = 0; i < 4; i++)
        for (int p = 1; ms[i] * p <= 8192; p *= 2) out[cnt++] = ms[i] * p;
    for (int i = 0; i < 4; i++) out[cnt++] = extra[i];
    return cnt;
}
static const int row_counts[] = {1, 7, 129};

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static float frand(void) {
    rng_state ^= rng_state << 13; rng_state ^= rng_state >> 7; rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) / 8388608.0 - 1.0);
}
static void fill_random(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * (i % 19 == 0 ? 25.0f : 1.0f);
}

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}

/* FP32: GPU == CPU (max abs diff / max abs value < 1e-5), out of place on a stream, then in place. */
static void test_cuda_f32(void) {
    const char *why;
    if (!gpu_available(&why)) T_SKIP("no usable GPU: %s", why);
    cudaStream_t st;
    CUDA_CHECK(cudaStreamCreate(&st));
    int orders[64], cnt = gpu_orders(orders);
    for (int o = 0; o < cnt; o++)
        for (int rc = 0; rc < 3; rc++) {
            int n = orders[o], rows = row_counts[rc];
            size_t len = (size_t)rows * n, bytes = len * sizeof(float);
            float *x = mq_malloc(bytes), *ref = mq_malloc(bytes), *got = mq_malloc(bytes), *got2 = mq_malloc(bytes);
            fill_random(x, len);
            memcpy(ref, x, bytes);
            T_CHECK(had_transform_f32(ref, rows, n) == 0, "%s", mq_errmsg());
            float *dx = dev_alloc(bytes), *dy = dev_alloc(bytes);
            CUDA_CHECK(cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice));
            T_CHECK(had_cuda_transform_f32(dx, dy, rows, n, st) == 0, "n=%d: %s", n, mq_errmsg());
            CUDA_CHECK(cudaStreamSynchronize(st));
            CUDA_CHECK(cudaMemcpy(got, dy, bytes, cudaMemcpyDeviceToHost));
            T_CHECK(had_cuda_transform_f32(dx, dx, rows, n, NULL) == 0, "n=%d in place: %s", n, mq_errmsg());
            CUDA_CHECK(cudaMemcpy(got2, dx, bytes, cudaMemcpyDeviceToHost));
            double d = 0, r = 0;
            for (size_t i = 0; i < len; i++) { d = fmax(d, fabs(got[i] - ref[i])); r = fmax(r, fabs(ref[i])); }
            T_CHECK(d / r < 1e-5, "n=%d rows=%d: GPU vs CPU rel err %.3g", n, rows, d / r);
            T_CHECK(!memcmp(got, got2, bytes), "n=%d rows=%d: in place differs from out of place", n, rows);
            CUDA_CHECK(cudaFree(dx));
            CUDA_CHECK(cudaFree(dy));
            free(x); free(ref); free(got); free(got2);
        }
    CUDA_CHECK(cudaStreamDestroy(st));
}

/* FP16: the CPU reference transforms the same half inputs in FP32; each GPU half must be within
 * one half ulp step of it, plus 1e-6 of the largest |value| for the FP32 summation order. */
static void test_cuda_f16(void) {
    const char *why;
    if (!gpu_available(&why)) T_SKIP("no usable GPU: %s", why);
    int orders[64], cnt = gpu_orders(orders);
    for (int o = 0; o < cnt; o++)
        for (int rc = 0; rc < 3; rc++) {
            int n = orders[o], rows = row_counts[rc];
            size_t len = (size_t)rows * n;
            float *ref = mq_malloc(len * sizeof *ref);
            uint16_t *xh = mq_malloc(len * 2), *yh = mq_malloc(len * 2);
            fill_random(ref, len);
            for (size_t i = 0; i < len; i++) { xh[i] = f2h(ref[i]); ref[i] = h2f(xh[i]); }
            T_CHECK(had_transform_f32(ref, rows, n) == 0, "%s", mq_errmsg());
            void *dx = dev_alloc(len * 2), *dy = dev_alloc(len * 2);
            CUDA_CHECK(cudaMemcpy(dx, xh, len * 2, cudaMemcpyHostToDevice));
            /* out of place, then in place */
            T_CHECK(had_cuda_transform_f16(dx, dy, rows, n, NULL) == 0, "n=%d: %s", n, mq_errmsg());
            T_CHECK(had_cuda_transform_f16(dx, dx, rows, n, NULL) == 0, "n=%d: %s", n, mq_errmsg());
            double big = 0;
            for (size_t i = 0; i < len; i++) big = fmax(big, fabs(ref[i]));
            for (int pass = 0; pass < 2; pass++) {
                CUDA_CHECK(cudaMemcpy(yh, pass ? dx : dy, len * 2, cudaMemcpyDeviceToHost));
                int bad = 0;
                size_t first = 0;
                for (size_t i = 0; i < len; i++) {
                    float e = ref[i], ulp = fmaxf(ldexpf(1, ilogbf(fabsf(e)) - 10), ldexpf(1, -24));
                    if (fabsf(h2f(yh[i]) - e) > ulp + 1e-6 * big) { if (!bad++) first = i; }
                }
                T_CHECK(bad == 0, "n=%d rows=%d %s: %d halves off, first [%zu] %.7g vs %.7g", n, rows,
                        pass ? "in place" : "out of place", bad, first, h2f(yh[first]), ref[first]);
            }
            CUDA_CHECK(cudaFree(dx));
            CUDA_CHECK(cudaFree(dy));
            free(ref); free(xh); free(yh);
        }
}

/* Fused FP16 -> int8 against had_transform_quant_f32 on the same half inputs: +-1 differences
 * are allowed only where v / scale sits at a rounding tie (within the FP32 summation error),
 * and must be rare. The count against the unrounded FP32 inputs is printed, as information on
 * what the FP16 input rounding costs. */
static void test_cuda_quant(void) {
    const char *why;
    if (!gpu_available(&why)) T_SKIP("no usable GPU: %s", why);
    int orders[64], cnt = gpu_orders(orders);
    size_t total = 0, ties = 0, vs_f32 = 0;
    for (int o = 0; o < cnt; o++)
        for (int rc = 0; rc < 3; rc++) {
            int n = orders[o], rows = row_counts[rc];
            size_t len = (size_t)rows * n;
            float *x = mq_malloc(len * sizeof *x), *xr = mq_malloc(len * sizeof *xr), *v = mq_malloc(len * sizeof *v);
            uint16_t *xh = mq_malloc(len * 2);
            int8_t *q = mq_malloc(len), *qref = mq_malloc(len), *q32 = mq_malloc(len);
            fill_random(x, len);
            for (size_t i = 0; i < len; i++) { xh[i] = f2h(x[i]); xr[i] = v[i] = h2f(xh[i]); }
            T_CHECK(had_transform_f32(v, rows, n) == 0, "%s", mq_errmsg());
            double big = 0;
            for (size_t i = 0; i < len; i++) big = fmax(big, fabs(v[i]));
            float scale = (float)(big / 100);  /* the largest values saturate, most do not */
            T_CHECK(had_transform_quant_f32(xr, qref, rows, n, scale) == 0, "%s", mq_errmsg());
            T_CHECK(had_transform_quant_f32(x, q32, rows, n, scale) == 0, "%s", mq_errmsg());
            void *dx = dev_alloc(len * 2);
            int8_t *dq = dev_alloc(len);
            CUDA_CHECK(cudaMemcpy(dx, xh, len * 2, cudaMemcpyHostToDevice));
            T_CHECK(had_cuda_transform_quant_f16(dx, dq, rows, n, scale, NULL) == 0, "n=%d: %s", n, mq_errmsg());
            CUDA_CHECK(cudaMemcpy(q, dq, len, cudaMemcpyDeviceToHost));
            int far = 0, untied = 0, ones = 0;
            for (size_t i = 0; i < len; i++) {
                int d = q[i] - qref[i];
                vs_f32 += q[i] != q32[i];
                if (!d) continue;
                if (d < -1 || d > 1) { far++; continue; }
                ones++;
                double u = v[i] / scale, tie = floor(u) + 0.5;
                if (fabs(u - tie) > 1e-5 * big / scale + 1e-6) untied++;
            }
            total += len;
            ties += ones;
            T_CHECK(far == 0, "n=%d rows=%d: %d values differ by more than 1", n, rows, far);
            T_CHECK(untied == 0, "n=%d rows=%d: %d +-1 differences away from a rounding tie", n, rows, untied);
            T_CHECK(ones <= 2 + (int)(len / 1000), "n=%d rows=%d: %d +-1 differences", n, rows, ones);
            CUDA_CHECK(cudaFree(dx));
            CUDA_CHECK(cudaFree(dq));
            free(x); free(xr); free(v); free(xh); free(q); free(qref); free(q32);
        }
    printf("    fused int8: %zu of %zu values +-1 at ties vs the half-input reference; %zu differ from the "
           "FP32-input reference (FP16 input rounding)\n", ties, total, vs_f32);
}
#else
static void test_cuda_f32(void) { T_SKIP("built without CUDA"); }
static void test_cuda_f16(void) { T_SKIP("built without CUDA"); }
static void test_cuda_quant(void) { T_SKIP("built without CUDA"); }
#endif

int main(void) {
    T_RUN(test_half_conversion);
    T_RUN(test_argument_errors);
    T_RUN(test_cuda_f32);
    T_RUN(test_cuda_f16);
    T_RUN(test_cuda_quant);
    return t_summary();
}
