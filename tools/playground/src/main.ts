/**
 * The playground page: trains the demo model (@ring-linear/cli/demo: the same hybrid and the same
 * synthetic stories as `ring-linear demo`) in the browser on WebGPU, or the CPU backend when the
 * browser has no WebGPU adapter, with a live loss chart; then generates text with it.
 *
 * URL parameters (for links and the Playwright test): backend=auto|webgpu|cpu, steps=<n>,
 * rows=<n>, seq=<n>, autorun=1 (train and generate on load). window.__playground reports the
 * state for tests.
 */
import '@ring-linear/backend-cpu';
import '@ring-linear/backend-webgpu';
import { initBackend, manualSeed, matmul, setBackend, softmax, tensor, toBackend, type Tensor } from '@ring-linear/core';
import { BYTE_VOCAB, ByteTokenizer, RingLinearForCausalLM, countParameters } from '@ring-linear/models';
import { Sampler } from '@ring-linear/sampler';
import { PackedDataset, Trainer, cosineSchedule, packDocuments, tokenizeTexts } from '@ring-linear/trainer';
import { DEMO_RECIPE, demoCorpus, demoModelConfig, describeLayers } from '@ring-linear/cli/demo';
import { LossChart } from './chart.js';

type Phase = 'idle' | 'checking' | 'training' | 'trained' | 'generating' | 'done' | 'error';

interface PlaygroundState {
  phase: Phase;
  /** The backend the model trained on. */
  backend: string | null;
  device: string | null;
  losses: number[];
  sample: string;
  /** The WebGPU check: a matmul and a softmax on WebGPU compared with the CPU backend. */
  webgpu: { available: boolean; device?: string; maxAbsErr?: number; reason?: string } | null;
  error: string | null;
  seconds: number | null;
}

const state: PlaygroundState = { phase: 'idle', backend: null, device: null, losses: [], sample: '', webgpu: null, error: null, seconds: null };
(globalThis as { __playground?: PlaygroundState }).__playground = state;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const chart = new LossChart($<HTMLCanvasElement>('chart'));
const tokenizer = new ByteTokenizer();
let model: RingLinearForCausalLM | null = null;
let stopRequested = false;

for (const [param, id] of [['backend', 'backend'], ['steps', 'steps'], ['rows', 'rows']] as const) {
  const v = params.get(param);
  if (v !== null) $<HTMLInputElement>(id).value = v;
}

function setStatus(text: string): void {
  $('status').textContent = text;
}

function fail(err: unknown): void {
  state.phase = 'error';
  state.error = err instanceof Error ? err.message : String(err);
  setStatus(`error: ${state.error}`);
  console.error(err);
}

/** Lets the browser paint (and handle clicks) between steps. */
function nextFrame(): Promise<void> {
  return new Promise((r) => requestAnimationFrame(() => r()));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Runs a small matmul + softmax on WebGPU and on the CPU backend and compares them. */
async function checkWebGpu(): Promise<PlaygroundState['webgpu']> {
  if (!(navigator as { gpu?: unknown }).gpu) return { available: false, reason: 'this browser has no navigator.gpu' };
  try {
    const gpu = await initBackend('webgpu');
    const cpu = await initBackend('cpu');
    let s = 7;
    const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 4294967296) * 2 - 1;
    const a = tensor(Float32Array.from({ length: 37 * 53 }, rnd), [37, 53], 'f32', cpu);
    const b = tensor(Float32Array.from({ length: 53 * 29 }, rnd), [53, 29], 'f32', cpu);
    const ga = await toBackend(a, 'webgpu');
    const gb = await toBackend(b, 'webgpu');
    const pairs: [Tensor, Tensor][] = [];
    const gc = matmul(ga, gb);
    const cc = matmul(a, b);
    pairs.push([gc, cc], [softmax(gc, -1), softmax(cc, -1)]);
    let err = 0;
    for (const [g, c] of pairs) err = Math.max(err, maxAbsDiff((await g.data()) as Float32Array, (await c.data()) as Float32Array));
    for (const t of [a, b, ga, gb, ...pairs.flat()]) t.dispose();
    return { available: true, device: gpu.capabilities.device, maxAbsErr: err };
  } catch (err) {
    return { available: false, reason: err instanceof Error ? err.message : String(err) };
  }
}

async function chooseBackend(preference: string): Promise<string> {
  if (preference !== 'cpu' && state.webgpu?.available) {
    await setBackend('webgpu');
    return 'webgpu';
  }
  if (preference === 'webgpu') throw new Error(`WebGPU is not available here: ${state.webgpu?.reason ?? 'unknown reason'}`);
  await setBackend('cpu');
  return 'cpu';
}

