/* mambaq run: placeholder until the module behind it lands. */
#include <stdio.h>
#include "cli/cmds.h"
int cmd_run(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "mambaq run: not implemented yet\n"); return 1; }
