/** (being written) */
import type { Args } from '../common.js';

export async function flash(_a: Args): Promise<number> {
  console.log('flash: not built yet');
  return 1;
}
