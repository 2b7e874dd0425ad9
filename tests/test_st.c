/* Tests of the safetensors reader/writer: round trips of every dtype, half-precision conversion edge
 * cases (checked against the compiler's _Float16 where available), the shared sharded proxies, and
 * corrupted or inconsistent files written here, each of which must fail cleanly with a message
 * naming the file and the problem. */
#include "tests/test.h"
#include "core/err.h"
#include "core/st.h"
#include <stdint.h>

static const char *tpath(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", t_tmpdir(), name);
    return b;
}

/* A raw safetensors file: [u64 header length][header][data_len zero bytes]. */
static void write_raw(const char *path, uint64_t hlen_field, const char *header, size_t data_len) {
    size_t hl = strlen(header), n = 8 + hl + data_len;
    unsigned char *buf = calloc(1, n);
    memcpy(buf, &hlen_field, 8);
    memcpy(buf + 8, header, hl);
    if (mq_write_file_atomic(path, buf, n)) { printf("cannot write %s: %s\n", path, mq_errmsg()); exit(2); }
    free(buf);
}

static void write_text(const char *path, const char *text) {
    if (mq_write_file_atomic(path, text, strlen(text))) { printf("cannot write %s: %s\n", path, mq_errmsg()); exit(2); }
}

/* st_open(path) must fail, and the message must contain `file` and `what`. */
static void expect_fail(const char *path, const char *file, const char *what) {
    mq_clear_error();
    st_file *f = st_open(path);
    T_CHECK(f == NULL, "opening %s should fail with '%s'", path, what);
    if (f) { st_close(f); return; }
    const char *m = mq_errmsg();
    T_CHECK(strstr(m, file) != NULL, "message names the file %s: %s", file, m);
    T_CHECK(strstr(m, what) != NULL, "message says '%s': %s", what, m);
}

