/* Smoke test of the harness and the error helpers: mq_fail keeps a message, atomic writes land. */
#include "tests/test.h"
#include "core/err.h"

static void test_error_message(void) {
    T_CHECK(mq_fail("file %s: bad %d", "x.json", 3) == -1, "mq_fail must return -1");
    T_CHECK(!strcmp(mq_errmsg(), "file x.json: bad 3"), "got '%s'", mq_errmsg());
    mq_fail_ctx("loading %s", "m");
    T_CHECK(!strcmp(mq_errmsg(), "loading m: file x.json: bad 3"), "got '%s'", mq_errmsg());
}

static void test_atomic_write(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/atomic.txt", t_tmpdir());
    T_CHECK(mq_write_file_atomic(path, "hello", 5) == 0, "%s", mq_errmsg());
    size_t n = 0;
    char *s = mq_read_file(path, &n);
    T_CHECK(s && n == 5 && !memcmp(s, "hello", 5), "read back");
    free(s);
    T_CHECK(mq_write_file_atomic("/nonexistent-dir/x", "a", 1) == -1, "unwritable path must fail");
    T_CHECK(strstr(mq_errmsg(), "/nonexistent-dir/x") != NULL, "message names the path: %s", mq_errmsg());
}

int main(void) {
    T_RUN(test_error_message);
    T_RUN(test_atomic_write);
    return t_summary();
}
