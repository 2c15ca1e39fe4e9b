#!/usr/bin/env node
// The `ring-linear-conformance` command: `node dist/cli.js --backend webgpu`. See cli_run.ts.
import { runConformanceCli } from './cli_run.js';

process.exitCode = await runConformanceCli(process.argv.slice(2));
