/* gpu_available() for CUDA builds: a device must exist and answer; the result is cached. */
#include <cuda_runtime.h>
#include <stdio.h>
#include "core/err.h"
#include "core/gpu.h"

static int g_state = -1;  /* -1 unknown, 0 none, 1 usable */
static const char *g_why = "";
static char g_desc[640];  /* room for the longest formatted description */

extern "C" int gpu_available(const char **why) {
    if (g_state < 0) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess || n == 0) {
            g_state = 0;
            g_why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
            cudaGetLastError();
        } else {
            cudaDeviceProp p;
            g_state = cudaGetDeviceProperties(&p, 0) == cudaSuccess;
            if (g_state)
                snprintf(g_desc, sizeof g_desc, "%s, sm_%d%d, %d SMs, %.1f GiB", p.name, p.major, p.minor,
                         p.multiProcessorCount, p.totalGlobalMem / 1073741824.0);
            else
                g_why = "cudaGetDeviceProperties failed";
        }
    }
    if (why) *why = g_why;
    return g_state;
}

extern "C" const char *gpu_describe(void) {
    return gpu_available(NULL) ? g_desc : "no GPU";
}

extern "C" int gpu_malloc(void **p, size_t n, const char *what) {
    cudaError_t e = cudaMalloc(p, n ? n : 1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return mq_fail("GPU: cannot allocate %.1f MiB for %s: %s", n / 1048576.0, what, cudaGetErrorString(e));
    }
    return 0;
}

extern "C" double gpu_copy_tbps(size_t bytes) {
    void *a = NULL, *b = NULL;
    if (gpu_malloc(&a, bytes, "the copy-rate probe") || gpu_malloc(&b, bytes, "the copy-rate probe")) {
        cudaFree(a);
        return 0;
    }
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float ms[6];
    for (int r = 0; r < 6; r++) { /* r = 0 warms up */
        CUDA_CHECK(cudaEventRecord(e0));
        CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        CUDA_CHECK(cudaEventRecord(e1));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&ms[r], e0, e1));
    }
    for (int i = 1; i < 6; i++) /* insertion sort of the 5 timed copies */
        for (int j = i; j > 1 && ms[j] < ms[j - 1]; j--) { float t = ms[j]; ms[j] = ms[j - 1]; ms[j - 1] = t; }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    return 2.0 * bytes / (ms[3] * 1e-3) / 1e12;
}
