// The playground in a real browser: Vite builds the page, a small static server serves the build,
// and headless Debian Chromium (SwiftShader WebGPU, the flags of backend-webgpu's browser test)
// opens it with autorun. The page checks WebGPU with a matmul + softmax against the CPU backend,
// trains the demo model a few steps, generates, and the test checks the loss fell, the sample is
// text, and saves a screenshot under tools/playground/test-output/. Skipped, with the reason
// printed, where Chromium is not installed.
//
// Two runs: 16 steps on the CPU backend (backend=cpu), and a few steps on WebGPU (SwiftShader runs
// WebGPU on the CPU through an emulated GPU, far slower per step than the CPU backend for a model
// this small, so the WebGPU run is short: its first loss must equal the CPU run's (same weights,
// same batch) and its loss must fall). PLAYGROUND_TEST_STEPS / PLAYGROUND_TEST_WEBGPU_STEPS change
// the step counts (0 leaves a run out).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser } from 'playwright-core';
import { build } from 'vite';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'test-output');
const DIST = join(OUT, 'dist');
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
const CPU_STEPS = Number(process.env.PLAYGROUND_TEST_STEPS ?? 16);
const WEBGPU_STEPS = Number(process.env.PLAYGROUND_TEST_WEBGPU_STEPS ?? 5);

const missing = existsSync(CHROMIUM) ? '' : `no Chromium at ${CHROMIUM} (install Debian's chromium package)`;
if (missing) console.warn(`[playground test] SKIPPED: ${missing}`);

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };

interface PageState {
  phase: string;
  backend: string | null;
  device: string | null;
  losses: number[];
  sample: string;
  webgpu: { available: boolean; device?: string; maxAbsErr?: number; reason?: string } | null;
  error: string | null;
  seconds: number | null;
}

describe.skipIf(missing !== '')('playground in headless Chromium', () => {
  let server: Server;
  let browser: Browser;
  let url = '';

  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true });
    await build({ root: ROOT, configFile: join(ROOT, 'vite.config.ts'), logLevel: 'error', build: { outDir: DIST, emptyOutDir: true } });
    server = createServer((req, res) => {
      const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
      const file = join(DIST, path === '/' ? 'index.html' : path);
      if (!file.startsWith(DIST) || !existsSync(file)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const addr = server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}/`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  /** Opens the page with autorun, waits for it to finish, checks it, and returns the page's state. */
  async function runPage(BACKEND: 'cpu' | 'webgpu', STEPS: number): Promise<PageState> {
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    const logs: string[] = [];
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await page.goto(`${url}?backend=${BACKEND}&steps=${STEPS}&rows=2&seq=64&autorun=1`);
    await page.waitForFunction(
      () => {
        const s = (globalThis as { __playground?: { phase: string } }).__playground;
        return s?.phase === 'done' || s?.phase === 'error';
      },
      undefined,
      { timeout: 360_000, polling: 500 },
    );
    const state = (await page.evaluate(() => (globalThis as unknown as { __playground: unknown }).__playground)) as PageState;
    await page.screenshot({ path: join(OUT, `playground-${BACKEND}.png`), fullPage: true });
    expect(state.error, logs.join('\n')).toBeNull();

    // WebGPU (SwiftShader with these flags) must be there and agree with the CPU backend.
    expect(state.webgpu?.available, `${state.webgpu?.reason}\n${logs.join('\n')}`).toBe(true);
    expect(state.webgpu!.device).toMatch(/swiftshader/i);
    expect(state.webgpu!.maxAbsErr).toBeLessThan(1e-4);

    expect(state.backend).toBe(BACKEND);
    console.log(`[playground] trained on ${state.backend} (${state.device}): ${state.losses.length} steps in ${state.seconds?.toFixed(1)} s, loss ${state.losses[0]?.toFixed(3)} -> ${state.losses.at(-1)?.toFixed(3)}; WebGPU check on ${state.webgpu!.device}: max |diff| ${state.webgpu!.maxAbsErr}`);
    expect(state.losses).toHaveLength(STEPS);
    for (const l of state.losses) expect(Number.isFinite(l)).toBe(true);
    // Untrained: about ln(259) = 5.56 nats per byte.
    expect(state.losses[0]!).toBeGreaterThan(4.5);

    // The sample: streamed into the page after the prompt, UTF-8 text.
    expect(state.sample.length).toBeGreaterThan(0);
    const shown = await page.textContent('#sample');
    expect(shown).toBe(`One day, Mia${state.sample}`);
    const status = await page.textContent('#status');
    expect(status).toContain(`trained ${STEPS} steps on ${BACKEND}`);
    expect(existsSync(join(OUT, `playground-${BACKEND}.png`))).toBe(true);
    await page.close();
    return state;
  }

  let cpuFirstLoss: number | null = null;

  it.runIf(CPU_STEPS > 0)(`checks WebGPU, trains ${CPU_STEPS} steps on cpu (loss falls), generates, and saves a screenshot`, async () => {
    const state = await runPage('cpu', CPU_STEPS);
    cpuFirstLoss = state.losses[0]!;
    // The mean of the last steps must be well below the first.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(state.losses.slice(-3))).toBeLessThan(mean(state.losses.slice(0, 3)) - 0.5);
  }, 300_000);

  it.runIf(WEBGPU_STEPS > 0)(`trains ${WEBGPU_STEPS} steps on webgpu (first loss = the CPU's, loss falls) and generates`, async () => {
    const state = await runPage('webgpu', WEBGPU_STEPS);
    // Same seed, same weights and the same first batch as the CPU run: the same first loss up to
    // f32 rounding (the two backends sum in different orders).
    if (cpuFirstLoss !== null) expect(Math.abs(state.losses[0]! - cpuFirstLoss)).toBeLessThan(1e-3);
    expect(state.losses.at(-1)!).toBeLessThan(state.losses[0]! - 0.4);
  }, 400_000);
});
