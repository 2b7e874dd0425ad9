/* Reliability of what mambaq writes, through bin/mambaq: no shell ever sees an --out path (quotes in
 * names), nothing the program did not create in this run is deleted or replaced (siblings named like
 * its temporaries, existing --out files without --force), an unwritable --out fails before the
 * work, a killed writer leaves nothing, and the same inputs give byte-identical stats files and
 * artifacts. Needs bin/mambaq and ../shared (tokenizer, calib.txt, valid.txt). */
#include <signal.h>
#include "core/fio.h"
#include "tests/test_cli.h"

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = mq_read_file(a, &na), *y = mq_read_file(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void quantize(const char *model, const char *stats, const char *out, const char *extra, int want_rc) {
    char cmd[8192];
    const char *log = t_path("%s", "quantize.log");
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --tokenizer '%s' --quiet %s", model, stats, out,
             shared_path("models/tokenizer.json"), extra);
    int rc = sh(cmd, log);
    T_CHECK(want_rc ? rc != 0 && rc < 124 : rc == 0, "quantize %s: rc %d: %s", out, rc, slurp(log));
}

/* ---- item 3: run makes its folder in C; quotes in --out are just characters ---- */
static void test_run_out_quotes(void) {
    T_NEED_TINY(0);
    const char *pwned = t_path("%s", "PWNED"), *log = t_path("%s", "run.log");
    char evil[1024], cmd[8192];
    /* both reported cases in one name: an injection attempt and an apostrophe ("bob's runs") */
    snprintf(evil, sizeof evil, "%s/bob's runs/x'; touch %s; echo '", t_tmpdir(), pwned);
    /* the shell of this test gets the path in double quotes; mambaq gets it as one argument */
    snprintf(cmd, sizeof cmd, "bin/mambaq run --model '%s/' --out \"%s\" --samples 2 --seqlen 16", t_tiny, evil);
    T_CHECK(sh(cmd, log) == 0, "run with quotes in --out: %s", slurp(log));
    T_CHECK(!t_exists(pwned), "--out was run by a shell");
    char p[1400];
    snprintf(p, sizeof p, "%s/tiny1/stats.safetensors", evil);   /* "tiny1/" names the folder tiny1 */
    T_CHECK(t_exists(p), "no %s", p);
    snprintf(p, sizeof p, "%s/tiny1/quamba/quant_config.json", evil);
    T_CHECK(t_exists(p), "no %s", p);
    /* again: the artifact of the earlier run is kept unless --force, and that is found before the
     * FP32 evaluation, not after (the evaluation prints "mambaq run: MODEL") */
    char *o = T_REFUSED(cmd, log, "already exists", "--force");
    T_CHECK(!strstr(o, "mambaq run: build"), "run evaluated before refusing its --out: %.300s", o);
    free(o);
}

/* ---- item 4: only marked temporaries of dead writers are cleaned up ---- */
static long dead_pid(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return (long)pid;
}

static void make_marked(const char *dir, long pid) {
    char p[1200];
    snprintf(p, sizeof p, "%s/x", dir);
    mq_mkdir_parents(p);
    snprintf(p, sizeof p, "%s/" FIO_MARKER, dir);
    char text[200];
    int n = snprintf(text, sizeof text, "mambaq partial output (test)\npid %ld\n", pid);
    t_write(p, text, (size_t)n);
}

static void test_siblings_kept(void) {
    T_NEED_TINY(0);
    const char *out = t_path("%s", "q/results");
    const char *keep[] = {"q/results.old.2023", "q/results.tmp.2147483", "q/results.old.1", "q/results.tmp.1.abcdef"};
    char p[1200];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/keep.txt", t_path("%s", keep[i]));
        mq_mkdir_parents(p);
        t_write(p, "mine", 4);
    }
    /* debris of a dead mambaq writer: carries the marker */
    const char *stale = t_path("%s", "q/results.tmp.99.zzzzzz");
    make_marked(stale, dead_pid());
    quantize(t_tiny, t_tiny_stats, out, "--method naive", 0);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/keep.txt", t_path("%s", keep[i]));
        T_CHECK(t_exists(p), "%s was deleted", p);
    }
    T_CHECK(!t_exists(stale), "the marked debris of a dead writer was left: %s", stale);
    /* --force replaces the artifact, and keeps the siblings */
    quantize(t_tiny, t_tiny_stats, out, "--method naive --force", 0);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/keep.txt", t_path("%s", keep[i]));
        T_CHECK(t_exists(p), "%s was deleted by --force", p);
    }
    /* a --force write that died after moving the old artifact aside: the next write restores it */
    const char *old = t_path("%s", "q/results.old.98.yyyyyy");
    T_CHECK(rename(out, old) == 0, "rename");
    make_marked(old, dead_pid());
    quantize(t_tiny, t_tiny_stats, out, "--method naive", 1);   /* restored, so without --force: refused */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "bin/mambaq inspect '%s'", out);
    T_CHECK(sh(cmd, t_path("%s", "inspect.log")) == 0, "the restored artifact: %s", slurp(t_path("%s", "inspect.log")));
    T_CHECK(!t_exists(old), "%s still there after the restore", old);
    snprintf(p, sizeof p, "%s/" FIO_MARKER, out);
    T_CHECK(!t_exists(p), "the restored artifact still carries the marker");
}

