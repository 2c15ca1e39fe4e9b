/**
 * Host overhead of a Ring-mini decode step on the CUDA backend, without a GPU: the backend runs on
 * the mock driver of test/mock (kernel launches are recorded, not run; MOCK_CUDA_SKIP_GEMM=1 makes
 * cuBLASLt calls validate and return). What is left is what bounds decode on a real GPU when the
 * kernels are short: JavaScript (op dispatch, shape checks, kernel lookup, argument packing) and
 * the driver calls themselves. On the GPU machine, tools/gpu's model step measures the same thing
 * with profileCall; this runs anywhere with a C compiler and koffi.
 *
 *   npm run bench:host --workspace=@ring-linear/backend-cuda -- [--batch 64] [--ctx 4096] [--steps 30]
 *                                                               [--full] [--kernels] [--profile DIR]
 *
 * The model has Ring-mini-linear-2.0's structure (20 layers in the 1:4 schedule, 256 experts,
 * top-8 of 8 groups, shared expert, dense first layer) and so its launches; the widths are small
 * unless --full (host work hardly depends on them, and the mock allocates real host memory).
 * Prints host ms per step (median and fastest), launches and copies per step, and live tensors
 * before and after the loop (flat: nothing leaks). --kernels lists the launches per step by kernel
 * (dtype suffixes folded); --profile writes a V8 CPU profile of the loop.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { buildMockCuda } from '../test/mock/build.js';

const { values: a } = parseArgs({
  options: {
    batch: { type: 'string', default: '64' },
    ctx: { type: 'string', default: '4096' },
    steps: { type: 'string', default: '30' },
    full: { type: 'boolean', default: false },
    kernels: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const B = Number(a.batch), ctx = Number(a.ctx), steps = Number(a.steps);
for (const [k, v] of [['batch', B], ['ctx', ctx], ['steps', steps]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive integer, got ${a[k]}`);
}

process.env.MOCK_CUDA_SKIP_GEMM = '1';
const built = await buildMockCuda();
if ('skip' in built) {
  console.log(`host-overhead bench skipped: ${built.skip}`);
  process.exit(0);
}
const core = await import('@ring-linear/core');
await import('@ring-linear/backend-cpu');
await import('../src/index.js');
const { RingLinearForCausalLM, preset, createConfig, configToJson } = await import('@ring-linear/models');
const { KVCache, LinearAttentionState } = await import('@ring-linear/attention');
const koffi = ((await import('koffi')) as { default: any }).default;
const b = (await core.initBackend('cuda')) as import('../src/backend.js').CudaBackend;

const mini = preset('ring-mini-linear-2.0');
const cfg = a.full
  ? mini
  : createConfig({
      ...configToJson(mini),
      hidden_size: 256, intermediate_size: 512, moe_intermediate_size: 64, moe_shared_expert_intermediate_size: 64,
      vocab_size: 4096, eos_token_id: 1, pad_token_id: 0, bos_token_id: 2,
    });
const t0 = performance.now();
const lm = new RingLinearForCausalLM(cfg, { dtype: 'bf16', generator: new core.Generator(1) });
console.log(`model: Ring-mini-linear-2.0 structure, ${cfg.num_hidden_layers} layers, ${cfg.num_experts} experts, hidden ${cfg.hidden_size}${a.full ? '' : ' (small widths)'}; built in ${(performance.now() - t0).toFixed(0)} ms`);

// A cache as after `ctx` tokens (contents do not matter: kernels do not run).
const cache = lm.createCache(B, { initialCapacity: ctx + steps + 8 });
for (const layer of cache.layers) {
  if (layer instanceof LinearAttentionState) layer.update(core.zeros(layer.state.shape, 'f32'), ctx);
  else if (layer instanceof KVCache) {
    core.tidy(() => {
      const kv = [B, ctx, cfg.num_key_value_heads, cfg.head_dim];
      layer.append(core.zeros(kv, 'bf16'), core.zeros(kv, 'bf16'));
    });
  }
}
cache.advance(ctx);
const ids = core.keep(core.tensor(Int32Array.from({ length: B }, (_, i) => (i * 7919) % cfg.vocab_size), [B, 1], 'i32'));

// Counters: kernel launches (the mock's), and driver and cuBLASLt calls by name.
const launches = koffi.load(`${built.dir}/libcuda.so.1`).func('int mock_launches(void)') as () => number;
const calls = new Map<string, number>();
for (const fns of [b.rt.driver.fn, b.rt.cublasLt.fn] as unknown as Record<string, unknown>[]) {
  for (const k of Object.keys(fns)) {
    const f = fns[k];
    if (typeof f !== 'function') continue;
    fns[k] = (...args: unknown[]) => {
      calls.set(k, (calls.get(k) ?? 0) + 1);
      return (f as (...x: unknown[]) => unknown)(...args);
    };
  }
}

// Launches by kernel name (--kernels), dtype suffixes folded: attn_rope_bf16 -> attn_rope_T.
const byKernel = new Map<string, number>();
if (a.kernels) {
  const launch = b.launch.bind(b);
  b.launch = (k, grid, block, smem) => {
    const name = k.name.replace(/_(bf16|f32|f16|i32|u8|bool|e4m3|e5m2)(?=_|$)/g, '_T');
    byKernel.set(name, (byKernel.get(name) ?? 0) + 1);
    launch(k, grid, block, smem);
  };
}

const step = () => core.tidy(() => void lm.forward(ids, { cache, logits: 'last' }));
for (let i = 0; i < 3; i++) step(); // warm-up: module loads, allocator pools, pointer tables
calls.clear();
byKernel.clear();
const live0 = core.memory().tensors;
const l0 = launches();

const inspector = await import('node:inspector');
const session = new inspector.Session();
const post = (m: string, p: object = {}) => new Promise<any>((res, rej) => session.post(m, p, (e, r) => (e ? rej(e) : res(r))));
if (a.profile) {
  session.connect();
  await post('Profiler.enable');
  await post('Profiler.setSamplingInterval', { interval: 100 });
  await post('Profiler.start');
}
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  const t = performance.now();
  step();
  times.push(performance.now() - t);
}
if (a.profile) {
  const { profile } = await post('Profiler.stop');
  mkdirSync(a.profile, { recursive: true });
  writeFileSync(`${a.profile}/decode-steps.cpuprofile`, JSON.stringify(profile));
  console.log(`CPU profile of the ${steps} steps: ${a.profile}/decode-steps.cpuprofile`);
}
const perStep = (n: number) => (n / steps).toFixed(0);
times.sort((x, y) => x - y);
const live1 = core.memory().tensors;
console.log(`decode B=${B}, context ${ctx}, ${steps} steps on the mock driver:`);
console.log(`  host ms/step     median ${times[steps >> 1]!.toFixed(2)}, fastest ${times[0]!.toFixed(2)}`);
console.log(`  launches/step    ${perStep(launches() - l0)}`);
console.log(`  other calls/step ${[...calls].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${perStep(v)}`).join(', ')}`);
if (a.kernels) {
  console.log('  launches/step by kernel:');
  for (const [k, n] of [...byKernel].sort((x, y) => y[1] - x[1])) console.log(`    ${perStep(n).padStart(5)}  ${k}`);
}
console.log(`  live tensors     ${live0} before, ${live1} after${live1 === live0 ? ' (flat)' : ' (GROWING)'}`);
cache.dispose();
ids.dispose();
process.exit(live1 === live0 ? 0 : 1);