static void test_roundtrip_all_dtypes(void) {
    float f32[6] = {1.5f, -2.25f, 0.0f, 3e-8f, 65504.0f, -1e30f};
    uint16_t f16[4] = {0x3c00, 0xc000, 0x7c00, 0x0001}, bf16[3] = {0x3f80, 0xbf80, 0x7f80};
    int8_t i8[5] = {-128, -1, 0, 1, 127};
    int32_t i32[2] = {-2147483647 - 1, 2147483647};
    int64_t i64[2] = {-5, (int64_t)1 << 40};
    uint8_t u8[3] = {0, 128, 255};
    float scalar = 42.0f;
    const struct { const char *name; mq_dtype dt; int ndim; int64_t shape[3]; const void *data; } ts[] = {
        {"w.f32", MQ_F32, 2, {2, 3}, f32},  {"w.f16", MQ_F16, 2, {2, 2}, f16}, {"w.bf16", MQ_BF16, 1, {3}, bf16},
        {"w.i8", MQ_I8, 1, {5}, i8},        {"w.i32", MQ_I32, 1, {2}, i32},    {"w.i64", MQ_I64, 2, {1, 2}, i64},
        {"w.u8", MQ_U8, 3, {1, 3, 1}, u8},  {"scalar", MQ_F32, 0, {0}, &scalar}, {"empty", MQ_F16, 2, {0, 7}, NULL},
    };
    int nt = (int)(sizeof ts / sizeof ts[0]);
    st_writer *w = st_writer_new();
    /* the writer refuses the Inf of w.f16 unless told this file is for reading tests */
    T_CHECK(st_writer_add(w, "w.f16", MQ_F16, 2, ts[1].shape, f16) == -1 && strstr(mq_errmsg(), "w.f16") &&
                strstr(mq_errmsg(), "[1, 0] = inf"), "non-finite write refused: %s", mq_errmsg());
    st_writer_allow_nonfinite(w);
    for (int i = 0; i < nt; i++)
        T_CHECK(st_writer_add(w, ts[i].name, ts[i].dt, ts[i].ndim, ts[i].shape, ts[i].data) == 0, "%s", mq_errmsg());
    T_CHECK(st_writer_add(w, "w.i8", MQ_I8, 1, ts[3].shape, i8) == -1, "duplicate name must be refused");
    st_writer_add_metadata(w, "format", "pt");
    st_writer_add_metadata(w, "note", "quote \" and \\ survive");
    const char *path = tpath("all.safetensors");
    T_CHECK(st_writer_write(w, path) == 0, "%s", mq_errmsg());
    st_writer_free(w);
    T_CHECK(access(tpath("all.safetensors.tmp"), F_OK) != 0, "no temporary left behind");

    st_file *f = st_open(path);
    T_CHECK(f != NULL, "%s", mq_errmsg());
    if (!f) return;
    T_CHECK(st_count(f) == nt, "count %d", st_count(f));
    for (int i = 0; i < nt && i < st_count(f); i++) {
        const st_tensor *t = st_get(f, i);
        T_CHECK(!strcmp(t->name, ts[i].name), "order kept: %s vs %s", t->name, ts[i].name);
        T_CHECK(st_find(f, ts[i].name) == t, "st_find %s", ts[i].name);
        T_CHECK(t->dtype == ts[i].dt && t->ndim == ts[i].ndim, "%s dtype/ndim", t->name);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) { T_CHECK(t->shape[d] == ts[i].shape[d], "%s dim %d", t->name, d); numel *= ts[i].shape[d]; }
        T_CHECK(t->numel == numel && t->nbytes == (size_t)numel * mq_dtype_size(t->dtype), "%s size", t->name);
        T_CHECK(!numel || !memcmp(t->data, ts[i].data, t->nbytes), "%s bytes", t->name);
        T_CHECK(!strcmp(t->file, path), "file %s", t->file);
    }
    T_CHECK(st_find(f, "absent") == NULL, "absent name");
    T_CHECK(st_metadata(f, "format") && !strcmp(st_metadata(f, "format"), "pt"), "metadata format");
    T_CHECK(st_metadata(f, "note") && !strcmp(st_metadata(f, "note"), "quote \" and \\ survive"), "metadata escaping");
    T_CHECK(st_metadata(f, "nope") == NULL, "absent metadata");
    float back[6];
    T_CHECK(st_to_f32(st_find(f, "w.f32"), back) == 0 && !memcmp(back, f32, sizeof f32), "f32 to f32");
    /* an Inf (or NaN) never enters FP32: refused with the tensor, the index and the value */
    T_CHECK(st_to_f32(st_find(f, "w.f16"), back) == -1 && strstr(mq_errmsg(), "w.f16") && strstr(mq_errmsg(), "[1, 0] = inf") &&
                strstr(mq_errmsg(), path), "f16 inf refused: %s", mq_errmsg());
    T_CHECK(st_to_f32(st_find(f, "w.bf16"), back) == -1 && strstr(mq_errmsg(), "1 non-finite value") && strstr(mq_errmsg(), "[2] = inf"),
            "bf16 inf refused: %s", mq_errmsg());
    T_CHECK(st_count_nonfinite(st_find(f, "w.f32"), NULL, NULL) == 0 && st_count_nonfinite(st_find(f, "w.i8"), NULL, NULL) == 0,
            "finite and integer tensors have no non-finite values");
    T_CHECK(st_to_f32(st_find(f, "w.i8"), back) == -1 && strstr(mq_errmsg(), "w.i8"), "int to f32 refused: %s", mq_errmsg());
    st_close(f);

    /* the data section starts 8-byte aligned */
    FILE *fp = fopen(path, "rb");
    uint64_t hl = 0;
    T_CHECK(fp && fread(&hl, 8, 1, fp) == 1 && hl % 8 == 0, "header length %llu is a multiple of 8", (unsigned long long)hl);
    if (fp) fclose(fp);
}

