/* Host side of the CUDA Hadamard transforms declared in had.h: argument checks, the choice of
 * R (values per thread and block) and T (threads per row) for each order, and the launches of
 * had_kernel (had_kernel.cuh) for FP32 -> FP32, FP16 -> FP16 and FP16 -> int8. */
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include "core/err.h"
#include "core/gpu.h"
#include "hadamard/had.h"
#include "hadamard/had_kernel.cuh"

/* How one order runs: R columns per thread, T = P / R threads per row, rows_per_block rows. */
struct had_launch {
    int m, log_p, R, T, rows_per_block;
    size_t smem;
};

/* R: at least 8 (m = 1) or 4 values per block row for vector access, and large enough that
 * T = P / R <= 1024 and R >= T / 32 (mapping 2 of the kernel). M * R stays <= 128 registers. */
static int had_plan(int n, int rows, struct had_launch *L) {
    if (had_factor(n, &L->m, &L->log_p)) return -1;
    if (n > HAD_CUDA_MAX_N) return mq_fail("GPU Hadamard transform: dimension %d exceeds %d", n, HAD_CUDA_MAX_N);
    if (rows < 0) return mq_fail("GPU Hadamard transform of dimension %d: row count %d is negative", n, rows);
    int P = 1 << L->log_p, R = L->m == 1 ? 8 : 4;
    if (R > P) R = P;
    while (R < P && ((long)R * R * 32 < P || P / R > 1024)) R *= 2;
    int max_r = L->m == 1 ? 32 : L->m == 12 ? 8 : 4;
    if (R > max_r) return mq_fail("GPU Hadamard transform: dimension %d needs %d values per thread", n, R);
    L->R = R;
    L->T = P / R;
    L->rows_per_block = L->T >= 32 ? 1 : 64 / L->T;
    L->smem = L->T > 32 ? (size_t)n * sizeof(float) : 0;
    return 0;
}

static int had_check_ptr(const void *p, const char *what, int n) {
    if (!p || (uintptr_t)p % 16)
        return mq_fail("GPU Hadamard transform of dimension %d: %s pointer %p is NULL or not 16-byte aligned", n, what, p);
    return 0;
}

/* y must equal x or not overlap it. */
static int had_check_overlap(const void *x, size_t xbytes, const void *y, size_t ybytes, int n) {
    uintptr_t a = (uintptr_t)x, b = (uintptr_t)y;
    if (a != b && a < b + ybytes && b < a + xbytes)
        return mq_fail("GPU Hadamard transform of dimension %d: output overlaps the input without being it", n);
    return 0;
}

template <int M, int R, typename Tin, typename Tout>
static void had_launch_mr(const struct had_launch *L, const Tin *x, Tout *y, int rows, float qscale, cudaStream_t st) {
    auto kernel = had_kernel<M, R, Tin, Tout>;
    if (L->smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L->smem));
    dim3 block(L->T, L->rows_per_block);
    unsigned grid = (unsigned)((rows + L->rows_per_block - 1) / L->rows_per_block);
    float norm = (float)(1.0 / sqrt((double)M * (1 << L->log_p)));
    kernel<<<grid, block, L->smem, st>>>(x, y, rows, L->log_p, norm, qscale);
    CUDA_CHECK_LAUNCH();
}

/* R values had_plan can pick: 1, 2, 4 for every m (small P), 8 for m = 1, 12, and 16, 32 for m = 1. */
template <int M, typename Tin, typename Tout>
static void had_launch_m(const struct had_launch *L, const Tin *x, Tout *y, int rows, float qscale, cudaStream_t st) {
    switch (L->R) {
    case 1: had_launch_mr<M, 1>(L, x, y, rows, qscale, st); return;
    case 2: had_launch_mr<M, 2>(L, x, y, rows, qscale, st); return;
    case 4: had_launch_mr<M, 4>(L, x, y, rows, qscale, st); return;
    }
    if constexpr (M <= 12)
        if (L->R == 8) { had_launch_mr<M, 8>(L, x, y, rows, qscale, st); return; }
    if constexpr (M == 1) {
        if (L->R == 16) { had_launch_mr<M, 16>(L, x, y, rows, qscale, st); return; }
        if (L->R == 32) { had_launch_mr<M, 32>(L, x, y, rows, qscale, st); return; }
    }
    mq_die("had_cuda: no kernel for m = %d, R = %d", M, L->R);  /* had_plan never picks these */
}

template <typename Tin, typename Tout>
static int had_run(const Tin *x, Tout *y, int rows, int n, float qscale, void *stream) {
    struct had_launch L;
    if (had_plan(n, rows, &L)) return -1;
    if (rows == 0) return 0;
    size_t count = (size_t)rows * n;
    if (had_check_ptr(x, "input", n) || had_check_ptr(y, "output", n) ||
        had_check_overlap(x, count * sizeof(Tin), y, count * sizeof(Tout), n))
        return -1;
    cudaStream_t st = (cudaStream_t)stream;
    switch (L.m) {
    case 1: had_launch_m<1>(&L, x, y, rows, qscale, st); break;
    case 12: had_launch_m<12>(&L, x, y, rows, qscale, st); break;
    case 20: had_launch_m<20>(&L, x, y, rows, qscale, st); break;
    case 28: had_launch_m<28>(&L, x, y, rows, qscale, st); break;
    }
    return 0;
}

extern "C" int had_cuda_transform_f32(const float *x, float *y, int rows, int n, void *stream) {
    return had_run(x, y, rows, n, 1.0f, stream);
}

extern "C" int had_cuda_transform_f16(const void *x, void *y, int rows, int n, void *stream) {
    return had_run((const __half *)x, (__half *)y, rows, n, 1.0f, stream);
}

extern "C" int had_cuda_transform_quant_f16(const void *x, int8_t *q, int rows, int n, float scale, void *stream) {
    if (!(scale > 0) || isinf(scale))
        return mq_fail("GPU Hadamard quantize of dimension %d: scale %g must be positive and finite", n, scale);
    return had_run((const __half *)x, q, rows, n, scale, stream);
}
