/** (being written) */
import type { Args } from '../common.js';

export async function moe(_a: Args): Promise<number> {
  console.log('moe: not built yet');
  return 1;
}