static void test_writer_errors(void) {
    st_writer *w = st_writer_new();
    int64_t shape[2] = {2, -1};
    float x[4] = {0};
    T_CHECK(st_writer_add(w, "neg", MQ_F32, 2, shape, x) == -1 && strstr(mq_errmsg(), "neg"), "negative dim: %s", mq_errmsg());
    T_CHECK(st_writer_add(w, "__metadata__", MQ_F32, 0, shape, x) == -1, "reserved name");
    shape[1] = 2;
    T_CHECK(st_writer_add(w, "ok", MQ_F32, 2, shape, x) == 0, "%s", mq_errmsg());
    T_CHECK(st_writer_write(w, "/nonexistent-dir/x.safetensors") == -1 && strstr(mq_errmsg(), "/nonexistent-dir/x.safetensors"),
            "unwritable: %s", mq_errmsg());
    /* overwriting an existing file replaces it whole */
    const char *p = tpath("over.safetensors");
    write_text(p, "old contents");
    T_CHECK(st_writer_write(w, p) == 0, "%s", mq_errmsg());
    st_file *f = st_open(p);
    T_CHECK(f && st_count(f) == 1, "replaced file opens: %s", mq_errmsg());
    st_close(f);
    st_writer_free(w);
}

static void test_f16_conversion(void) {
    /* decoding: zeros, normals, extremes, subnormals, inf, nan */
    T_CHECK(st_f16_to_f32(0x0000) == 0.0f && !signbit(st_f16_to_f32(0x0000)), "+0");
    T_CHECK(st_f16_to_f32(0x8000) == 0.0f && signbit(st_f16_to_f32(0x8000)), "-0");
    T_CHECK(st_f16_to_f32(0x3c00) == 1.0f && st_f16_to_f32(0xc000) == -2.0f, "1, -2");
    T_CHECK(st_f16_to_f32(0x7bff) == 65504.0f, "max finite");
    T_CHECK(st_f16_to_f32(0x0400) == 0x1p-14f, "min normal");
    T_CHECK(st_f16_to_f32(0x0001) == 0x1p-24f && st_f16_to_f32(0x8001) == -0x1p-24f, "min subnormal");
    T_CHECK(st_f16_to_f32(0x03ff) == 1023 * 0x1p-24f, "max subnormal");
    T_CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0xfc00) < 0, "inf");
    T_CHECK(isnan(st_f16_to_f32(0x7e00)) && isnan(st_f16_to_f32(0x7c01)), "nan (quiet and signalling)");
    T_CHECK(st_f16_to_f32(0x3555) == 0x1.554p-2f, "0x3555 = 0.33325195");

    /* encoding with round-to-nearest-even */
    T_CHECK(st_f32_to_f16(65504.0f) == 0x7bff, "max finite");
    T_CHECK(st_f32_to_f16(65519.996f) == 0x7bff, "just below the inf threshold");
    T_CHECK(st_f32_to_f16(65520.0f) == 0x7c00, "halfway to 65536 rounds to inf");
    T_CHECK(st_f32_to_f16(1e10f) == 0x7c00 && st_f32_to_f16(-INFINITY) == 0xfc00, "overflow, -inf");
    T_CHECK(st_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00, "tie rounds to even (down)");
    T_CHECK(st_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02, "tie rounds to even (up)");
    T_CHECK(st_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f) == 0x3c01, "above the tie rounds up");
    T_CHECK(st_f32_to_f16(0x1p-25f) == 0x0000, "2^-25 is a tie to zero");
    T_CHECK(st_f32_to_f16(0x1.0002p-25f) == 0x0001, "just above 2^-25 rounds to the min subnormal");
    T_CHECK(st_f32_to_f16(3 * 0x1p-25f) == 0x0002, "1.5 ulp ties to 2");
    T_CHECK(st_f32_to_f16(0x1.ff8p-15f) == 0x03ff && st_f32_to_f16(0x1.ffbp-15f) == 0x03ff, "max subnormal");
    T_CHECK(st_f32_to_f16(0x1.ffcp-15f) == 0x0400, "tie above the max subnormal carries into the min normal");
    T_CHECK(st_f32_to_f16(0x1p-149f) == 0x0000 && st_f32_to_f16(-0x1p-149f) == 0x8000, "f32 subnormal -> signed zero");
    T_CHECK(st_f32_to_f16(-0.0f) == 0x8000, "-0");
    uint16_t hn = st_f32_to_f16(NAN);
    T_CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff), "nan stays nan: %04x", hn);

    /* every finite half survives a round trip through f32 */
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        if (st_f32_to_f16(st_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    T_CHECK(bad == 0, "%d halves do not round-trip", bad);
#ifdef __FLT16_MAX__
    /* against the compiler's conversion (IEEE, round-to-nearest-even) on ~4M spread bit patterns */
    int mism = 0;
    for (uint64_t u = 0; u < 0x100000000ull; u += 1021) {
        uint32_t b = (uint32_t)u;
        float f;
        memcpy(&f, &b, 4);
        if (isnan(f)) continue;
        _Float16 r = (_Float16)f;
        uint16_t want;
        memcpy(&want, &r, 2);
        if (st_f32_to_f16(f) != want && mism++ < 3) printf("    f32 %08x: got %04x want %04x\n", b, st_f32_to_f16(f), want);
        if (st_f16_to_f32(want) != (float)r && mism++ < 3) printf("    f16 %04x decodes wrong\n", want);
    }
    T_CHECK(mism == 0, "%d mismatches against _Float16", mism);
#endif
}

static void test_bf16_conversion(void) {
    T_CHECK(st_bf16_to_f32(0x3f80) == 1.0f && st_bf16_to_f32(0xc040) == -3.0f, "1, -3");
    T_CHECK(st_f32_to_bf16(1.0f) == 0x3f80, "1.0");
    T_CHECK(st_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80, "tie rounds to even (down)");
    T_CHECK(st_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82, "tie rounds to even (up)");
    T_CHECK(st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "above the tie rounds up");
    T_CHECK(st_f32_to_bf16(0x1.fffffep127f) == 0x7f80, "max f32 rounds to inf");
    T_CHECK(st_f32_to_bf16(INFINITY) == 0x7f80 && st_f32_to_bf16(-INFINITY) == 0xff80, "inf");
    T_CHECK(st_f32_to_bf16(0x1p-133f) == 0x0001 && st_bf16_to_f32(0x0001) == 0x1p-133f, "subnormal");
    T_CHECK(st_f32_to_bf16(-0.0f) == 0x8000, "-0");
    uint32_t snan = 0x7f800001;  /* payload only in the low bits: must not collapse to inf */
    float fs;
    memcpy(&fs, &snan, 4);
    T_CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(fs))) && isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))), "nan stays nan");
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        if (st_f32_to_bf16(st_bf16_to_f32((uint16_t)h)) != h) bad++;
    }
    T_CHECK(bad == 0, "%d bf16 values do not round-trip", bad);
}

