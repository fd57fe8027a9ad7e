// Browser and bundler entry: fetches and instantiates the wasm with top-level await.
// Bundlers (webpack 5, Vite, Parcel) see `new URL(..., import.meta.url)` and ship the
// .wasm file as an asset.
import init from '../wasm/tollgate_wasm.js';

await init({ module_or_path: new URL('../wasm/tollgate_wasm_bg.wasm', import.meta.url) });

export * from './api.js';
