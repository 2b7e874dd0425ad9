/* Reliability of what mambaq writes, through bin/mambaq: no shell ever sees an --out path (quotes in
 * names), nothing the program did not create in this run is deleted or replaced (siblings named like
 * its temporaries, existing --out files without --force), an unwritable --out fails before the
 * work, a killed writer leaves nothing, and the same inputs give byte-identical stats files and
 * artifacts (stats files record names and hashes of the model, data and tokenizer, whole paths only
 * with calib --record-paths; quantize finds the data again by name and hash, or --calib FILE). Needs bin/mambaq and ../shared (tokenizer, calib.txt, valid.txt). */
#include <limits.h>
#include <signal.h>
#include "calib/calib.h"
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

/* ---- determinism of stats files: names and hashes, not host paths (issue 14) ---- */

/* The metadata value key of the stats file (a copy into buf; "" when absent). */
static const char *stats_meta(const char *stats, const char *key, char *buf, size_t n) {
    calib_stats *cs = calib_stats_open_unchecked(stats);
    const char *v = cs ? calib_stats_meta(cs, key) : NULL;
    snprintf(buf, n, "%s", v ? v : "");
    if (cs) calib_stats_close(cs);
    return buf;
}

static void copy_file(const char *from, const char *to, size_t max) {
    size_t n;
    char *d = mq_read_file(from, &n);
    if (!d) { printf("cannot read %s\n", from); exit(2); }
    mq_mkdir_parents(to);
    t_write(to, d, n < max ? n : max);
    free(d);
}

/* t_path, absolute (the commands below run in other working directories) */
static const char *abs_path(const char *name) {
    char cwd[PATH_MAX], *b = mq_malloc(PATH_MAX + 1100);
    snprintf(b, PATH_MAX + 1100, "%s/%s", getcwd(cwd, sizeof cwd) ? cwd : ".", t_path("%s", name));
    return b;
}

