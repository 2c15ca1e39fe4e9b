/**
 * FP8 blockwise checkpoints in the Hugging Face "fine-grained FP8" layout (the one DeepSeek-V3
 * and the Ling/Ring FP8 releases use):
 *
 *   <layer>.weight             F8_E4M3 (or F8_E5M2), the shape of the original weight
 *   <layer>.weight_scale_inv   F32 [ceil(out / 128), ceil(in / 128)]: the dequantization
 *                              multiplier of each 128 x 128 block (w ~= q * scale_inv)
 *   config.json                + "quantization_config": { "quant_method": "fp8", "fmt": "e4m3",
 *                                "activation_scheme": "dynamic", "weight_block_size": [128, 128] }
 *
 * Quantized are the Linear weights of attention (query_key_value, dense, g_proj) and of the
 * dense and expert MLPs (gate_proj, up_proj, down_proj). The embedding, the lm_head, every norm
 * and the router stay in their own dtypes (the router's scores decide which experts run, and
 * MODEL_SPEC §7 keeps the lm_head and router in f32). Scales follow @ring-linear/fp8's rule
 * (amax / format max per block, MODEL_SPEC §8).
 */
import { bytesPerElement, cast, dispose, fromBytes, init, noGrad, tidy, type DType, type Tensor } from '@ring-linear/core';
import { dequantizeRaw, quantize, type Fp8DType } from '@ring-linear/fp8';
import {
  CONFIG_FILE,
  CheckpointMismatchError,
  RingLinearForCausalLM,
  closeCheckpoint,
  configToJson,
  ignoredCheckpointName,
  openCheckpoint,
  readTensorBytes,
  saveSafetensors,
  type RingLinearConfig,
} from '@ring-linear/models';
import { CliError } from './errors.js';

export const FP8_BLOCK_SIZE = 128;

/** The weights that are quantized (see the file comment). */
export function isQuantizableWeight(name: string, shape: readonly number[]): boolean {
  if (shape.length !== 2) return false;
  if (/\.mlp\.gate\.weight$/.test(name)) return false; // the router
  return /\.(query_key_value|dense|g_proj|gate_proj|up_proj|down_proj)\.weight$/.test(name);
}

export interface QuantizationConfig {
  readonly quant_method: 'fp8';
  readonly fmt: 'e4m3' | 'e5m2';
  readonly activation_scheme: 'dynamic';
  readonly weight_block_size: readonly [number, number];
}

/** The quantization_config of a config, when it describes an FP8 blockwise checkpoint. */
export function fp8QuantizationOf(config: RingLinearConfig): QuantizationConfig | null {
  const q = config.extra.quantization_config as Partial<QuantizationConfig> | undefined;
  if (!q || typeof q !== 'object' || q.quant_method !== 'fp8') return null;
  const fmt = q.fmt ?? 'e4m3';
  const block = q.weight_block_size ?? [FP8_BLOCK_SIZE, FP8_BLOCK_SIZE];
  if ((fmt !== 'e4m3' && fmt !== 'e5m2') || !Array.isArray(block) || block[0] !== FP8_BLOCK_SIZE || block[1] !== FP8_BLOCK_SIZE) {
    throw new CliError(
      `quantization_config ${JSON.stringify(q)} is not supported: expected quant_method 'fp8', fmt 'e4m3' or 'e5m2', weight_block_size [128, 128]`,
    );
  }
  return { quant_method: 'fp8', fmt, activation_scheme: 'dynamic', weight_block_size: [FP8_BLOCK_SIZE, FP8_BLOCK_SIZE] };
}

export interface QuantizeReport {
  readonly out: string;
  readonly format: Fp8DType;
  readonly quantized: number;
  readonly kept: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  /** Largest |w - dequant(q)| / max|w| over the quantized weights (relative to each weight's amax). */
  readonly maxRelativeError: number;
}

/**
 * Quantizes a model's weights to an FP8 blockwise checkpoint folder (model.safetensors +
 * config.json). The folder is written atomically by saveSafetensors (temporary + rename).
 */
