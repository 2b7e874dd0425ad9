/* mambaq eval: placeholder until the module behind it lands. */
#include <stdio.h>
#include "cli/cmds.h"
int cmd_eval(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "mambaq eval: not implemented yet\n"); return 1; }