static void test_stats_paths(void) {
    T_NEED_TINY(0);
    char exe[PATH_MAX], data[PATH_MAX], tok[PATH_MAX], cmd[32768], v[PATH_MAX], abs[PATH_MAX];
    T_CHECK(realpath("bin/mambaq", exe) && realpath(shared_path("datasets/calib.txt"), data) &&
            realpath(shared_path("models/tokenizer.json"), tok), "no bin/mambaq or shared data");
    const char *log = abs_path("paths.log"), *model = abs_path("pmodel");
    t_tiny_model(model, 1);
    /* the same data three ways: the shared file, a symbolic link to it in another folder, a copy
     * in a third folder; each calib run from its own working directory, writing "stats" there */
    const char *link = abs_path("plink/calib.txt"), *copy = abs_path("pcopy/calib.txt");
    mq_mkdir_parents(link);
    T_CHECK(symlink(data, link) == 0, "symlink %s", link);
    copy_file(data, copy, (size_t)-1);
    const char *dirs[] = {abs_path("pw/a"), abs_path("pw/b/c"), abs_path("pw/d")};
    const char *datas[] = {data, "../../../plink/calib.txt", copy};
    char stats[3][1200];
    for (int k = 0; k < 3; k++) {
        snprintf(stats[k], sizeof stats[k], "%s/stats", dirs[k]);
        mq_mkdir_parents(stats[k]);
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' calib --model '%s' --data '%s' --tokenizer '%s' --samples 2 --seqlen 64 --out stats --quiet",
                 dirs[k], exe, model, datas[k], tok);
        T_CHECK(sh(cmd, log) == 0, "calib from %s: %s", dirs[k], slurp(log));
    }
    T_CHECK(same_file(stats[0], stats[1]), "calib of the data and of a link to it, from two folders: different stats files");
    T_CHECK(same_file(stats[0], stats[2]), "calib of the data and of a copy of it: different stats files");
    T_CHECK(!strcmp(stats_meta(stats[0], "data.path", v, sizeof v), "calib.txt"), "data.path is '%s', not calib.txt", v);
    const char *keys[] = {"data.path", "model.path", "tokenizer.path"};
    for (int i = 0; i < 3; i++)
        T_CHECK(!strchr(stats_meta(stats[1], keys[i], v, sizeof v), '/') && v[0], "%s is '%s': a path, not a name", keys[i], v);
    /* --record-paths: the whole paths */
    const char *rs = abs_path("pw/recorded.stats");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' calib --model '%s' --data ../../plink/calib.txt --tokenizer '%s' --samples 2 --seqlen 64 "
                              "--out '%s' --quiet --record-paths", dirs[0], exe, model, tok, rs);
    T_CHECK(sh(cmd, log) == 0, "calib --record-paths: %s", slurp(log));
    T_CHECK(!strcmp(stats_meta(rs, "data.path", v, sizeof v), data), "--record-paths: data.path is '%s', not %s", v, data);
    T_CHECK(realpath(model, abs) && !strcmp(stats_meta(rs, "model.path", v, sizeof v), abs), "--record-paths: model.path is '%s'", v);
    T_CHECK(!strcmp(stats_meta(rs, "tokenizer.path", v, sizeof v), tok), "--record-paths: tokenizer.path is '%s'", v);

    /* quantize --method quamba with these plain statistics repeats the calibration windows: from
     * another working directory, the data is found as <shared>/datasets/calib.txt by name and hash */
    const char *qdir = abs_path("pq");
    char qlog[1200];
    snprintf(qlog, sizeof qlog, "%s/x", qdir);
    mq_mkdir_parents(qlog);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' quantize --model '%s' --stats '%s' --out art1 --method quamba --tokenizer '%s'", qdir, exe,
             model, stats[1], tok);
    T_CHECK(sh(cmd, log) == 0, "quantize from another folder with the shared data: %s", slurp(log));
    char *o = slurp(log);
    T_CHECK(strstr(o, "repeating its calibration windows"), "no extra pass: %.400s", o);
    free(o);

    /* data that is not in <shared>/datasets: a clear error naming the file, its name and --calib */
    const char *mine = abs_path("pmine/mydata.txt");
    copy_file(data, mine, 20000);
    const char *ms = abs_path("pw/mine.stats");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' calib --model '%s' --data ../../pmine/mydata.txt --tokenizer '%s' --samples 2 --seqlen 64 "
                              "--out '%s' --quiet", dirs[0], exe, model, tok, ms);
    T_CHECK(sh(cmd, log) == 0, "calib of mydata.txt: %s", slurp(log));
    T_CHECK(!strcmp(stats_meta(ms, "data.path", v, sizeof v), "mydata.txt"), "data.path is '%s'", v);
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' quantize --model '%s' --stats '%s' --out art2 --method quamba --tokenizer '%s' --quiet", qdir,
             exe, model, ms, tok);
    free(T_REFUSED(cmd, log, "mine.stats", "mydata.txt", "sha256", "--calib FILE"));
    /* --calib FILE of other data: refused, naming both */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' quantize --model '%s' --stats '%s' --out art2 --method quamba --tokenizer '%s' --quiet "
                              "--calib '%s'", qdir, exe, model, ms, tok, data);
    free(T_REFUSED(cmd, log, "--calib", "mydata.txt", "not the same data"));
    /* --calib FILE of that data (a relative path): works */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' quantize --model '%s' --stats '%s' --out art2 --method quamba --tokenizer '%s' --quiet "
                              "--calib ../pmine/mydata.txt", qdir, exe, model, ms, tok);
    T_CHECK(sh(cmd, log) == 0, "quantize --calib FILE: %s", slurp(log));
    /* a stats file with the whole path: found there */
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' calib --model '%s' --data ../../pmine/mydata.txt --tokenizer '%s' --samples 2 --seqlen 64 "
                              "--out '%s' --quiet --force --record-paths", dirs[0], exe, model, tok, ms);
    T_CHECK(sh(cmd, log) == 0, "calib --record-paths of mydata.txt: %s", slurp(log));
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' quantize --model '%s' --stats '%s' --out art3 --method quamba --tokenizer '%s' --quiet", qdir,
             exe, model, ms, tok);
    T_CHECK(sh(cmd, log) == 0, "quantize with a recorded absolute data path: %s", slurp(log));
}

int main(void) {
    T_RUN(test_run_out_quotes);
    T_RUN(test_siblings_kept);
    T_RUN(test_out_exists);
    T_RUN(test_out_unwritable);
    T_RUN(test_killed_writer);
    T_RUN(test_determinism);
    T_RUN(test_stats_paths);
    return t_summary();
}
