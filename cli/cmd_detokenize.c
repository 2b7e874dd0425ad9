/* mambaq detokenize: placeholder until the module behind it lands. */
#include <stdio.h>
#include "cli/cmds.h"
int cmd_detokenize(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "mambaq detokenize: not implemented yet\n"); return 1; }
