/* SHA-256: the FIPS 180-2 / NIST example vectors, streaming in odd-sized pieces equal to one shot,
 * hash_file against a known digest of a file we write, and the weight hash's invariances. */
#include "tests/test.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/st.h"

static void check_hex(const char *msg, size_t n, const char *want) {
    char hex[HASH_HEX_LEN];
    hash_buffer_hex(msg, n, hex);
    T_CHECK(!strcmp(hex, want), "sha256 of %zu bytes: got %s want %s", n, hex, want);
}

static void test_sha256_vectors(void) {
    check_hex("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    check_hex("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check_hex(m448, strlen(m448), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    check_hex(m896, strlen(m896), "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    /* one million 'a', fed in pieces of 1000 */
    hash_sha256 s;
    hash_init(&s);
    char a[1000];
    memset(a, 'a', sizeof a);
    for (int i = 0; i < 1000; i++) hash_update(&s, a, sizeof a);
    uint8_t d[32];
    char hex[HASH_HEX_LEN];
    hash_final(&s, d);
    hash_hex(d, hex);
    T_CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "million a: %s", hex);
}

/* Lengths around the 55/56/64-byte padding boundaries, split at every point, equal one-shot. */
static void test_sha256_streaming(void) {
    uint8_t buf[200];
    for (int i = 0; i < 200; i++) buf[i] = (uint8_t)(i * 37 + 11);
    int bad = 0;
    for (int n = 0; n <= 130; n++) {
        char one[HASH_HEX_LEN];
        hash_buffer_hex(buf, (size_t)n, one);
        for (int cut = 0; cut <= n; cut += (n > 20 ? 7 : 1)) {
            hash_sha256 s;
            uint8_t d[32];
            char two[HASH_HEX_LEN];
            hash_init(&s);
            hash_update(&s, buf, (size_t)cut);
            hash_update(&s, buf + cut, (size_t)(n - cut));
            hash_final(&s, d);
            hash_hex(d, two);
            bad += strcmp(one, two) != 0;
        }
    }
    T_CHECK(bad == 0, "%d split streams differ from one-shot", bad);
    /* 55, 56 and 64 bytes of 'a' (padding fits / does not fit in the last block) */
    char a[64];
    memset(a, 'a', sizeof a);
    check_hex(a, 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
    check_hex(a, 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
    check_hex(a, 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

static void test_hash_file(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/hash.txt", t_tmpdir());
    T_CHECK(mq_write_file_atomic(path, "abc", 3) == 0, "%s", mq_errmsg());
    char hex[HASH_HEX_LEN];
    T_CHECK(hash_file(path, hex) == 0, "%s", mq_errmsg());
    T_CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "file hash %s", hex);
    T_CHECK(hash_file("/nonexistent/x.txt", hex) == -1, "missing file must fail");
    T_CHECK(strstr(mq_errmsg(), "/nonexistent/x.txt") != NULL, "message names the file: %s", mq_errmsg());
}

/* writes tensors a (F32 [2,3]) and b (I32 [4]) in the given order with some metadata */
static void write_model(const char *path, int b_first, const char *meta, float a0, mq_dtype bt) {
    float a[6] = {a0, 2, 3, 4, 5, 6};
    int32_t b[4] = {7, 8, 9, 10};
    int64_t sa[2] = {2, 3}, sb[1] = {4};
    st_writer *w = st_writer_new();
    if (b_first) st_writer_add(w, "b", bt, 1, sb, b);
    st_writer_add(w, "a", MQ_F32, 2, sa, a);
    if (!b_first) st_writer_add(w, "b", bt, 1, sb, b);
    st_writer_add_metadata(w, "note", meta);
    T_CHECK(st_writer_write(w, path) == 0, "%s", mq_errmsg());
    st_writer_free(w);
}

static void test_model_hash(void) {
    char p1[512], p2[512], p3[512], p4[512];
    snprintf(p1, sizeof p1, "%s/m1.safetensors", t_tmpdir());
    snprintf(p2, sizeof p2, "%s/m2.safetensors", t_tmpdir());
    snprintf(p3, sizeof p3, "%s/m3.safetensors", t_tmpdir());
    snprintf(p4, sizeof p4, "%s/m4.safetensors", t_tmpdir());
    write_model(p1, 0, "one", 1, MQ_I32);
    write_model(p2, 1, "two", 1, MQ_I32);          /* other order, other metadata: same identity */
    write_model(p3, 0, "one", 1.0000001f, MQ_I32); /* one weight bit differs */
    write_model(p4, 0, "one", 1, MQ_F32);          /* same bytes, other dtype */
    char h1[HASH_HEX_LEN], h2[HASH_HEX_LEN], h3[HASH_HEX_LEN], h4[HASH_HEX_LEN];
    T_CHECK(hash_model_weights(p1, h1) == 0 && hash_model_weights(p2, h2) == 0 && hash_model_weights(p3, h3) == 0 &&
            hash_model_weights(p4, h4) == 0, "%s", mq_errmsg());
    T_CHECK(!strcmp(h1, h2), "order and metadata must not matter: %s vs %s", h1, h2);
    T_CHECK(strcmp(h1, h3) != 0, "a changed weight must change the hash");
    T_CHECK(strcmp(h1, h4) != 0, "a changed dtype must change the hash");
    T_CHECK(hash_model_weights("/nonexistent-model", h1) == -1 && strstr(mq_errmsg(), "/nonexistent-model"), "%s", mq_errmsg());
    /* the sharded proxy checkpoint, when present: hashing is deterministic */
    const char *dir = t_shared("models/mamba1-proxy");
    if (dir) {
        char d[4096];
        snprintf(d, sizeof d, "%s", dir);
        T_CHECK(hash_model_weights(d, h1) == 0 && hash_model_weights(d, h2) == 0 && !strcmp(h1, h2), "%s", mq_errmsg());
    }
}

int main(void) {
    T_RUN(test_sha256_vectors);
    T_RUN(test_sha256_streaming);
    T_RUN(test_hash_file);
    T_RUN(test_model_hash);
    return t_summary();
}
