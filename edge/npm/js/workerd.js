// Cloudflare Workers entry ("workerd" export condition): wrangler bundles the .wasm
// import as a compiled WebAssembly.Module, which is instantiated synchronously here.
import wasmModule from '../wasm/tollgate_wasm_bg.wasm';
import { initSync } from '../wasm/tollgate_wasm.js';

initSync({ module: wasmModule });

export * from './api.js';
