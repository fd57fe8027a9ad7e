// Benchmark of @tollgate/verify against its peers, in one Node run.
//
//   ./build.sh && node bench.mjs            (from edge/npm; needs npm ci for the peers)
//   node bench.mjs --rounds 5 --scale 2      (more rounds / more iterations)
//
// Prints verifications per second for ES256 and RS256 tokens:
// - this package: verify() (WebCrypto) and verifySync() (pure Rust in wasm),
// - jose jwtVerify with a local JWKS (createLocalJWKSet caches the imported keys),
// - jsonwebtoken verify with a parsed KeyObject,
// for cold tokens (each token seen once) and for one token verified repeatedly (the
// package's verified-token cache; time and denylist still checked on every hit), with
// the ratios to jose and jsonwebtoken; crypto.subtle.verify alone as a floor; the wasm
// size (raw, gzip -9) and load/instantiate times. Each figure is the median of the
// rounds; contenders alternate within a round, so drift hits all of them alike.

import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as jose from 'jose';
import jwt from 'jsonwebtoken';

const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const ROUNDS = flag('--rounds', 3);
const SCALE = flag('--scale', 1);
const WASM = fileURLToPath(new URL('./pkg/wasm/tollgate_wasm_bg.wasm', import.meta.url));
const ENTRY = new URL('./pkg/dist/node.js', import.meta.url).href;

// ---- load and instantiate: in fresh processes, before this one loads the package
async function loadTimes() {
  const bytes = readFileSync(WASM);
  const { publicKey, privateKey } = await jose.generateKeyPair('ES256', { extractable: true });
  const jwks = { keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'k' }] };
  const token = await new jose.SignJWT({ sub: 's' }).setProtectedHeader({ alg: 'ES256', kid: 'k' }).setExpirationTime('1h').sign(privateKey);
  const script = `
    const { performance } = require('node:perf_hooks');
    const t0 = performance.now();
    import(${JSON.stringify(ENTRY)}).then(async (m) => {
      const t1 = performance.now();
      const v = new m.Verifier({ jwks: ${JSON.stringify(jwks)}, cacheSize: 0 });
      v.verifySync(${JSON.stringify(token)});
      const t2 = performance.now();
      await v.verify(${JSON.stringify(token)});
      const t3 = performance.now();
      console.log(JSON.stringify({ importMs: t1 - t0, firstSyncMs: t2 - t1, firstAsyncMs: t3 - t2 }));
    });`;
  const runs = [];
  for (let i = 0; i < 7; i++) runs.push(JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })));
  const compile = [];
  for (let i = 0; i < 7; i++) {
    const t0 = performance.now();
    await WebAssembly.compile(bytes);
    compile.push(performance.now() - t0);
  }
  return {
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    compileMs: median(compile),
    importMs: median(runs.map((r) => r.importMs)),
    firstSyncMs: median(runs.map((r) => r.firstSyncMs)),
    firstAsyncMs: median(runs.map((r) => r.firstAsyncMs)),
  };
}

const load = await loadTimes();
const { Verifier } = await import(ENTRY);

const ISS = 'https://issuer.bench';
const AUD = 'https://api.bench';
const NOW = Math.floor(Date.now() / 1000);

async function setup(alg) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, modulusLength: 2048 });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: `${alg}-1`, alg, use: 'sig' };
  const jwks = { keys: [jwk] };
  const sign = (i) =>
    new jose.SignJWT({ sub: `user-${i}`, jti: `jti-${i}`, sid: `sid-${i % 97}`, scope: 'read write' })
      .setProtectedHeader({ alg, kid: jwk.kid, typ: 'JWT' })
      .setIssuer(ISS)
      .setAudience(AUD)
      .setIssuedAt(NOW - 10)
      .setExpirationTime(NOW + 3600)
      .sign(privateKey);
  return { alg, jwk, jwks, sign, keyObject: createPublicKey({ key: jwk, format: 'jwk' }) };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function rate(n, fn) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return n / ((performance.now() - t0) / 1000);
}

function rateSync(n, fn) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) fn(i);
  return n / ((performance.now() - t0) / 1000);
}