static void test_corrupt_files(void) {
    const char *p;
    p = tpath("tiny.safetensors");
    write_text(p, "abc");
    expect_fail(p, "tiny.safetensors", "truncated");

    p = tpath("hlen.safetensors");
    write_raw(p, 4096, "{}", 0);
    expect_fail(p, "hlen.safetensors", "beyond the file size");
    write_raw(p, (uint64_t)-1, "{}", 0);
    expect_fail(p, "hlen.safetensors", "beyond the file size");

    p = tpath("json.safetensors");
    const char *bad = "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], ";
    write_raw(p, strlen(bad), bad, 4);
    expect_fail(p, "json.safetensors", "bad JSON");
    bad = "[1, 2]  ";
    write_raw(p, strlen(bad), bad, 0);
    expect_fail(p, "json.safetensors", "bad JSON");
    bad = "{} xx";
    write_raw(p, strlen(bad), bad, 0);
    expect_fail(p, "json.safetensors", "bad JSON");

    /* a good file cut short inside its data */
    st_writer *w = st_writer_new();
    float x[64] = {0};
    int64_t shape[1] = {64};
    st_writer_add(w, "x", MQ_F32, 1, shape, x);
    p = tpath("cut.safetensors");
    st_writer_write(w, p);
    st_writer_free(w);
    struct stat sb;
    stat(p, &sb);
    T_CHECK(truncate(p, sb.st_size - 16) == 0, "truncate");
    expect_fail(p, "cut.safetensors", "outside the data section");

    const struct { const char *header; size_t data; const char *what; } cases[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "outside the data section"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "end before begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "size mismatch"},
        {"{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "unsupported dtype 'F64'"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "shape[0] is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "overflow"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "data_offsets"},
        {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "shape"},
        {"{\"a\":[1]}", 4, "not an object"},
        {"{\"__metadata__\":{\"k\":1}}", 0, "__metadata__"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor name 'a'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "case%zu.safetensors", i);
        p = tpath(name);
        write_raw(p, strlen(cases[i].header), cases[i].header, cases[i].data);
        expect_fail(p, name, cases[i].what);
    }
    /* zero-size tensors may share an offset, and padding spaces after the JSON are allowed */
    p = tpath("zero.safetensors");
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},\"b\":{\"dtype\":\"I8\",\"shape\":[4],\"data_offsets\":[0,4]}}    ";
    write_raw(p, strlen(ok), ok, 4);
    st_file *f = st_open(p);
    T_CHECK(f && st_count(f) == 2, "zero-size tensor inside another's range is fine: %s", mq_errmsg());
    st_close(f);
    expect_fail(tpath("does-not-exist.safetensors"), "does-not-exist.safetensors", "cannot open");
}

