/* SHA-256 after FIPS 180-4: a 64-byte block compression function fed by a small buffer, so data
 * can arrive in pieces of any size (see hash.h). Plain portable C; ~200 MB/s is plenty for
 * hashing checkpoints of a few GB once per command. */
#include "core/hash.h"
#include "core/err.h"
#include "core/fio.h"
#include "core/st.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress(uint32_t h[8], const uint8_t p[64]) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        hh = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void hash_init(hash_sha256 *s) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, iv, sizeof iv);
    s->nbytes = 0;
    s->nblock = 0;
}

void hash_update(hash_sha256 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->nbytes += n;
    if (s->nblock) {                       /* top up the pending block first */
        size_t take = 64 - s->nblock < n ? 64 - s->nblock : n;
        memcpy(s->block + s->nblock, p, take);
        s->nblock += take; p += take; n -= take;
        if (s->nblock < 64) return;
        compress(s->h, s->block);
        s->nblock = 0;
    }
    for (; n >= 64; p += 64, n -= 64) compress(s->h, p);
    memcpy(s->block, p, n);
    s->nblock = n;
}

void hash_final(hash_sha256 *s, uint8_t out[32]) {
    uint64_t bits = s->nbytes * 8;
    /* padding: 0x80, zeros up to 56 mod 64, then the bit length big-endian */
    uint8_t pad[72] = {0x80};
    size_t npad = (s->nblock < 56 ? 56 : 120) - s->nblock;
    for (int i = 0; i < 8; i++) pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
    uint64_t keep = s->nbytes;
    hash_update(s, pad, npad + 8);
    s->nbytes = keep;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (uint8_t)(s->h[i] >> (24 - 8 * j));
}

void hash_hex(const uint8_t d[32], char hex[HASH_HEX_LEN]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) { hex[2 * i] = digits[d[i] >> 4]; hex[2 * i + 1] = digits[d[i] & 15]; }
    hex[64] = 0;
}

void hash_buffer_hex(const void *data, size_t n, char hex[HASH_HEX_LEN]) {
    hash_sha256 s;
    uint8_t d[32];
    hash_init(&s);
    hash_update(&s, data, n);
    hash_final(&s, d);
    hash_hex(d, hex);
}

int hash_file(const char *path, char hex[HASH_HEX_LEN]) {
    /* a regular file, read up to the size it had when opened (never a FIFO or /dev/zero) */
    size_t size;
    int fd = fio_open_regular(path, &size);
    if (fd < 0) return -1;
    hash_sha256 s;
    hash_init(&s);
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = mq_malloc(CHUNK);
    int rc = 0;
    for (size_t off = 0; off < size && !rc; off += CHUNK) {
        size_t n = size - off < CHUNK ? size - off : CHUNK;
        rc = fio_pread_all(fd, buf, n, off, path);
        if (!rc) hash_update(&s, buf, n);
    }
    close(fd);
    free(buf);
    if (rc) return mq_fail_ctx("hashing %s", path);
    uint8_t d[32];
    hash_final(&s, d);
    hash_hex(d, hex);
    return 0;
}

static void put_le(hash_sha256 *s, uint64_t v, int bytes) {
    uint8_t b[8];
    for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
    hash_update(s, b, bytes);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const st_tensor *const *)a)->name, (*(const st_tensor *const *)b)->name);
}

int hash_model_weights(const char *path, char hex[HASH_HEX_LEN]) {
    st_file *f = st_open(path);
    if (!f) return mq_fail_ctx("hashing the weights of %s", path);
    int n = st_count(f);
    const st_tensor **t = mq_malloc((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++) t[i] = st_get(f, i);
    qsort(t, n, sizeof *t, cmp_tensor_name);   /* shard layout and file order do not matter */
    hash_sha256 s;
    hash_init(&s);
    for (int i = 0; i < n; i++) {
        const char *dt = mq_dtype_name(t[i]->dtype);
        hash_update(&s, t[i]->name, strlen(t[i]->name) + 1);
        hash_update(&s, dt, strlen(dt) + 1);
        put_le(&s, (uint64_t)t[i]->ndim, 4);
        for (int d = 0; d < t[i]->ndim; d++) put_le(&s, (uint64_t)t[i]->shape[d], 8);
        put_le(&s, (uint64_t)t[i]->nbytes, 8);
        hash_update(&s, t[i]->data, t[i]->nbytes);
    }
    uint8_t d[32];
    hash_final(&s, d);
    hash_hex(d, hex);
    free(t);
    st_close(f);
    return 0;
}
