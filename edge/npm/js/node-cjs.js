// Node CommonJS entry. build.sh bundles this file, the wasm-bindgen glue and the API
// into dist/node.cjs with esbuild (format cjs), so `require` works on every Node >= 20.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { initSync } from '../wasm/tollgate_wasm.js';

initSync({ module: readFileSync(join(__dirname, '..', 'wasm', 'tollgate_wasm_bg.wasm')) });

export * from './api.js';
