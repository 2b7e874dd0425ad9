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
    T_CHECK(mq_write_file_atomic("/proc/nonexistent-dir/x", "a", 1) == -1, "unwritable path must fail");
    T_CHECK(strstr(mq_errmsg(), "/proc/nonexistent-dir/x") != NULL, "message names the path: %s", mq_errmsg());
}

/* The artifact writer makes the missing parents of --out DIR (mq_mkdir_parents). */
static void test_mkdir_parents(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/new/deeper/artifact", t_tmpdir());
    T_CHECK(mq_mkdir_parents(path) == 0, "%s", mq_errmsg());
    struct stat st;
    snprintf(path, sizeof path, "%s/new/deeper", t_tmpdir());
    T_CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "%s was not created", path);
    T_CHECK(mq_mkdir_parents("/proc/nonexistent-dir/artifact") == -1, "an impossible folder must fail");
    T_CHECK(strstr(mq_errmsg(), "/proc/nonexistent-dir") != NULL, "message names the folder: %s", mq_errmsg());
}

int main(void) {
    T_RUN(test_error_message);
    T_RUN(test_atomic_write);
    T_RUN(test_mkdir_parents);
    return t_summary();
}