export async function writeFp8Checkpoint(model: RingLinearForCausalLM, out: string, format: Fp8DType): Promise<QuantizeReport> {
  const { mkdir, writeFile, rename } = await import('node:fs/promises');
  const path = await import('node:path');
  const sd = model.stateDict();
  const tensors = new Map<string, Tensor>();
  let quantized = 0;
  let kept = 0;
  let bytesBefore = 0;
  let bytesAfter = 0;
  let maxRel = 0;
  const seen = new Set<unknown>();
  try {
    for (const [name, t] of sd) {
      if (seen.has(t.storage)) continue; // a tied lm_head is written once, as the embedding
      seen.add(t.storage);
      const bytes = t.size * bytesPerElement(t.dtype);
      bytesBefore += bytes;
      if (!isQuantizableWeight(name, t.shape)) {
        tensors.set(name, t);
        bytesAfter += bytes;
        kept++;
        continue;
      }
      const q = noGrad(() => quantize(t, { dtype: format, layout: 'block128x128' }));
      // The round trip error, relative to the weight's largest magnitude (what FP8 can promise).
      const err = await relativeError(t, q.data, q.scales);
      maxRel = Math.max(maxRel, err);
      tensors.set(name, q.data);
      tensors.set(name.replace(/\.weight$/, '.weight_scale_inv'), q.scales);
      bytesAfter += q.data.size + q.scales.size * 4;
      quantized++;
    }
    await mkdir(out, { recursive: true });
    await saveSafetensors(path.join(out, 'model.safetensors'), tensors, { metadata: { format: 'pt', quantization: `fp8 ${format} block128x128` } });
    const config = {
      ...configToJson(model.config),
      quantization_config: {
        quant_method: 'fp8',
        fmt: format === 'f8e4m3' ? 'e4m3' : 'e5m2',
        activation_scheme: 'dynamic',
        weight_block_size: [FP8_BLOCK_SIZE, FP8_BLOCK_SIZE],
      },
    };
    const tmp = path.join(out, `.${CONFIG_FILE}.tmp-${process.pid}`);
    await writeFile(tmp, `${JSON.stringify(config, null, 2)}\n`);
    await rename(tmp, path.join(out, CONFIG_FILE));
    return { out, format, quantized, kept, bytesBefore, bytesAfter, maxRelativeError: maxRel };
  } finally {
    for (const [name, t] of tensors) if (!sd.has(name)) t.dispose();
    dispose(sd);
  }
}

async function relativeError(w: Tensor, data: Tensor, scales: Tensor): Promise<number> {
  const back = noGrad(() => dequantizeRaw(data, scales, 'block128x128', 'f32'));
  const wf = noGrad(() => (w.dtype === 'f32' ? w : cast(w, 'f32')));
  try {
    const a = (await wf.data()) as Float32Array;
    const b = (await back.data()) as Float32Array;
    let amax = 0;
    let err = 0;
    for (let i = 0; i < a.length; i++) {
      amax = Math.max(amax, Math.abs(a[i]!));
      err = Math.max(err, Math.abs(a[i]! - b[i]!));
    }
    return amax > 0 ? err / amax : 0;
  } finally {
    back.dispose();
    if (wf !== w) wf.dispose();
  }
}

/**
 * Builds the model of an FP8 blockwise folder and loads it, dequantizing each quantized weight
 * (q * scale_inv per 128 x 128 block) to the model's dtype. Names are checked as loadCheckpoint
 * checks them (every parameter present, nothing unexpected, shapes equal) before any read.
 */
export async function loadFp8Checkpoint(folder: string, config: RingLinearConfig, dtype: DType = 'f32'): Promise<RingLinearForCausalLM> {
  const index = await openCheckpoint(folder);
  const model = init.skipInit(() => new RingLinearForCausalLM(config, { dtype }));
  try {
    const params = new Map(model.namedParameters());
    const missing: string[] = [];
    const unexpected: string[] = [];
    const mismatched: { name: string; expected: string; got: string }[] = [];
    for (const [name, at] of index.tensors) {
      if (ignoredCheckpointName(name)) continue;
      if (name.endsWith('.weight_scale_inv')) {
        if (!index.tensors.has(name.replace(/_scale_inv$/, ''))) unexpected.push(name);
        continue;
      }
      const p = params.get(name);
      if (!p) unexpected.push(name);
      else if (at.entry.shape.join(',') !== p.shape.join(',')) mismatched.push({ name, expected: `[${p.shape.join(', ')}]`, got: `[${at.entry.shape.join(', ')}]` });
    }
    for (const name of params.keys()) if (!index.tensors.has(name)) missing.push(name);
    if (missing.length || unexpected.length || mismatched.length) throw new CheckpointMismatchError(missing, unexpected, mismatched);

    for (const [name, p] of params) {
      const at = index.tensors.get(name)!;
      const raw = fromBytes(await readTensorBytes(index.sources[at.file]!, at.entry), at.entry.shape, at.entry.dtype);
      const scaleAt = index.tensors.get(name.replace(/\.weight$/, '.weight_scale_inv'));
      let value: Tensor;
      if (scaleAt && name.endsWith('.weight')) {
        const scales = fromBytes(await readTensorBytes(index.sources[scaleAt.file]!, scaleAt.entry), scaleAt.entry.shape, scaleAt.entry.dtype);
        value = noGrad(() => tidy(() => dequantizeRaw(raw, scales, 'block128x128', p.dtype)));
        scales.dispose();
        raw.dispose();
      } else if (raw.dtype !== p.dtype) {
        if (raw.dtype === 'f8e4m3' || raw.dtype === 'f8e5m2') {
          throw new CliError(`${folder}: '${name}' is ${raw.dtype} but has no '${name.replace(/\.weight$/, '.weight_scale_inv')}' (an FP8 weight needs its block scales)`);
        }
        value = noGrad(() => cast(raw, p.dtype));
        raw.dispose();
      } else value = raw;
      p.assign(value);
    }
    return model;
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    await closeCheckpoint(index);
  }
}
