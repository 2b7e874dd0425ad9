/* mambaq tokenize: placeholder until the module behind it lands. */
#include <stdio.h>
#include "cli/cmds.h"
int cmd_tokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "mambaq tokenize: not implemented yet\n"); return 1; }