/* ---- item 5: every --out refuses an existing path without --force ---- */
static void test_out_exists(void) {
    T_NEED_TINY(0);
    const char *log = t_path("%s", "exists.log"), *tok = shared_path("models/tokenizer.json");
    const char *precious = t_path("%s", "precious.bin"), *text = t_path("%s", "hello.txt");
    char cmd[8192];
    t_write(text, "Hello world", 11);
    const char *cmds[] = {"calib", "tokenize", "detokenize"};
    for (int i = 0; i < 3; i++) {
        t_write(precious, "precious", 8);
        char a[4096];
        const char *ids = t_path("%s", "hello.ids");
        if (i == 0)
            snprintf(a, sizeof a, "--model '%s' --data '%s' --samples 1 --seqlen 16 --quiet --tokenizer '%s' --out '%s'", t_tiny,
                     shared_path("datasets/calib.txt"), tok, precious);
        else if (i == 1)
            snprintf(a, sizeof a, "--data '%s' --tokenizer '%s' --out '%s'", text, tok, precious);
        else
            snprintf(a, sizeof a, "--ids '%s' --tokenizer '%s' --out '%s'", ids, tok, precious);
        if (i == 2) {
            snprintf(cmd, sizeof cmd, "bin/mambaq tokenize --data '%s' --tokenizer '%s' --out '%s' --force", text, tok, ids);
            T_CHECK(sh(cmd, log) == 0, "tokenize: %s", slurp(log));
        }
        snprintf(cmd, sizeof cmd, "bin/mambaq %s %s", cmds[i], a);
        free(T_REFUSED(cmd, log, precious, "already exists", "--force"));
        char *s = slurp(precious);
        T_CHECK(!strcmp(s, "precious"), "%s overwrote --out", cmds[i]);
        free(s);
        snprintf(cmd, sizeof cmd, "bin/mambaq %s %s --force", cmds[i], a);
        T_CHECK(sh(cmd, log) == 0, "%s --force: %s", cmds[i], slurp(log));
        s = slurp(precious);
        T_CHECK(strcmp(s, "precious"), "%s --force did not write", cmds[i]);
        free(s);
    }
    /* --force replaces a file with a file, never a folder */
    const char *folder = t_path("%s", "a_folder");
    mkdir(folder, 0755);
    snprintf(cmd, sizeof cmd, "bin/mambaq tokenize --data '%s' --tokenizer '%s' --out '%s' --force", text, tok, folder);
    free(T_REFUSED(cmd, log, folder, "is a directory"));
    /* and quantize --force replaces an artifact, not a folder of something else: refused before the work */
    char keep[1200];
    snprintf(keep, sizeof keep, "%s/notes.txt", folder);
    t_write(keep, "mine", 4);
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --force", t_tiny, t_tiny_stats, folder);
    char *o = T_REFUSED(cmd, log, folder, "not a mambaq artifact");
    T_CHECK(!strstr(o, "[2/4]"), "quantize loaded the model before refusing: %s", o);
    free(o);
    T_CHECK(t_exists(keep), "the folder's content was touched");
}

/* ---- item 9: an unwritable --out fails before the work ---- */
static void test_out_unwritable(void) {
    T_NEED_TINY(0);
    const char *log = t_path("%s", "unwritable.log"), *file = t_path("%s", "plain_file");
    char cmd[8192], out[1200];
    t_write(file, "x", 1);
    snprintf(out, sizeof out, "%s/art", file);   /* a folder inside a regular file cannot exist */
    snprintf(cmd, sizeof cmd, "bin/mambaq quantize --model '%s' --stats '%s' --out '%s' --tokenizer '%s'", t_tiny, t_tiny_stats, out,
             shared_path("models/tokenizer.json"));
    char *o = T_REFUSED(cmd, log, out);
    T_CHECK(!strstr(o, "[1/4]") && !strstr(o, "loading"), "quantize started the work first: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s' --data '%s' --samples 1 --seqlen 16 --out '%s/stats'", t_tiny,
             shared_path("datasets/calib.txt"), file);
    o = T_REFUSED(cmd, log, file, "cannot be written");
    T_CHECK(!strstr(o, "activations observed"), "calib ran first: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "bin/mambaq tokenize --data '%s' --tokenizer '%s' --out /proc/mambaq-test/ids.bin", file,
             shared_path("models/tokenizer.json"));
    free(T_REFUSED(cmd, log, "/proc/mambaq-test"));
}