async function train(): Promise<void> {
  const steps = Math.max(1, Math.floor(Number($<HTMLInputElement>('steps').value) || DEMO_RECIPE.steps));
  const rows = Math.max(1, Math.floor(Number($<HTMLInputElement>('rows').value) || DEMO_RECIPE.rows));
  const seqLen = Math.max(8, Math.floor(Number(params.get('seq')) || DEMO_RECIPE.seqLen));
  state.phase = 'training';
  stopRequested = false;
  $<HTMLButtonElement>('train').disabled = true;
  $<HTMLButtonElement>('stop').disabled = false;
  $<HTMLButtonElement>('generate').disabled = true;
  const backend = await chooseBackend($<HTMLSelectElement>('backend').value);
  const t0 = performance.now();
  model?.dispose();
  manualSeed(DEMO_RECIPE.seed);
  const config = demoModelConfig();
  model = new RingLinearForCausalLM(config);
  state.backend = backend;
  state.device = (await initBackend(backend)).capabilities.device;
  state.losses = [];
  $('device').textContent = `training on ${backend} (${state.device}): ${describeLayers(config)}, ${countParameters(config).total.toLocaleString('en-US')} parameters`;
  const docs = tokenizeTexts(demoCorpus({ seed: DEMO_RECIPE.seed }), tokenizer);
  const trainer = new Trainer({
    model,
    train: new PackedDataset(packDocuments(docs, { seqLen, padId: BYTE_VOCAB.pad }), { seed: DEMO_RECIPE.seed }),
    totalSteps: steps,
    rowsPerMicroBatch: rows,
    schedule: cosineSchedule({ peakLr: DEMO_RECIPE.peakLr, warmupSteps: Math.min(DEMO_RECIPE.warmupSteps, steps - 1), totalSteps: steps, minLr: DEMO_RECIPE.minLr }),
    optimizer: { lr: DEMO_RECIPE.peakLr, weightDecay: DEMO_RECIPE.weightDecay },
    progress: false,
  });
  chart.reset(steps);
  try {
    while (trainer.step < steps && !stopRequested) {
      const m = await trainer.trainStep();
      state.losses.push(m.loss);
      chart.push(m.loss);
      setStatus(`step ${m.step}/${steps}: loss ${m.loss.toFixed(3)}, ${Math.round(m.tokensPerSecond)} tokens/s`);
      await nextFrame();
    }
  } finally {
    trainer.dispose();
    $<HTMLButtonElement>('train').disabled = false;
    $<HTMLButtonElement>('stop').disabled = true;
  }
  state.seconds = (performance.now() - t0) / 1000;
  state.phase = 'trained';
  setStatus(`trained ${state.losses.length} steps on ${backend} in ${state.seconds.toFixed(1)} s: loss ${state.losses[0]!.toFixed(3)} -> ${state.losses[state.losses.length - 1]!.toFixed(3)}`);
  $<HTMLButtonElement>('generate').disabled = false;
}

async function generate(): Promise<void> {
  if (!model) return;
  state.phase = 'generating';
  $<HTMLButtonElement>('generate').disabled = true;
  const prompt = $<HTMLInputElement>('prompt').value || 'One day, Mia';
  const temperature = Math.max(0, Number($<HTMLInputElement>('temperature').value) || 0);
  const out = $('sample');
  out.textContent = prompt;
  state.sample = '';
  model.eval();
  const sampler = new Sampler(model, { tokenizer });
  for await (const ev of sampler.stream(prompt, { maxTokens: 160, temperature, seed: 1 })) {
    state.sample += ev.text;
    out.textContent = prompt + state.sample;
  }
  model.train();
  state.phase = 'done';
  $<HTMLButtonElement>('generate').disabled = false;
}

async function init(): Promise<void> {
  state.phase = 'checking';
  setStatus('checking WebGPU ...');
  state.webgpu = await checkWebGpu();
  const w = state.webgpu!;
  $('webgpu-check').textContent = w.available
    ? `WebGPU: ${w.device}; matmul + softmax agree with the CPU backend (max |difference| ${w.maxAbsErr!.toExponential(1)})`
    : `WebGPU not available (${w.reason}); training runs on the CPU backend`;
  state.phase = 'idle';
  setStatus('ready');
  $<HTMLButtonElement>('train').onclick = () => void train().catch(fail);
  $<HTMLButtonElement>('stop').onclick = () => {
    stopRequested = true;
  };
  $<HTMLButtonElement>('generate').onclick = () => void generate().catch(fail);
  if (params.get('autorun') === '1') {
    await train();
    await generate();
  }
}

init().catch(fail);
