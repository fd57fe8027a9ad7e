// Compares two builds of the package in one Node run (e.g. opt-level "s" and "z"):
// wasm size, import time, pure-Rust verifySync on cold tokens, verify (WebCrypto) on
// cold tokens, and cache hits. Measurements alternate between the builds each round.
//
//   cp -r pkg /tmp/pkg-s
//   TOLLGATE_WASM_OPT_LEVEL=z ./build.sh && cp -r pkg /tmp/pkg-z
//   node bench-opt-level.mjs /tmp/pkg-s /tmp/pkg-z [--rounds 5]

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as jose from 'jose';

const args = process.argv.slice(2);
const ri = args.indexOf('--rounds');
const ROUNDS = ri >= 0 ? Number(args[ri + 1]) : 5;
const dirs = args.filter((a, i) => !a.startsWith('--') && (ri < 0 || i !== ri + 1));
if (dirs.length !== 2) throw new Error('usage: node bench-opt-level.mjs PKG_A PKG_B [--rounds N]');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const NOW = Math.floor(Date.now() / 1000);

const builds = [];
for (const dir of dirs) {
  const entry = pathToFileURL(resolve(dir, 'dist/node.js')).href;
  const bytes = readFileSync(resolve(dir, 'wasm/tollgate_wasm_bg.wasm'));
  const script = `const t0 = performance.now(); import(${JSON.stringify(entry)}).then(() => console.log(performance.now() - t0));`;
  const imports = [];
  for (let i = 0; i < 5; i++) imports.push(Number(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })));
  builds.push({ dir, mod: await import(entry), raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length, importMs: median(imports), r: {} });
}

for (const alg of ['ES256', 'RS256']) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwks = { keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'k', alg }] };
  const n = alg === 'ES256' ? 60 : 40;
  const tokens = [];
  for (let i = 0; i < n * 2; i++) {
    tokens.push(await new jose.SignJWT({ sub: `u${i}` }).setProtectedHeader({ alg, kid: 'k' }).setExpirationTime(NOW + 600).sign(privateKey));
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const b of round % 2 ? [...builds].reverse() : builds) {
      const { Verifier } = b.mod;
      const add = (k, v) => (b.r[`${alg} ${k}`] ??= []).push(v);
      let v = new Verifier({ jwks });
      let t0 = performance.now();
      for (let i = 0; i < n; i++) v.verifySync(tokens[i], { now: NOW });
      add('verifySync cold µs', ((performance.now() - t0) * 1000) / n);
      v = new Verifier({ jwks });
      t0 = performance.now();
      for (let i = n; i < 2 * n; i++) await v.verify(tokens[i], { now: NOW });
      add('verify cold µs', ((performance.now() - t0) * 1000) / n);
      t0 = performance.now();
      for (let i = 0; i < 20000; i++) v.verifySync(tokens[n], { now: NOW });
      add('cache hit µs', ((performance.now() - t0) * 1000) / 20000);
    }
  }
}

console.log(`${'build'.padEnd(28)} ${dirs.map((d) => d.padStart(16)).join(' ')}`);
console.log(`${'wasm raw bytes'.padEnd(28)} ${builds.map((b) => String(b.raw).padStart(16)).join(' ')}`);
console.log(`${'wasm gzip -9 bytes'.padEnd(28)} ${builds.map((b) => String(b.gzip).padStart(16)).join(' ')}`);
console.log(`${'import ms (fresh process)'.padEnd(28)} ${builds.map((b) => b.importMs.toFixed(1).padStart(16)).join(' ')}`);
for (const k of Object.keys(builds[0].r)) {
  console.log(`${k.padEnd(28)} ${builds.map((b) => median(b.r[k]).toFixed(1).padStart(16)).join(' ')}`);
}
