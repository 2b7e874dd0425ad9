/* GPU availability and checked CUDA/cuBLAS calls. Built without nvcc (no MQ_CUDA), or run on a
 * machine without a GPU, gpu_available() is 0 and every caller takes its CPU path; GPU tests skip. */
#ifndef MQ_GPU_H
#define MQ_GPU_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

/* 1 when built with CUDA and a device is usable; the reason otherwise goes to *why (static text). */
int gpu_available(const char **why);
/* One-line description of device 0 ("NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.6 GiB"). */
const char *gpu_describe(void);
/* cudaMalloc that reports instead of exiting (running out of GPU memory is a user-level error):
 * 0, or -1 + "GPU: cannot allocate N MiB for <what>: <CUDA's reason>" with *p NULL. CUDA builds. */
int gpu_malloc(void **p, size_t bytes, const char *what);
/* Device-to-device cudaMemcpy rate in TB/s, counting bytes read + written (the bandwidth a kernel
 * that streams its operands once can hope for): median of 5 copies of `bytes` after a warm-up.
 * 0 when the buffers cannot be allocated. For the benchmarks' bandwidth floors. CUDA builds. */
double gpu_copy_tbps(size_t bytes);

#ifdef __cplusplus
}
#endif

#if defined(MQ_CUDA) && (defined(__CUDACC__) || defined(MQ_WANT_CUDA_CHECK))
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
/* llm.c's cudaCheck: print file:line and the CUDA error, then exit. For GPU code paths only. */
#define CUDA_CHECK(call)                                                                    \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) {                                                            \
            fprintf(stderr, "mambaq: CUDA error at %s:%d: %s (%s)\n", __FILE__, __LINE__,   \
                    cudaGetErrorString(e_), #call);                                         \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)
/* After a kernel launch: catches launch-configuration errors at the launch site. */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
#define CUBLAS_CHECK(call)                                                                  \
    do {                                                                                    \
        int s_ = (int)(call);                                                               \
        if (s_ != 0) {                                                                      \
            fprintf(stderr, "mambaq: cuBLAS error %d at %s:%d (%s)\n", s_, __FILE__, __LINE__, #call); \
            exit(1);                                                                        \
        }                                                                                   \
    } while (0)
#endif

#endif
