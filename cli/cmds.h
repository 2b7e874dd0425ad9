/* The subcommands: MQ_COMMANDS lists each once (name, one-line help); every cmd_<name> takes
 * (argc, argv) with argv[0] = the command name and returns the exit code (cli/cmd_<name>.c). */
#ifndef MQ_CMDS_H
#define MQ_CMDS_H
#define MQ_VERSION "0.1.0"

#define MQ_COMMANDS(X)                                                                                                 \
    X(run, "the main job on a model: FP32 eval, calib -> quantize -> simulated int8 eval, with a summary")            \
    X(eval, "perplexity of a model (or an int8 artifact) on a text or token file")                                     \
    X(tokenize, "text -> token ids with a tokenizer.json (GPT-NeoX byte-level BPE)")                                   \
    X(detokenize, "token ids -> text")                                                                                 \
    X(info, "a checkpoint's config, tensors and parameter count; checks that it loads")                                \
    X(calib, "activation statistics (absmax, percentiles, EMA, histograms) of a model on calibration data")            \
    X(stats, "print a calibration stats file: per-layer table and how it was made")                                    \
    X(quantize, "MODEL OUT: calibrate and quantize to an int8 artifact (W8A8 after Quamba), or --stats FILE")          \
    X(sweep, "int8 perplexity per recipe and percentile vs the float model, per-layer errors")                         \
    X(inspect, "validate an int8 artifact and summarize it: method, sizes, per-layer scales")                          \
    X(verify, "float model vs the int8 artifact: ppl, top-1 agreement, KL, layer cosine, check vs simulation")         \
    X(generate, "streaming text generation (greedy / temperature / top-p) with an int8 artifact or a float model") \
    X(report, "one self-contained HTML page: per layer and activation absmax vs clip, histograms, scales, verify")

#define MQ_DECLARE_COMMAND(name, help) int cmd_##name(int argc, char **argv);
MQ_COMMANDS(MQ_DECLARE_COMMAND)
#undef MQ_DECLARE_COMMAND

#endif
