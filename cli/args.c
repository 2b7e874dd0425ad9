/* Option table parsing and generated --help for the subcommands, the default paths under the
 * shared folder, and small output helpers (see args.h). */
#include "cli/args.h"
#include "core/err.h"
#include "core/fio.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *ordinal(int n) { return n == 1 ? "first" : n == 2 ? "second" : "third"; }

static void print_help(const cli_opt *opts, const char *usage, const char *description) {
    printf("usage: %s\n\n%s\n", usage, description);
    if (!opts || !opts[0].name) return;
    printf("\noptions:\n");
    for (const cli_opt *o = opts; o->name; o++) {
        if (!o->help) continue;   /* a renamed option */
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        printf("  %-24s %s", left, o->help);
        if (o->pos) printf(" (or as the %s argument)", ordinal(o->pos));
        if (o->def && o->metavar) printf(" (default: %s)", o->def);
        printf("\n");
    }
    printf("\nDefault paths are under the shared folder (" CLI_SHARED_HINT ").\n");
}

static cli_opt *lookup(cli_opt *opts, const char *name, size_t nlen) {
    for (cli_opt *o = opts; o && o->name; o++)
        if (strlen(o->name) == nlen && !strncmp(o->name, name, nlen)) return o;
    return NULL;
}

/* Sets o (or the option it is another name of) to value; exits 2 when it was given already. */
static void set_value(const char *cmd, cli_opt *opts, cli_opt *o, const char *value) {
    if (o->alias_of) {
        if (!o->help) fprintf(stderr, "mambaq %s: note: %s is now %s\n", cmd, o->name, o->alias_of);
        cli_opt *t = lookup(opts, o->alias_of, strlen(o->alias_of));
        if (!t) { fprintf(stderr, "mambaq: internal error: %s names no option %s\n", o->name, o->alias_of); exit(3); }
        o = t;
    }
    if (o->given && o->metavar) {
        if (o->pos) fprintf(stderr, "mambaq %s: %s given twice (as the %s argument or with %s: one of them)\n", cmd,
                            o->metavar, ordinal(o->pos), o->name);
        else fprintf(stderr, "mambaq %s: %s given twice\n", cmd, o->name);
        exit(2);
    }
    o->given = 1;
    o->value = value;
}

int cli_parse(int argc, char **argv, cli_opt *opts, const char *usage, const char *description,
              const char **positional, int max_pos) {
    int npos = 0, nargs = 0;
    const char *cmd = argv[0];
    for (cli_opt *o = opts; o && o->name; o++) { o->value = o->def; o->given = 0; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { print_help(opts, usage, description); exit(0); }
        if (a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
            cli_opt *o = lookup(opts, a, nlen);
            if (!o) {
                fprintf(stderr, "mambaq %s: unknown option '%.*s' (see 'mambaq %s --help')\n", cmd, (int)nlen, a, cmd);
                exit(2);
            }
            if (!o->metavar) {
                if (eq) { fprintf(stderr, "mambaq %s: option %s takes no value\n", cmd, o->name); exit(2); }
                set_value(cmd, opts, o, "1");
            } else if (eq) {
                set_value(cmd, opts, o, eq + 1);
            } else {
                if (i + 1 >= argc) { fprintf(stderr, "mambaq %s: option %s needs a value (%s)\n", cmd, o->name, o->metavar); exit(2); }
                set_value(cmd, opts, o, argv[++i]);
            }
        } else {
            /* the n-th argument: the option with .pos n, else a free positional */
            nargs++;
            cli_opt *o = opts;
            for (; o && o->name; o++)
                if (o->pos == nargs) break;
            if (o && o->name) { set_value(cmd, opts, o, a); continue; }
            if (npos >= max_pos) {
                fprintf(stderr, "mambaq %s: unexpected argument '%s' (see 'mambaq %s --help')\n", cmd, a, cmd);
                exit(2);
            }
            positional[npos++] = a;
        }
    }
    return npos;
}

static const cli_opt *find(const cli_opt *opts, const char *name) {
    for (const cli_opt *o = opts; o && o->name; o++)
        if (!strcmp(o->name, name)) return o;
    fprintf(stderr, "mambaq: internal error: no option %s\n", name);
    exit(3);
}

const char *cli_get(const cli_opt *opts, const char *name) { return find(opts, name)->value; }
int cli_flag(const cli_opt *opts, const char *name) { return find(opts, name)->given; }

