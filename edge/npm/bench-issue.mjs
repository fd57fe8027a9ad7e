// Issue throughput: Issuer.issueAccess (this package, WebCrypto) against jose's
// SignJWT signing the same claims (iss sub aud sid jti iat exp roles) with the same key,
// in the same run. Each iteration is a whole issue: a fresh jti, the clock, the claims,
// the signature, base64url. ES256 and RS256-2048; one token in flight at a time
// ("serial") and 16 ("16 in flight", WebCrypto runs signatures on Node's thread pool).
// Rounds interleave the two implementations; the ratio is the median of within-round
// ratios. Both tokens are first verified by the package (core) and compared claim by claim.
//
//   node bench-issue.mjs            (after ./build.sh)  BENCH_ROUNDS=N BENCH_ROUND_MS=M
import { loadavg } from 'node:os';
import * as jose from 'jose';
import { Issuer, KeySet, SigningKey, Verifier } from './pkg/dist/node.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const ROUND_MS = Number(process.env.BENCH_ROUND_MS ?? 1000);
const ISS = 'https://auth.example';
const AUD = 'https://api.example';

function randomJti() {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString('base64url');
}

async function setup(alg) {
  const access = await SigningKey.generate(alg);
  const refresh = await SigningKey.generate(alg);
  const now = Math.floor(Date.now() / 1000);
  const issuer = new Issuer({ issuer: ISS, audience: AUD }, new KeySet(access, now), new KeySet(refresh, now));
  const joseKey = await jose.importJWK(access.exportPrivateJwk(), alg);
  const kid = access.kid;
  const ours = () => issuer.issueAccess({ sub: 'user-42', sid: 'sess-42', roles: ['user'] });
  const theirs = () => {
    const iat = Math.floor(Date.now() / 1000);
    return new jose.SignJWT({ iss: ISS, sub: 'user-42', aud: AUD, sid: 'sess-42', jti: randomJti(), iat, exp: iat + 900, roles: ['user'] })
      .setProtectedHeader({ alg, typ: 'JWT', kid })
      .sign(joseKey);
  };
  // Both verify, with the same claims (but the jti).
  const v = new Verifier({ jwks: JSON.parse(issuer.jwks().body), ...issuer.accessPolicy() });
  const a = await v.verify((await ours()).token);
  const b = await v.verify(await theirs());
  for (const k of ['iss', 'sub', 'aud', 'sid', 'roles']) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) throw new Error(`claim ${k} differs`);
  if (Object.keys(a).sort().join() !== Object.keys(b).sort().join()) throw new Error('claim sets differ');
  return { ours, theirs };
}

async function rate(fn, inflight, ms) {
  const end = performance.now() + ms;
  let n = 0;
  const worker = async () => {
    while (performance.now() < end) {
      await fn();
      n++;
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inflight }, worker));
  return n / ((performance.now() - t0) / 1000);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (x) => Math.round(x).toLocaleString('en-US');

console.log(`node ${process.version}, ${ROUNDS} rounds × ${ROUND_MS} ms per case, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
console.log('| case | @tollgate/verify Issuer tokens/s | jose SignJWT tokens/s | ratio (median of rounds) |');
console.log('|---|---|---|---|');
for (const alg of ['ES256', 'RS256']) {
  const { ours, theirs } = await setup(alg);
  for (const inflight of [1, 16]) {
    await rate(ours, inflight, 200);
    await rate(theirs, inflight, 200);
    const a = [];
    const b = [];
    const r = [];
    for (let i = 0; i < ROUNDS; i++) {
      const first = i % 2 === 0;
      const x = first ? await rate(ours, inflight, ROUND_MS) : null;
      const y = await rate(theirs, inflight, ROUND_MS);
      const x2 = first ? x : await rate(ours, inflight, ROUND_MS);
      a.push(x2);
      b.push(y);
      r.push(x2 / y);
    }
    console.log(`| ${alg}, ${inflight === 1 ? 'serial' : `${inflight} in flight`} | ${fmt(median(a))} | ${fmt(median(b))} | **${median(r).toFixed(2)}×** |`);
  }
}
console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