/* Random damage to a valid file (flipped bytes in the header, cut lengths): st_open either fails
 * with a message or succeeds with tensors whose bytes can all be read; under ASan nothing may go
 * out of bounds. 3000 variants, deterministic. */
static void test_fuzz_headers(void) {
    st_writer *w = st_writer_new();
    float a[12];
    uint16_t h[5] = {1, 2, 3, 4, 5};
    for (int i = 0; i < 12; i++) a[i] = (float)i;
    int64_t s1[2] = {3, 4}, s2[1] = {5};
    st_writer_add(w, "alpha.weight", MQ_F32, 2, s1, a);
    st_writer_add(w, "beta", MQ_BF16, 1, s2, h);
    st_writer_add_metadata(w, "format", "pt");
    const char *good = tpath("fuzz-src.safetensors"), *p = tpath("fuzz.safetensors");
    st_writer_write(w, good);
    st_writer_free(w);
    size_t n = 0;
    unsigned char *src = (unsigned char *)mq_read_file(good, &n);
    unsigned char *buf = malloc(n);
    uint32_t r = 7;
    int opened = 0, failed = 0, bad_msg = 0;
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, src, n);
        size_t len = n;
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            r = r * 1103515245u + 12345u;
            size_t at = (r >> 8) % (n < 200 ? n : 200);  /* the length field and the JSON */
            r = r * 1103515245u + 12345u;
            buf[at] = (it % 3 == 0) ? (unsigned char)"{}[]\",:0123456789-e. "[(r >> 8) % 22] : (unsigned char)(r >> 16);
        }
        if (it % 5 == 0) { r = r * 1103515245u + 12345u; len = (r >> 8) % (n + 1); }
        unlink(p); /* overwriting by truncation would make ext4 flush every file (auto_da_alloc) */
        FILE *fp = fopen(p, "wb");
        if (!fp || fwrite(buf, 1, len, fp) != len) { T_CHECK(0, "cannot write %s", p); if (fp) fclose(fp); break; }
        fclose(fp);
        mq_clear_error();
        st_file *f = st_open(p);
        if (!f) {
            failed++;
            bad_msg += strstr(mq_errmsg(), "fuzz.safetensors") == NULL;
            continue;
        }
        opened++;
        volatile unsigned sum = 0;
        for (int i = 0; i < st_count(f); i++) {
            const st_tensor *t = st_get(f, i);
            for (size_t b = 0; b < t->nbytes; b++) sum += ((const unsigned char *)t->data)[b];
        }
        st_close(f);
    }
    T_CHECK(failed > 1000 && bad_msg == 0, "%d failed, %d without the file name in the message (%d opened)", failed, bad_msg, opened);
    free(buf);
    free(src);
}

