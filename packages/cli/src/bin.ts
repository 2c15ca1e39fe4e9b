#!/usr/bin/env node
// The `ring-linear` executable: everything is in runCli (src/cli.ts), testable without spawning.
import { runCli } from './cli.js';

// Run from the TypeScript sources (npm run demo / npm run ring-linear in the repository), hints
// should name the npm script; the installed command names itself.
const fromSources = import.meta.url.endsWith('.ts');
process.exitCode = await runCli(process.argv.slice(2), undefined, { invocation: fromSources ? 'npm run ring-linear --' : 'ring-linear' });
