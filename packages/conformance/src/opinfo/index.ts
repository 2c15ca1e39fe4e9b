// Every OpInfo record, by op family. A family file exports `const <family>OpInfos: OpInfo[]`.
import type { OpInfo } from './types.js';
import { elementwiseOpInfos } from './elementwise.js';
import { basicOpInfos } from './basic.js';
import { reduceOpInfos } from './reduce.js';
import { matmulOpInfos } from './matmul.js';
import { shapeOpInfos } from './shape.js';
import { indexingOpInfos } from './indexing.js';
import { nnOpInfos } from './nn.js';
import { creationOpInfos } from './creation.js';

export const ALL_OP_INFOS: readonly OpInfo[] = [
  ...elementwiseOpInfos,
  ...basicOpInfos,
  ...reduceOpInfos,
  ...matmulOpInfos,
  ...shapeOpInfos,
  ...indexingOpInfos,
  ...nnOpInfos,
  ...creationOpInfos,
];
export type * from './types.js';
