/* safetensors reader and writer.
 * The reader reads each file whole into memory it owns (no mmap: a truncated file cannot fault
 * later), parses the JSON header with cJSON and validates every dtype, shape and offset against
 * the file size before any tensor is exposed. A model directory may hold one
 * model.safetensors or shards listed in model.safetensors.index.json (or, read by pt.h, the
 * pickled pytorch_model.bin of torch.save); st_open hides the difference.
 * The writer (used by export and by tests) writes to a temporary name and renames when complete. */
#ifndef MQ_ST_H
#define MQ_ST_H
#include <stddef.h>
#include <stdint.h>
#include "core/dtype.h"
#ifdef __cplusplus
extern "C" {
#endif


typedef struct {
    const char *name;          /* owned by the st_file */
    mq_dtype dtype;
    int ndim;
    int64_t shape[MQ_MAX_DIMS];
    int64_t numel;
    const void *data;          /* points into the file's bytes; valid until st_close; may be
                                  unaligned (read multi-byte values with memcpy or st_to_f32) */
    size_t nbytes;
    const char *file;          /* path of the shard holding it */
} st_tensor;

typedef struct st_file st_file; /* opaque */

/* path: a .safetensors file, a model.safetensors.index.json, or a directory holding either; also
 * a torch.save pytorch_model.bin (or its pytorch_model.bin.index.json), read through pt.h, which
 * a directory falls back to when it has no safetensors. Metadata then is empty.
 * Returns NULL and sets mq_errmsg() (naming the file and the problem) on any error. */
st_file *st_open(const char *path);
/* The same for a safetensors (or, when name ends in .bin, torch.save) file already in memory: data
 * is copied; name is used for messages. For the fuzzers and tests. */
st_file *st_open_buffer(const void *data, size_t n, const char *name);
void st_close(st_file *f);
/* The file st_open resolved (the .safetensors file or the index), for messages. */
const char *st_path(const st_file *f);

int st_count(const st_file *f);
const st_tensor *st_get(const st_file *f, int i);
const st_tensor *st_find(const st_file *f, const char *name);      /* NULL if absent */
/* __metadata__ string value of the first file (NULL if absent). */
const char *st_metadata(const st_file *f, const char *key);

/* Convert any float dtype (F32/F16/BF16) to FP32 into dst[numel]. -1 + error for other dtypes, and
 * for a tensor holding NaN or Inf (st_check_finite's message): no non-finite value enters a model. */
int st_to_f32(const st_tensor *t, float *dst);
/* NaN/Inf elements of a float tensor (0 for other dtypes); the first one's flat index and value. */
int64_t st_count_nonfinite(const st_tensor *t, int64_t *first, float *value);
/* 0, or -1 + "<file>: tensor '<name>': N non-finite values (NaN or Inf), the first at [i, j] = nan". */
int st_check_finite(const st_tensor *t);

/* Half-precision helpers (IEEE binary16 and bfloat16), round-to-nearest-even. */
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_f16(float f);
float st_bf16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);

/* ---- writer ---- */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
/* The writer copies `data` (numel * dtype size bytes). Names must be unique. Float data with NaN or
 * Inf is refused (mambaq never writes one) unless st_writer_allow_nonfinite (tests of the readers). */
int st_writer_add(st_writer *w, const char *name, mq_dtype dtype, int ndim, const int64_t *shape,
                  const void *data);
void st_writer_allow_nonfinite(st_writer *w);
int st_writer_add_metadata(st_writer *w, const char *key, const char *value);
/* Writes path atomically, replacing it (an unnamed temporary linked into place, core/fio.h: a
 * killed writer leaves nothing). Tensors are stored in the order added, 8-byte aligned header as the
 * format recommends. */
int st_writer_write(st_writer *w, const char *path);
/* For tests: called (when set) with the complete temporary written, just before it is committed. */
extern void (*st_test_before_commit)(const char *path);
void st_writer_free(st_writer *w);

#ifdef __cplusplus
}
#endif
#endif
