// Importing a file registers its kernels.
import './elementwise.js';
import './basic.js';
import './reduce.js';
import './matmul.js';
import './shape.js';
import './indexing.js';
import './nn.js';
import './creation.js';
import './attention/index.js';
import './moe/index.js';
import './fp8/index.js';