/* ---- item 9: a writer killed before it commits leaves nothing (calib's <out>.tmp.<pid>) ---- */
static void die_now(const char *path) { raise(SIGKILL); }

static int entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

static void test_killed_writer(void) {
    const char *dir = t_path("%s", "killed");
    char out[1200];
    snprintf(out, sizeof out, "%s/stats.safetensors", dir);
    mq_mkdir_parents(out);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        st_writer *w = st_writer_new();
        int64_t n = 1 << 16;
        float *v = calloc((size_t)n, sizeof *v);
        st_writer_add(w, "x", MQ_F32, 1, &n, v);
        st_test_before_commit = die_now;
        st_writer_write(w, out);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    T_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the writer was not killed (status %d)", status);
    T_CHECK(entries(dir) == 0, "the killed writer left %d entries in %s", entries(dir), dir);
}

/* ---- determinism: same model, stats and options -> the same bytes ---- */
static void test_determinism(void) {
    T_NEED_TINY(0);
    const char *log = t_path("%s", "det.log");
    char cmd[8192];
    for (int arch = 1; arch <= 2; arch++) {
        char nm[64];
        snprintf(nm, sizeof nm, "det%d", arch);
        const char *model = t_path("%s", nm);
        t_tiny_model(model, arch);
        /* the stats file's name is recorded, so both copies have the same name */
        const char *s1 = t_path(arch == 1 ? "%s/1/stats" : "%s/2/stats", "det"), *s2 = t_path(arch == 1 ? "%s/1/a/stats" : "%s/2/a/stats", "det");
        mq_mkdir_parents(s2);
        mq_mkdir_parents(s1);
        for (int k = 0; k < 2; k++) {
            snprintf(cmd, sizeof cmd, "bin/mambaq calib --model '%s' --data '%s' --tokenizer '%s' --samples 3 --seqlen 32 --out '%s' --quiet",
                     model, shared_path("datasets/calib.txt"), shared_path("models/tokenizer.json"), k ? s2 : s1);
            T_CHECK(sh(cmd, log) == 0, "calib: %s", slurp(log));
        }
        T_CHECK(same_file(s1, s2), "mamba%d: two calib runs gave different stats files", arch);
        /* the same inputs spelled differently, into different folders */
        char model2[1200], a1[1200], a2[1200];
        snprintf(model2, sizeof model2, "%s/./", model);
        snprintf(a1, sizeof a1, "%s/art1_%d", t_tmpdir(), arch);
        snprintf(a2, sizeof a2, "%s/elsewhere/art2_%d", t_tmpdir(), arch);
        quantize(model, s1, a1, "--method quamba", 0);
        quantize(model2, s2, a2, "--method quamba", 0);
        const char *files[] = {"model.safetensors", "quant_config.json", "config.json", "tokenizer.json"};
        for (int i = 0; i < 4; i++) {
            char p1[1400], p2[1400];
            snprintf(p1, sizeof p1, "%s/%s", a1, files[i]);
            snprintf(p2, sizeof p2, "%s/%s", a2, files[i]);
            T_CHECK(same_file(p1, p2), "mamba%d: %s differs between two quantize runs of the same inputs", arch, files[i]);
        }
        char p[1400];
        snprintf(p, sizeof p, "%s/quant_config.json", a1);
        char *qc = slurp(p), abs[4096];
        T_CHECK(!strstr(qc, t_tmpdir()) && realpath(model, abs) && !strstr(qc, abs), "quant_config.json holds a host path");
        free(qc);
        quantize(model, s1, a1, "--method quamba --force --record-paths", 0);
        qc = slurp(p);
        T_CHECK(realpath(model, abs) && strstr(qc, abs), "--record-paths did not record %s", abs);
        free(qc);
    }
}

int main(void) {
    T_RUN(test_run_out_quotes);
    T_RUN(test_siblings_kept);
    T_RUN(test_out_exists);
    T_RUN(test_out_unwritable);
    T_RUN(test_killed_writer);
    T_RUN(test_determinism);
    return t_summary();
}
