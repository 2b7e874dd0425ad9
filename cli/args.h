/* Option parsing shared by every subcommand: a table of options with help text and defaults, so
 * each command's --help is generated from the same table that parses it. */
#ifndef MQ_ARGS_H
#define MQ_ARGS_H

typedef struct {
    const char *name;     /* "--model" */
    const char *metavar;  /* "DIR"; NULL for a flag without a value */
    const char *help;
    const char *def;      /* default value shown in --help and returned when not given; may be NULL */
    const char *value;    /* filled by cli_parse: the given value, or def ("1" for a given flag) */
    int given;            /* set by cli_parse */
} cli_opt;

/* Parses argv[1..] (argv[0] is the command name). Prints help and exits 0 on --help/-h; prints a
 * clear error and exits 2 on an unknown option or a missing value. Positional arguments are stored
 * in positional[] (at most max_pos; more is an error); returns their count. */
int cli_parse(int argc, char **argv, cli_opt *opts, const char *usage, const char *description,
              const char **positional, int max_pos);

const char *cli_get(const cli_opt *opts, const char *name);   /* value or NULL */
int cli_flag(const cli_opt *opts, const char *name);          /* 1 if given */
/* Integer/float values with range checks; exit 2 with a message naming the option when invalid. */
long cli_int(const cli_opt *opts, const char *name, long lo, long hi);
double cli_double(const cli_opt *opts, const char *name, double lo, double hi);

/* Applies --threads N (the CPU threads OpenMP uses) when the table has it and it was given. */
void cli_threads(const cli_opt *opts);

/* Default locations: ../shared/models/mamba1-proxy etc., relative to the repository root, or
 * $MQ_SHARED. Returns path when it exists, else NULL. Static buffer per call site is NOT kept:
 * the result is strdup'ed and owned by the caller's process lifetime. */
const char *cli_default_path(const char *rel_to_shared);

#endif
