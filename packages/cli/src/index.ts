/**
 * @ring-linear/cli: the `ring-linear` command (runCli) and the pieces it is made of, for
 * embedding the commands in other tools and for tests: the demo corpus and model, the argument
 * parser, backend probing, model loading and FP8 blockwise checkpoints.
 */
export { runCli, COMMANDS, findCommand, mainHelp, type RunCliOptions } from './cli.js';
export { version } from './version.js';
export { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, UsageError, CliError } from './errors.js';
export { processIo, TextSink, type CliIo, type OutStream } from './io.js';
export { parseCommandArgs, commandHelp, closest, editDistance, FlagReader, COMMON_FLAGS, type CommandSpec, type FlagSpec, type PositionalSpec, type ParsedArgs } from './args.js';
export type { Command, CommandContext } from './command.js';
export { BACKEND_NAMES, probeBackend, useBackend, type BackendName, type BackendReport } from './backends.js';
export { collectInfo, type InfoReport } from './commands/info.js';
export { builtinBench, findBenchSuite, type BuiltinResult } from './commands/bench.js';
export { demoCorpus, story, corpusWords, CorpusRandom, DEMO_PROMPTS, type DemoCorpusOptions } from './corpus.js';
export { demoModelConfig, describeLayers, DEMO_RECIPE } from './demo-model.js';
export { resolveModel, loadModel, tokenizerFor, configFromArg, type ResolvedModel, type LoadedModel } from './model-io.js';
export { writeFp8Checkpoint, loadFp8Checkpoint, isQuantizableWeight, fp8QuantizationOf, FP8_BLOCK_SIZE, type QuantizeReport, type QuantizationConfig } from './fp8-checkpoint.js';
export { runTraining, lossDrop, sparkline, makeSchedule, SCHEDULES, type RunOptions, type RunResult, type ScheduleName } from './training.js';
