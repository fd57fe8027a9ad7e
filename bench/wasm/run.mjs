// Runs the wasm32-wasip1 build of the bench loop under Node's WASI:
//   node --no-warnings bench/wasm/run.mjs path/to/tollgate-bench-wasm.wasm
// BENCH_QUICK is passed through; output is the loop's JSON lines on stdout.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const path = process.argv[2];
if (!path) {
  console.error('usage: node run.mjs FILE.wasm');
  process.exit(2);
}
const wasi = new WASI({
  version: 'preview1',
  args: ['tollgate-bench-wasm'],
  env: { BENCH_QUICK: process.env.BENCH_QUICK ?? '' },
});
const module = await WebAssembly.compile(await readFile(path));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
