/* Helpers shared by the commands that quantize (quantize, sweep, run): option values -> q_options,
 * the tokenizer to copy, the provenance recorded in an artifact. */
#ifndef MQ_QCLI_H
#define MQ_QCLI_H
#include "cli/args.h"
#include "export/art.h"
#include "quantize/cstats.h"

/* given, else MODEL/tokenizer.json, MODEL/../tokenizer.json, ../shared/models/tokenizer.json; NULL if none. */
const char *q_cli_tokenizer(const char *model, const char *given);
/* --method, --percentile, --weight-granularity, --quantize-head -> o; exits 2 on invalid values. */
void q_cli_options(const cli_opt *opts, q_options *o);
void q_cli_provenance(const q_cstats *cs, const char *model_dir, art_provenance *p);

#endif
