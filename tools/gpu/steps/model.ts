/** (being written) */
import type { Args } from '../common.js';

export async function model(_a: Args): Promise<number> {
  console.log('model: not built yet');
  return 1;
}