/* Two shards and an index in dir; `index` is the JSON text of the index. */
static void make_sharded(const char *dir, const char *index) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0) exit(2);
    float a[3] = {1, 2, 3}, b[2] = {4, 5}, c[1] = {6};
    int64_t s3[1] = {3}, s2[1] = {2}, s1[1] = {1};
    char p[600];
    st_writer *w = st_writer_new();
    st_writer_add(w, "a", MQ_F32, 1, s3, a);
    st_writer_add_metadata(w, "format", "pt");
    snprintf(p, sizeof p, "%s/m-1.safetensors", dir);
    st_writer_write(w, p);
    st_writer_free(w);
    w = st_writer_new();
    st_writer_add(w, "b", MQ_F32, 1, s2, b);
    st_writer_add(w, "c", MQ_F32, 1, s1, c);
    snprintf(p, sizeof p, "%s/m-2.safetensors", dir);
    st_writer_write(w, p);
    st_writer_free(w);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, index);
}

static void test_sharded(void) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/sharded", t_tmpdir());
    make_sharded(dir, "{\"metadata\":{},\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\",\"c\":\"m-2.safetensors\"}}");
    st_file *f = st_open(dir);
    T_CHECK(f != NULL, "%s", mq_errmsg());
    if (f) {
        T_CHECK(st_count(f) == 3, "three tensors");
        const st_tensor *c = st_find(f, "c");
        T_CHECK(c && strstr(c->file, "m-2.safetensors"), "c lives in shard 2");
        float v = 0;
        T_CHECK(c && st_to_f32(c, &v) == 0 && v == 6.0f, "c value");
        T_CHECK(st_metadata(f, "format") && !strcmp(st_metadata(f, "format"), "pt"), "metadata of the first shard");
        T_CHECK(strstr(st_path(f), "model.safetensors.index.json") != NULL, "path %s", st_path(f));
        st_close(f);
    }
    make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\",\"c\":\"m-2.safetensors\",\"d\":\"m-9.safetensors\"}}");
    expect_fail(dir, "m-9.safetensors", "cannot open");
    make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\",\"c\":\"m-2.safetensors\",\"d\":\"m-2.safetensors\"}}");
    expect_fail(dir, "model.safetensors.index.json", "tensor 'd' is listed for shard 'm-2.safetensors' but absent");
    make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\"}}");
    expect_fail(dir, "m-2.safetensors", "tensor 'c' is present in the shard but not listed");
    make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-1.safetensors\",\"c\":\"m-2.safetensors\"}}");
    expect_fail(dir, "m-2.safetensors", "lists it in 'm-1.safetensors'");
    make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"../m-2.safetensors\"}}");
    expect_fail(dir, "model.safetensors.index.json", "must be a file name");
    make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",");
    expect_fail(dir, "model.safetensors.index.json", "bad JSON");
    make_sharded(dir, "{\"metadata\":{}}");
    expect_fail(dir, "model.safetensors.index.json", "weight_map");

    /* a tensor that is in two shards */
    char p[600];
    snprintf(p, sizeof p, "%s/m-3.safetensors", dir);
    make_sharded(dir, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\",\"c\":\"m-2.safetensors\"}}");
    st_writer *w = st_writer_new();
    float one = 1;
    int64_t s1[1] = {1};
    st_writer_add(w, "a", MQ_F32, 1, s1, &one);
    st_writer_write(w, p);
    st_writer_free(w);
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    write_text(p, "{\"weight_map\":{\"a\":\"m-1.safetensors\",\"b\":\"m-2.safetensors\",\"c\":\"m-2.safetensors\",\"x\":\"m-3.safetensors\"}}");
    expect_fail(dir, "m-3.safetensors", "tensor 'a' is present in the shard but");

    /* a directory without any checkpoint, and one with a pytorch_model.bin that is not a zip */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", dir, dir);
    if (system(cmd) != 0) return;
    expect_fail(dir, dir, "no model.safetensors");
    snprintf(p, sizeof p, "%s/pytorch_model.bin", dir);
    write_text(p, "PK");
    expect_fail(dir, "pytorch_model.bin", "too short for a zip archive");
}

