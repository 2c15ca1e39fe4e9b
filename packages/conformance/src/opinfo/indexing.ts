import type { OpInfo } from './types.js';

// (being written)
export const indexingOpInfos: OpInfo[] = [];
