/* Reader of PyTorch checkpoints written by torch.save (pytorch_model.bin, as the original
 * state-spaces Mamba checkpoints ship): a zip archive of stored (uncompressed) entries holding a
 * pickled state dict (<name>/data.pkl) and one raw little-endian file per storage (<name>/data/<key>).
 * Only what a state dict needs is understood: a minimal pickle machine that rebuilds tensors from
 * storages and never executes anything. st_open uses it; callers normally go through st.h. */
#ifndef MQ_PT_H
#define MQ_PT_H
#include <stddef.h>
#include <stdint.h>
#include "core/dtype.h"
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char *name;                     /* owned by the array (pt_free) */
    mq_dtype dtype;
    int ndim;
    int64_t shape[MQ_MAX_DIMS];
    int64_t numel;
    size_t offset, nbytes;          /* the tensor's bytes are buf[offset .. offset + nbytes) */
} pt_tensor;

/* Parses the archive in buf[len] (the mmapped file `path`, named in messages). On success
 * returns 0 and the state dict's tensors in *out[*n] (free with pt_free); tied names may share
 * bytes. -1 + mq_fail naming the file and the problem for anything malformed or unsupported. */
int pt_parse(const unsigned char *buf, size_t len, const char *path, pt_tensor **out, int *n);
void pt_free(pt_tensor *t, int n);

#ifdef __cplusplus
}
#endif
#endif