/* torch.save checkpoints (tests/fixtures/pt, written by tools/ref/gen_pt_fixtures.py with torch):
 * tensors come out with the right names, dtypes and shapes, tied names share bytes, and damaged
 * archives fail with a message; 2000 random byte flips must not crash or read out of bounds. */
static void test_pytorch_bin(void) {
    const char *bin = "tests/fixtures/pt/mamba1-f32/pytorch_model.bin";
    st_file *f = st_open(bin);
    T_CHECK(f != NULL, "%s", mq_errmsg());
    if (!f) return;
    T_CHECK(st_count(f) == 23, "23 tensors, got %d", st_count(f));
    const st_tensor *e = st_find(f, "backbone.embedding.weight"), *h = st_find(f, "lm_head.weight");
    const st_tensor *c = st_find(f, "backbone.layers.1.mixer.conv1d.weight");
    T_CHECK(e && h && e->dtype == MQ_F32 && e->ndim == 2 && e->shape[0] == 40 && e->shape[1] == 16, "embedding");
    T_CHECK(e && h && e->data == h->data, "tied names share one storage");
    T_CHECK(c && c->ndim == 3 && c->shape[0] == 32 && c->shape[1] == 1 && c->shape[2] == 4 && c->nbytes == 512, "conv1d shape");
    T_CHECK(st_metadata(f, "format") == NULL, "no metadata");
    size_t n = 0;
    unsigned char *src = (unsigned char *)mq_read_file(bin, &n);
    st_close(f);
    f = st_open("tests/fixtures/pt/mamba2-bf16-sharded");
    T_CHECK(f && st_count(f) == 21 && st_find(f, "lm_head.weight") && st_find(f, "lm_head.weight")->dtype == MQ_BF16,
            "sharded .bin with an index: %s", f ? "" : mq_errmsg());
    st_close(f);
    if (!src) return;

    const char *p = tpath("pytorch_model.bin");
    unsigned char *buf = malloc(n);
    /* a compressed entry: set the method of the first central directory entry to deflate */
    memcpy(buf, src, n);
    uint32_t cd; /* central directory offset, from the end record (the archive has no comment) */
    memcpy(&cd, buf + n - 22 + 16, 4);
    T_CHECK(cd + 46 < n && !memcmp(buf + cd, "PK\x01\x02", 4), "central directory at %u", cd);
    buf[cd + 10] = 8;
    FILE *fp = fopen(p, "wb");
    fwrite(buf, 1, n, fp);
    fclose(fp);
    expect_fail(p, "pytorch_model.bin", "compressed (method 8)");
    /* cut short: the end of central directory is gone */
    fp = fopen(p, "wb");
    fwrite(src, 1, n / 2, fp);
    fclose(fp);
    expect_fail(p, "pytorch_model.bin", "not a zip archive");

    uint32_t r = 99;
    int failed = 0, bad_msg = 0;
    for (int it = 0; it < 2000; it++) {
        memcpy(buf, src, n);
        for (int k = 0; k < 1 + it % 3; k++) {
            r = r * 1103515245u + 12345u;
            /* mostly the pickle (it starts the archive), sometimes anywhere */
            size_t at = it % 4 ? 40 + (r >> 8) % 500 : (r >> 8) % n;
            r = r * 1103515245u + 12345u;
            buf[at] = (unsigned char)(r >> 16);
        }
        unlink(p);
        fp = fopen(p, "wb");
        if (!fp || fwrite(buf, 1, n, fp) != n) { T_CHECK(0, "cannot write %s", p); if (fp) fclose(fp); break; }
        fclose(fp);
        mq_clear_error();
        st_file *g = st_open(p);
        if (!g) { failed++; bad_msg += strstr(mq_errmsg(), "pytorch_model.bin") == NULL; continue; }
        volatile unsigned sum = 0;
        for (int i = 0; i < st_count(g); i++)
            for (size_t b = 0; b < st_get(g, i)->nbytes; b++) sum += ((const unsigned char *)st_get(g, i)->data)[b];
        st_close(g);
    }
    T_CHECK(failed > 100 && bad_msg == 0, "%d failed, %d without the file name in the message", failed, bad_msg);
    free(buf);
    free(src);
}

