/* Option table parsing and generated --help for the subcommands (see args.h). */
#include "cli/args.h"
#include <errno.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void print_help(const cli_opt *opts, const char *usage, const char *description) {
    printf("usage: %s\n\n%s\n", usage, description);
    if (!opts || !opts[0].name) return;
    printf("\noptions:\n");
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        printf("  %-24s %s", left, o->help);
        if (o->def && o->metavar) printf(" (default: %s)", o->def);
        printf("\n");
    }
}

int cli_parse(int argc, char **argv, cli_opt *opts, const char *usage, const char *description,
              const char **positional, int max_pos) {
    int npos = 0;
    for (cli_opt *o = opts; o && o->name; o++) { o->value = o->def; o->given = 0; }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { print_help(opts, usage, description); exit(0); }
        if (a[0] == '-' && a[1] == '-') {
            const char *eq = strchr(a, '=');
            size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
            cli_opt *o = opts;
            for (; o && o->name; o++)
                if (strlen(o->name) == nlen && !strncmp(o->name, a, nlen)) break;
            if (!o || !o->name) {
                fprintf(stderr, "mambaq %s: unknown option '%.*s' (see 'mambaq %s --help')\n", argv[0], (int)nlen, a, argv[0]);
                exit(2);
            }
            o->given = 1;
            if (!o->metavar) {
                if (eq) { fprintf(stderr, "mambaq %s: option %s takes no value\n", argv[0], o->name); exit(2); }
                o->value = "1";
            } else if (eq) {
                o->value = eq + 1;
            } else {
                if (i + 1 >= argc) { fprintf(stderr, "mambaq %s: option %s needs a value (%s)\n", argv[0], o->name, o->metavar); exit(2); }
                o->value = argv[++i];
            }
        } else {
            if (npos >= max_pos) {
                fprintf(stderr, "mambaq %s: unexpected argument '%s' (see 'mambaq %s --help')\n", argv[0], a, argv[0]);
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

const char *cli_default_path(const char *rel) {
    const char *root = getenv("MQ_SHARED");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : "../shared", rel);
    struct stat st;
    return stat(buf, &st) == 0 ? strdup(buf) : NULL;
}
