/* Times the GPU Hadamard transforms (FP32, FP16, fused FP16 -> int8) on rows x n and reports
 * microseconds per call and effective bandwidth (bytes read + written per second). Not a test.
 * Usage: build/bench/bench_hadamard [ROWS N [ITERS]]   (default: 8192 rows of each real size) */
#define MQ_WANT_CUDA_CHECK
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/err.h"
#include "core/gpu.h"
#include "hadamard/had.h"

#ifdef MQ_CUDA
enum { F32, F16, F16_I8 };

static double time_one(int kind, void *x, void *y, int rows, int n, int iters) {
    cudaEvent_t t0, t1;
    CUDA_CHECK(cudaEventCreate(&t0));
    CUDA_CHECK(cudaEventCreate(&t1));
    for (int i = -3; i < iters; i++) {  /* 3 warm-up calls */
        if (i == 0) CUDA_CHECK(cudaEventRecord(t0, NULL));
        int rc = kind == F32    ? had_cuda_transform_f32(x, y, rows, n, NULL)
                 : kind == F16 ? had_cuda_transform_f16(x, y, rows, n, NULL)
                               : had_cuda_transform_quant_f16(x, y, rows, n, 0.05f, NULL);
        if (rc) mq_die("%s", mq_errmsg());
    }
    CUDA_CHECK(cudaEventRecord(t1, NULL));
    CUDA_CHECK(cudaEventSynchronize(t1));
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, t0, t1));
    CUDA_CHECK(cudaEventDestroy(t0));
    CUDA_CHECK(cudaEventDestroy(t1));
    return ms * 1e-3 / iters;
}

static void bench(int rows, int n, int iters) {
    static const char *names[] = {"fp32 -> fp32", "fp16 -> fp16", "fp16 -> int8"};
    static const int in_bytes[] = {4, 2, 2}, out_bytes[] = {4, 2, 1};
    size_t len = (size_t)rows * n;
    void *x, *y;
    CUDA_CHECK(cudaMalloc(&x, len * 4));
    CUDA_CHECK(cudaMalloc(&y, len * 4));
    CUDA_CHECK(cudaMemset(x, 0, len * 4));  /* zeros: finite in every format */
    for (int k = F32; k <= F16_I8; k++) {
        double s = time_one(k, x, y, rows, n, iters);
        printf("%6d x %-5d %s: %9.1f us  %7.1f GB/s\n", rows, n, names[k], s * 1e6,
               len * (double)(in_bytes[k] + out_bytes[k]) / s / 1e9);
    }
    CUDA_CHECK(cudaFree(x));
    CUDA_CHECK(cudaFree(y));
}

int main(int argc, char **argv) {
    const char *why;
    if (!gpu_available(&why)) { printf("bench_hadamard: no usable GPU (%s)\n", why); return 0; }
    printf("%s\n", gpu_describe());
    if (argc >= 3) {
        bench(atoi(argv[1]), atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 20);
        return 0;
    }
    static const int sizes[] = {384, 448, 1536, 2048, 2560, 3072, 4096, 5120, 7168, 8192};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) bench(8192, sizes[i], 20);
    return 0;
}
#else
int main(void) {
    printf("bench_hadamard: built without CUDA\n");
    return 0;
}
#endif
