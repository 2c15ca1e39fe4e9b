/** The steps kept in their own files (each `node run.mjs <name> --out DIR [--torch FILE] [--seed N] [--small]`). */
import type { Args } from '../common.js';
import { flash } from './flash.js';
import { lightning } from './lightning.js';
import { fp8gemm } from './fp8gemm.js';
import { moe } from './moe.js';
import { model } from './model.js';

export const STEPS: Record<string, (a: Args) => Promise<number>> = { flash, lightning, fp8gemm, moe, model };
