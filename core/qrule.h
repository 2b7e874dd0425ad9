/* The quantization rule every part of mambaq shares: the CPU simulation, the weight quantizer, the
 * artifact checks and every CUDA kernel that writes an integer code, so one definition decides each
 * rounding everywhere (inline, __host__ __device__ under nvcc).
 *
 * int8, symmetric, one scale per tensor (or per channel / segment where a recipe says so):
 *     s = clip / 127                          clip = absmax or a percentile of |v|, floored at 1e-5
 *     q = clamp(rint(v / s), -127, 127)       IEEE FP32 division, rint = round half to even (the
 *                                             default rounding mode, as torch.round); NaN -> 0
 *     v' = (float)q * s                       dequantized value (one FP32 multiply)
 * -128 is never produced, so the range is symmetric and negation is exact. */
#ifndef MQ_QRULE_H
#define MQ_QRULE_H
#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define QR_HD static inline __host__ __device__
#else
#define QR_HD static inline
#endif

#define QR_QMAX 127
#define QR_MIN_CLIP 1e-5f   /* Quamba's observers clamp the absmax at 1e-5 before dividing */

/* q = clamp(rint(v / s), -127, 127); NaN gives 0, +-inf gives +-127. */
QR_HD int8_t qr_quant_i8(float v, float s) {
    float r = rintf(v / s);
    if (r != r) return 0;
    return (int8_t)fminf(fmaxf(r, -127.0f), 127.0f);
}
QR_HD float qr_deq_i8(int8_t q, float s) { return (float)q * s; }
QR_HD float qr_fake_i8(float v, float s) { return qr_deq_i8(qr_quant_i8(v, s), s); }
/* s = max(clip, 1e-5) / 127 (NaN clips take the floor; callers reject them first). */
QR_HD float qr_scale(float clip) { return (clip >= QR_MIN_CLIP ? clip : QR_MIN_CLIP) / (float)QR_QMAX; }

#endif
