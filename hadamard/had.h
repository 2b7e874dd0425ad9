/* Normalized Hadamard transforms of order n = m * 2^k, m in {1, 12, 20, 28}: the rotation Quamba
 * applies to the SSM output y before out_proj (its inverse is fused into out_proj's weights).
 * CPU reference and dense matrix here; CUDA kernels (FP32, FP16, FP16 -> int8) under MQ_CUDA.
 *
 * The matrix. H_n = (A_m (x) S_P) / sqrt(n), P = 2^k, where (x) is the Kronecker product, A_m the
 * +-1 block of had_sign.h (Paley constructions) and S_P the Sylvester matrix,
 * S_P[b][c] = (-1)^popcount(b & c). Element t of a row is split as t = a * P + b (a < m, b < P):
 *     H[a*P + b][a'*P + b'] = A_m[a][a'] * S_P[b][b'] / sqrt(n).
 * H is symmetric (H = H^T) and orthogonal (H H^T = I), so H^-1 = H^T = H: applying the transform
 * twice gives the input back, and there is no separate inverse call.
 *
 * The transform. had_transform_f32 replaces every row x (a row vector) by  x H^T  (= x H), i.e. the
 * column vector by H x. Fusing into out_proj (PyTorch layout W[out x in], out = W y): with the
 * rotated activation y' = H y, use W' = W H^T, i.e. run had_transform_f32 over the rows of W;
 * then W' y' = W H^T H y = W y. */
#ifndef MQ_HAD_H
#define MQ_HAD_H
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/* Largest order the GPU kernels take (a row lives in one thread block). */
#define HAD_CUDA_MAX_N 16384

/* n = m * 2^k with m in {1, 12, 20, 28}: sets *m and *k (either may be NULL) and returns 0, or
 * returns -1 with an mq_fail message naming n for any other n (0, negative, 36, 100, ...). */
int had_factor(int n, int *m, int *k);

/* The normalized dense n x n matrix H above, row-major; NULL + mq_fail for an unsupported n or
 * n > 16384 (1 GiB). The caller frees it with free(). */
float *had_dense(int n);

/* In place, for each of the `rows` rows of x[rows x n] (row-major, contiguous): x_row <- x_row H^T
 * (= x_row H). O(n log n + n m) per row, OpenMP over rows. Returns 0, or -1 + mq_fail. */
int had_transform_f32(float *x, int rows, int n);

/* CPU reference of the fused GPU quantizer: q_row = quant(x_row H^T) with qr_quant_i8's rule
 * (core/qrule.h): clamp(rint(v / scale), -127, 127), half to even. x is not modified. scale > 0. */
int had_transform_quant_f32(const float *x, int8_t *q, int rows, int n, float scale);

#ifdef MQ_CUDA
/* GPU versions on device pointers, enqueued on `stream` (a cudaStream_t; NULL = default stream),
 * asynchronous like a kernel launch. Rows are contiguous [rows x n]; n <= HAD_CUDA_MAX_N; pointers
 * 16-byte aligned (cudaMalloc's are). y == x (in place) or disjoint. The arithmetic is FP32 in
 * registers; FP16 data is read and written as IEEE half (round to nearest even on output).
 * Return 0, or -1 + mq_fail for bad arguments; a CUDA launch error exits (CUDA_CHECK_LAUNCH). */
int had_cuda_transform_f32(const float *x, float *y, int rows, int n, void *stream);
int had_cuda_transform_f16(const void *x, void *y, int rows, int n, void *stream);
/* Fused: FP16 rows x -> q = quant(x_row H^T) as int8 [rows x n], with qr_quant_i8's rule on the
 * FP32 value (the same as had_transform_quant_f32 on x converted to float, up to FP32 summation
 * order). For the SSM output y before the int8 out_proj. */
int had_cuda_transform_quant_f16(const void *x, int8_t *q, int rows, int n, float scale, void *stream);
#endif

#ifdef __cplusplus
}
#endif
#endif