static void test_proxies(void) {
    const struct { const char *dir; int count; uint16_t emb0, normf0, alog3; float normf0_val; } px[] = {
        /* first elements of embeddings, norm_f and layers.3 A_log, read with Python's struct '<e' */
        {"models/mamba1-proxy", 242, 0x33ce, 0x3dd9, 0xa72c, 1.4619140625f},
        {"models/mamba2-proxy", 182, 0xa5f5, 0x3e90, 0x2c13, 1.640625f},
    };
    for (int i = 0; i < 2; i++) {
        const char *dir = t_shared(px[i].dir);
        if (!dir) T_SKIP("%s not found (set MQ_SHARED)", px[i].dir);
        st_file *f = st_open(dir);
        T_CHECK(f != NULL, "%s", mq_errmsg());
        if (!f) continue;
        T_CHECK(st_count(f) == px[i].count, "%s: %d tensors", px[i].dir, st_count(f));
        const st_tensor *e = st_find(f, "backbone.embeddings.weight");
        T_CHECK(e && e->dtype == MQ_F16 && e->ndim == 2 && e->shape[0] == 50280 && e->shape[1] == 192, "embedding shape");
        T_CHECK(e && strstr(e->file, "model-00001-of-00002.safetensors"), "embedding in shard 1");
        const st_tensor *n = st_find(f, "backbone.norm_f.weight"), *a = st_find(f, "backbone.layers.3.mixer.A_log");
        if (e && n && a) {
            uint16_t h;
            memcpy(&h, e->data, 2); T_CHECK(h == px[i].emb0, "embedding[0] %04x", h);
            memcpy(&h, n->data, 2); T_CHECK(h == px[i].normf0, "norm_f[0] %04x", h);
            memcpy(&h, a->data, 2); T_CHECK(h == px[i].alog3, "A_log[0] %04x", h);
            float *v = malloc((size_t)n->numel * sizeof *v);
            T_CHECK(st_to_f32(n, v) == 0 && v[0] == px[i].normf0_val, "norm_f[0] = %.9g", v[0]);
            free(v);
        }
        T_CHECK(st_metadata(f, "format") && !strcmp(st_metadata(f, "format"), "pt"), "metadata format=pt");
        st_close(f);
    }
}

int main(void) {
    T_RUN(test_roundtrip_all_dtypes);
    T_RUN(test_writer_errors);
    T_RUN(test_f16_conversion);
    T_RUN(test_bf16_conversion);
    T_RUN(test_corrupt_files);
    T_RUN(test_fuzz_headers);
    T_RUN(test_sharded);
    T_RUN(test_pytorch_bin);
    T_RUN(test_proxies);
    return t_summary();
}