async function benchAlg(alg) {
  const s = await setup(alg);
  const fast = Math.round((alg === 'ES256' ? 1500 : 600) * SCALE);
  const slow = Math.round((alg === 'RS256' ? 100 : 300) * SCALE);
  const hot = Math.round(20000 * SCALE);
  // One pool of cold tokens, each seen once per contender and round: every round uses
  // fresh Verifiers, and jose/jsonwebtoken keep no per-token state.
  const tokens = [];
  for (let i = 0; i < fast; i++) tokens.push(await s.sign(i));
  const one = await s.sign(-1);
  let next = 0;
  const cold = () => tokens[next++ % tokens.length];
  const startPass = () => {
    next = 0;
  };

  const policy = { jwks: s.jwks, issuers: [ISS], audiences: [AUD], algorithms: [alg] };
  const joseJwks = jose.createLocalJWKSet(s.jwks);
  const joseOpts = { issuer: ISS, audience: AUD, algorithms: [alg], currentDate: new Date(NOW * 1000) };
  const jwtOpts = { issuer: ISS, audience: AUD, algorithms: [alg], clockTimestamp: NOW };
  const subtleKey = await crypto.subtle.importKey(
    'jwk',
    alg === 'ES256' ? { kty: 'EC', crv: 'P-256', x: s.jwk.x, y: s.jwk.y } : { kty: 'RSA', n: s.jwk.n, e: s.jwk.e },
    alg === 'ES256' ? { name: 'ECDSA', namedCurve: 'P-256' } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
    false,
    ['verify'],
  );
  const subtleAlg = alg === 'ES256' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };
  const parts = (t) => {
    const i = t.lastIndexOf('.');
    return [new TextEncoder().encode(t.slice(0, i)), Buffer.from(t.slice(i + 1), 'base64url')];
  };

  // Warm-up (JIT, key imports) with tokens outside the measured set.
  const warm = [];
  for (let i = 0; i < 50; i++) warm.push(await s.sign(100000 + i));
  const wv = new Verifier(policy);
  for (const t of warm) {
    await wv.verify(t);
    wv.verifySync(t);
    await jose.jwtVerify(t, joseJwks, joseOpts);
    jwt.verify(t, s.keyObject, jwtOpts);
  }

  const results = {};
  const add = (k, v) => (results[k] ??= []).push(v);
  for (let r = 0; r < ROUNDS; r++) {
    startPass();
    add('cold:webcrypto-only', await rate(fast, async () => {
      const [input, sig] = parts(cold());
      if (!(await crypto.subtle.verify(subtleAlg, subtleKey, sig, input))) throw new Error('bad');
    }));
    const v = new Verifier(policy);
    startPass();
    add('cold:tollgate verify', await rate(fast, () => v.verify(cold())));
    const vs = new Verifier(policy);
    startPass();
    add('cold:tollgate verifySync', rateSync(slow, () => vs.verifySync(cold())));
    startPass();
    add('cold:jose jwtVerify', await rate(fast, async () => jose.jwtVerify(cold(), joseJwks, joseOpts)));
    startPass();
    add('cold:jsonwebtoken', rateSync(fast, () => jwt.verify(cold(), s.keyObject, jwtOpts)));

    const hv = new Verifier(policy);
    await hv.verify(one);
    add('hot:tollgate verify', await rate(hot, () => hv.verify(one)));
    add('hot:tollgate verifySync', rateSync(hot, () => hv.verifySync(one)));
    add('hot:jose jwtVerify', await rate(fast, () => jose.jwtVerify(one, joseJwks, joseOpts)));
    add('hot:jsonwebtoken', rateSync(fast, () => jwt.verify(one, s.keyObject, jwtOpts)));
  }
  const out = {};
  for (const [k, xs] of Object.entries(results)) out[k] = median(xs);
  return out;
}

function fmt(n) {
  return n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1);
}

console.log(`@tollgate/verify bench — node ${process.version}, ${ROUNDS} rounds (median), scale ${SCALE}`);
console.log(
  `wasm: ${fmt(load.raw / 1024)} KiB raw, ${fmt(load.gzip / 1024)} KiB gzip -9 (goal < 300 KB)\n` +
    `load (fresh process, median of 7): import of the package (read + compile + instantiate + glue) ${load.importMs.toFixed(1)} ms; ` +
    `first verifySync ${load.firstSyncMs.toFixed(1)} ms, first verify ${load.firstAsyncMs.toFixed(1)} ms (lazy tier-up included); ` +
    `WebAssembly.compile ${load.compileMs.toFixed(1)} ms`,
);
for (const alg of ['ES256', 'RS256']) {
  const r = await benchAlg(alg);
  console.log(`\n${alg}                          verif/s      vs jose   vs jsonwebtoken`);
  for (const phase of ['cold', 'hot']) {
    const jose_ = r[`${phase}:jose jwtVerify`];
    const jwt_ = r[`${phase}:jsonwebtoken`];
    for (const name of ['tollgate verify', 'tollgate verifySync', 'jose jwtVerify', 'jsonwebtoken', 'webcrypto-only']) {
      const v = r[`${phase}:${name}`];
      if (v === undefined) continue;
      const label = `${phase === 'cold' ? 'cold' : 'repeated'} ${name}`.padEnd(30);
      console.log(`${label} ${fmt(v).padStart(10)}   ${(v / jose_).toFixed(2).padStart(7)}x   ${(v / jwt_).toFixed(2).padStart(7)}x`);
    }
  }
  const us = (x) => (1e6 / x).toFixed(0);
  console.log(`(per verification: verify ${us(r['cold:tollgate verify'])} µs, verifySync ${us(r['cold:tollgate verifySync'])} µs, jose ${us(r['cold:jose jwtVerify'])} µs, cache hit ${(1e6 / r['hot:tollgate verify']).toFixed(1)} µs)`);
}
