// Importing a file registers its kernels for the 'cuda' backend.
import './elementwise.js';
import './reduce.js';
import './matmul.js';
import './shape.js';
import './indexing.js';
import './nn.js';
import './creation.js';
import './fp8.js';
import './gate.js';
import './attention.js';
import './lightning.js';
import './moe.js';
import './fp8_gemm.js';
