/* gpu_available() for builds without CUDA; the CUDA build uses core/gpu_cuda.cu instead. */
#include "core/gpu.h"
#ifndef MQ_CUDA
int gpu_available(const char **why) {
    if (why) *why = "built without CUDA (nvcc not found)";
    return 0;
}
const char *gpu_describe(void) { return "no GPU (built without CUDA)"; }
double gpu_copy_tbps(size_t bytes) { return 0; }   /* the benchmarks link without CUDA too */
#endif
