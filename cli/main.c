/* mambaq: post-training int8 quantization of Mamba models (after Quamba / Quamba2).
 * Git-style entry point: `mambaq <command> [options]`; each pipeline stage is a command that reads
 * and writes files. The commands live in cli/cmd_*.c and only call into the modules. */
#include <stdio.h>
#include <string.h>
#include "cli/cmds.h"

#define MQ_COMMAND_ENTRY(name, help) {#name, cmd_##name, help},
static const struct { const char *name; int (*fn)(int, char **); const char *help; } commands[] = {
    MQ_COMMANDS(MQ_COMMAND_ENTRY)};
#undef MQ_COMMAND_ENTRY

static void usage(FILE *f) {
    fprintf(f, "usage: mambaq <command> [options]   (mambaq <command> --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) { usage(stdout); return 0; }
    if (!strcmp(argv[1], "--version")) { printf("mambaq %s\n", MQ_VERSION); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "mambaq: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
