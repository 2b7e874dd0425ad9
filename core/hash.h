/* SHA-256 (FIPS 180-4), streaming, for the identities that tie artifacts together: the hash of a
 * data file, and the hash of a model's weights (see hash_model_weights for exactly what is hashed),
 * so that a stats file or an artifact can refuse a model it was not made from. */
#ifndef MQ_HASH_H
#define MQ_HASH_H
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;       /* total bytes fed so far */
    uint8_t block[64];     /* pending partial block */
    size_t nblock;
} hash_sha256;

#define HASH_HEX_LEN 65    /* 64 hex digits + NUL */

void hash_init(hash_sha256 *s);
void hash_update(hash_sha256 *s, const void *data, size_t n);
/* Finishes the digest into out[32]; s must be re-initialised before reuse. */
void hash_final(hash_sha256 *s, uint8_t out[32]);
/* Lower-case hex of a 32-byte digest into hex[HASH_HEX_LEN]. */
void hash_hex(const uint8_t digest[32], char hex[HASH_HEX_LEN]);
/* One-shot digest of a buffer, as hex. */
void hash_buffer_hex(const void *data, size_t n, char hex[HASH_HEX_LEN]);

/* SHA-256 of a file's bytes, read in blocks. 0, or -1 + mq_errmsg() naming the file. */
int hash_file(const char *path, char hex[HASH_HEX_LEN]);

/* Identity of a model's weights: st_open(path) (a directory, an index or a .safetensors file),
 * then, for every tensor in byte-wise sorted name order, the SHA-256 stream receives
 *   name, '\0', dtype name ("F16"...), '\0', ndim (u32 LE), each dim (i64 LE), nbytes (u64 LE), bytes.
 * So the hash does not depend on sharding, on tensor order in the files or on metadata, but changes
 * with any name, dtype, shape or weight bit. 0, or -1 + mq_errmsg(). */
int hash_model_weights(const char *path, char hex[HASH_HEX_LEN]);

#ifdef __cplusplus
}
#endif
#endif