long cli_int(const cli_opt *opts, const char *name, long lo, long hi) {
    const char *v = cli_get(opts, name);
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "mambaq: %s expects an integer in [%ld, %ld], got '%s'\n", name, lo, hi, v ? v : "");
        exit(2);
    }
    return x;
}

double cli_double(const cli_opt *opts, const char *name, double lo, double hi) {
    const char *v = cli_get(opts, name);
    char *end;
    double x = v ? strtod(v, &end) : 0;
    if (!v || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "mambaq: %s expects a number in [%g, %g], got '%s'\n", name, lo, hi, v ? v : "");
        exit(2);
    }
    return x;
}

void cli_threads(const cli_opt *opts) {
    if (!cli_flag(opts, "--threads")) return;
    const int th = (int)cli_int(opts, "--threads", 1, 1024);
#ifdef _OPENMP
    omp_set_num_threads(th);
#else
    (void)th;
#endif
}

const char *cli_need(const cli_opt *opts, const char *cmd, const char *name) {
    const cli_opt *o = find(opts, name);
    if (o->value) return o->value;
    if (o->pos) fprintf(stderr, "mambaq %s: %s is required: give it as the %s argument or with %s (see 'mambaq %s --help')\n",
                        cmd, o->metavar, ordinal(o->pos), o->name, cmd);
    else fprintf(stderr, "mambaq %s: %s %s is required (see 'mambaq %s --help')\n", cmd, o->name, o->metavar ? o->metavar : "", cmd);
    exit(2);
}

const char *cli_tokenizer_file(const cli_opt *opts, const char *cmd, int *force) {
    const char *tok_path = cli_get(opts, "--tokenizer"), *out = cli_get(opts, "--out");
    if (!tok_path) {
        fprintf(stderr, "mambaq %s: no --tokenizer given and <shared>/models/tokenizer.json not found (" CLI_SHARED_HINT ")\n", cmd);
        exit(2);
    }
    *force = cli_flag(opts, "--force");
    if (out && fio_check_out(out, *force, 0)) mq_die("%s: --out: %s", cmd, mq_errmsg());
    return tok_path;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* the shared folder: $MQ_SHARED, else <repository of the executable>/../shared, else ../shared */
static const char *shared_root(char *buf, size_t n) {
    const char *env = getenv("MQ_SHARED");
    if (env && *env) return env;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char *s = strrchr(exe, '/');          /* <repo>/bin/mambaq -> <repo>/bin */
        if (s) *s = 0;
        if ((s = strrchr(exe, '/'))) *s = 0; /* -> <repo> */
        if ((size_t)snprintf(buf, n, "%s/../shared", exe) < n && is_dir(buf)) return buf;
    }
    return "../shared";
}

const char *cli_default_path(const char *rel) {
    char root[4200], buf[8400], abs[PATH_MAX];
    snprintf(buf, sizeof buf, "%s/%s", shared_root(root, sizeof root), rel);
    struct stat st;
    if (stat(buf, &st) != 0) return NULL;
    return strdup(realpath(buf, abs) ? abs : buf);
}

const char *cli_tokenizer(const char *dir, const char *given) {
    if (given) return given;
    char buf[4200];
    struct stat st;
    if (dir && (size_t)snprintf(buf, sizeof buf, "%s/tokenizer.json", dir) < sizeof buf && stat(buf, &st) == 0) return strdup(buf);
    if (dir && (size_t)snprintf(buf, sizeof buf, "%s/../tokenizer.json", dir) < sizeof buf && stat(buf, &st) == 0) return strdup(buf);
    return cli_default_path("models/tokenizer.json");
}

void cli_json_print(cJSON *j, int pretty) {
    char *s = pretty ? cJSON_Print(j) : cJSON_PrintUnformatted(j);
    printf("%s\n", s ? s : "null");
    free(s);
    cJSON_Delete(j);
}

const char *cli_abspath(const char *p) {
    char abs[PATH_MAX];
    return p && realpath(p, abs) ? strdup(abs) : p;
}

const char *cli_size_vs_fp16(double bytes, double fp16, char *buf, unsigned n) {
    const double r = bytes > 0 ? fp16 / bytes : 0;
    if (r >= 1) snprintf(buf, n, "%.2f MB, %.2f times smaller than FP16 (%.2f MB)", bytes / 1e6, r, fp16 / 1e6);
    else snprintf(buf, n, "%.2f MB, %.2f times larger than FP16 (%.2f MB)", bytes / 1e6, r > 0 ? 1 / r : 0, fp16 / 1e6);
    return buf;
}
