/* Element type names and sizes (core/dtype.h). */
#include "core/dtype.h"
#include <string.h>

static const struct { const char *name; size_t size; } dtypes[MQ_NDTYPES] = {
    [MQ_F32] = {"F32", 4}, [MQ_F16] = {"F16", 2}, [MQ_BF16] = {"BF16", 2}, [MQ_I8] = {"I8", 1},
    [MQ_I32] = {"I32", 4}, [MQ_I64] = {"I64", 8}, [MQ_U8] = {"U8", 1},
};

const char *mq_dtype_name(mq_dtype t) { return (unsigned)t < MQ_NDTYPES ? dtypes[t].name : "?"; }
size_t mq_dtype_size(mq_dtype t) { return (unsigned)t < MQ_NDTYPES ? dtypes[t].size : 0; }

int mq_dtype_from_name(const char *name, mq_dtype *out) {
    for (int i = 0; i < MQ_NDTYPES; i++)
        if (!strcmp(name, dtypes[i].name)) { *out = (mq_dtype)i; return 0; }
    return -1;
}
