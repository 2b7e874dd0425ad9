/* Element types, shared by the file readers (safetensors, torch.save) and the activation hooks of
 * every forward, so a tensor on disk and an activation in flight are described the same way. */
#ifndef MQ_DTYPE_H
#define MQ_DTYPE_H
#include <stddef.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef enum { MQ_F32, MQ_F16, MQ_BF16, MQ_I8, MQ_I32, MQ_I64, MQ_U8, MQ_NDTYPES } mq_dtype;

#define MQ_MAX_DIMS 8

const char *mq_dtype_name(mq_dtype t);                   /* "F32", ... ("?" when invalid) */
size_t mq_dtype_size(mq_dtype t);                        /* bytes per element, 0 when invalid */
int mq_dtype_from_name(const char *name, mq_dtype *out); /* -1 if unknown */

#ifdef __cplusplus
}
#endif
#endif
