// Node ESM entry (also Deno, which resolves the "node" condition): compiles and
// instantiates the wasm synchronously from the file beside the package, so the API
// is usable as soon as the import resolves.
import { readFileSync } from 'node:fs';
import { initSync } from '../wasm/tollgate_wasm.js';

initSync({ module: readFileSync(new URL('../wasm/tollgate_wasm_bg.wasm', import.meta.url)) });

export * from './api.js';
