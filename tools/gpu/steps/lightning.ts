/** (being written) */
import type { Args } from '../common.js';

export async function lightning(_a: Args): Promise<number> {
  console.log('lightning: not built yet');
  return 1;
}
