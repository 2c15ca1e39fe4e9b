// `npm run serve -w @ring-linear/playground`: builds the page with Vite and serves the build.
//   --port <n>   (default 4173)     --host <addr>   (default 127.0.0.1; 0.0.0.0 for other machines)
//   --no-build   serve the existing dist/ as it is
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { build, preview } from 'vite';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string' }, 'no-build': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  strict: true,
});
if (values.help) {
  console.log('usage: npm run serve -w @ring-linear/playground [-- --port 4173 --host 127.0.0.1 --no-build]');
  process.exit(0);
}
const port = values.port === undefined ? 4173 : Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port: expected an integer in [0, 65535], got '${values.port}'`);
  process.exit(2);
}
const configFile = fileURLToPath(new URL('../vite.config.ts', import.meta.url));
if (!values['no-build']) await build({ root, configFile, logLevel: 'warn' });
const server = await preview({ root, configFile, preview: { port, host: values.host ?? '127.0.0.1', strictPort: true } });
server.printUrls();
console.log('Open the page and press Train (or add ?autorun=1 to the URL). Ctrl-C stops the server.');
