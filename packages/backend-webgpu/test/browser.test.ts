// The backend in a real browser: headless Debian Chromium (SwiftShader WebGPU) loads a page that
// runs matmul + softmax on this backend and on the CPU backend and compares them. Skipped, with
// the reason printed, where Chromium is not installed or offers no WebGPU adapter.
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from 'esbuild';
import { chromium, type Browser } from 'playwright-core';

const CHROMIUM = process.env.RING_LINEAR_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--use-vulkan=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--no-sandbox',
  '--disable-gpu-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const missing = existsSync(CHROMIUM) ? '' : `no Chromium at ${CHROMIUM} (install Debian's chromium package)`;
if (missing) console.warn(`[backend-webgpu browser test] SKIPPED: ${missing}`);

describe.skipIf(missing !== '')('in headless Chromium', () => {
  let server: Server;
  let browser: Browser;
  let url = '';

  beforeAll(async () => {
    const bundle = await build({
      entryPoints: [fileURLToPath(new URL('./browser/entry.ts', import.meta.url))],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      write: false,
      // Workspace packages resolve to their TypeScript sources, as in the tests.
      conditions: ['@ring-linear/source'],
      logLevel: 'silent',
    });
    const js = bundle.outputFiles[0]!.text;
    const html = '<!doctype html><meta charset="utf-8"><title>ring-linear webgpu</title><script type="module" src="/bundle.js"></script>';
    server = createServer((req, res) => {
      if (req.url === '/bundle.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
      else if (req.url === '/' || req.url === '/index.html') res.writeHead(200, { 'content-type': 'text/html' }).end(html);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('runs matmul + softmax through navigator.gpu and matches the CPU backend', async () => {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(url);
    // With these flags Chromium always has SwiftShader's adapter: its absence is a failure.
    const hasGpu = await page.evaluate(async () => {
      const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
      return gpu ? (await gpu.requestAdapter()) !== null : false;
    });
    expect(hasGpu, `Chromium (${CHROMIUM}) offers no WebGPU adapter with flags ${FLAGS.join(' ')}`).toBe(true);
    await page.waitForFunction(() => (globalThis as { __ringLinearResult?: unknown }).__ringLinearResult !== undefined, undefined, { timeout: 60_000 });
    const result = await page.evaluate(() => (globalThis as unknown as { __ringLinearResult: Promise<unknown> }).__ringLinearResult);
    const r = result as { ok: boolean; device?: string; error?: string; checks?: { name: string; maxAbsErr: number; maxRef: number }[] };
    expect(r.error, logs.join('\n')).toBeUndefined();
    expect(r.ok).toBe(true);
    console.log(`[browser] device: ${r.device}`);
    expect(r.checks!.map((c) => c.name)).toEqual(['matmul', 'softmax', 'softmax(axis 0)']);
    for (const c of r.checks!) {
      // f32: matmul sums of 67 products (|values| up to ~10), softmax values in [0, 1].
      expect(c.maxRef, c.name).toBeGreaterThan(0);
      expect(c.maxAbsErr, c.name).toBeLessThan(c.name === 'matmul' ? 1e-4 : 1e-6);
    }
    await page.close();
  });
});
