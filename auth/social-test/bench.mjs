// The callback's cost and the JWKS fetches under a burst of unknown-kid tokens, against
// the Kakao-shaped local provider, with the peer measured in the same run: panva's
// openid-client 6 (what Passport's OpenID strategies build on) doing the same code
// exchange + ID-token verification (with enableNonRepudiationChecks, so it verifies the
// signature against the JWKS as tollgate-auth does; without it openid-client skips
// that for token-endpoint ID tokens).
//   node bench.mjs            (through auth/bench-social.sh)
// Env: RUNS (interleaved rounds, 3), PER (callbacks per side per round, 20), BURST (50).
import os from 'node:os';
import * as client from 'openid-client';

import { stopAll, freePort } from '../../tests/lib/procs.mjs';
import { startRevocation } from '../../tests/lib/stack.mjs';
import { startProvider, Jar, step, authorize } from './lib/provider.mjs';
import { startAuth } from './lib/auth.mjs';

const RUNS = Number(process.env.RUNS ?? 3);
const PER = Number(process.env.PER ?? 20);
const BURST = Number(process.env.BURST ?? 50);
const load = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const acct = () => String(1_000_000_000 + Math.floor(Math.random() * 8e9));

console.log(`load average at start: ${load()} (${os.cpus().length} cores)`);
const svc = await startRevocation();
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const peerRedirect = `${base}/peer/callback`;
const kakao = await startProvider({ shape: 'kakao', clientId: 'kakao-client', clientSecret: 'kakao-secret', redirectUris: [`${base}/auth/kakao/callback`, peerRedirect] });
const auth = await startAuth(svc, { port, providers: { kakao: { preset: 'kakao', issuer: kakao.issuer, client_id: 'kakao-client', client_secret: 'kakao-secret' } }, env: { TOLLGATE_AUTH_LOG: 'warn' }, logName: 'auth-bench' });

const config = await client.discovery(new URL(kakao.issuer), 'kakao-client', { token_endpoint_auth_method: 'client_secret_post' }, client.ClientSecretPost('kakao-secret'), { execute: [client.allowInsecureRequests] });
client.enableNonRepudiationChecks(config);

/** tollgate-auth: an authorized callback URL (untimed), then the timed callback. */
async function tollgateOnce() {
  const jar = new Jar();
  const { location } = await step(jar, `${base}/auth/kakao/start`);
  const cb = await authorize(jar, location, acct());
  const t0 = performance.now();
  const r = await step(jar, cb);
  const ms = performance.now() - t0;
  if (r.res.status !== 303) throw new Error(`tollgate callback ${r.res.status}`);
  return ms;
}

async function peerAuthorized() {
  const jar = new Jar();
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: peerRedirect, scope: 'openid account_email', state, nonce,
    code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256',
  });
  const cb = await authorize(jar, url.toString(), acct());
  return { cb, verifier, state, nonce };
}

/** openid-client: the same exchange + ID-token verification, timed. */
async function peerOnce() {
  const { cb, verifier, state, nonce } = await peerAuthorized();
  const t0 = performance.now();
  const tokens = await client.authorizationCodeGrant(config, new URL(cb), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true });
  const ms = performance.now() - t0;
  if (!tokens.claims()?.sub) throw new Error('peer: no claims');
  return ms;
}

// Warm-up (discovery, JWKS, connections, JIT).
for (let i = 0; i < 3; i += 1) { await tollgateOnce(); await peerOnce(); }

console.log('\n## Callback cost (code exchange + ID-token verification), sequential, Kakao-shaped local provider');
console.log('tollgate-auth also records the used state, creates the account, links the identity and starts the session at the revocation service (fsync); the peer only exchanges and verifies.\n');
console.log('| run | tollgate-auth p50 / p99 ms | openid-client p50 / p99 ms | ratio (peer p50 / tollgate p50) |');
console.log('|---|---|---|---|');
for (let run = 1; run <= RUNS; run += 1) {
  const t = []; const p = [];
  for (let i = 0; i < PER; i += 1) { t.push(await tollgateOnce()); p.push(await peerOnce()); }
  console.log(`| ${run} | ${pct(t, 0.5).toFixed(1)} / ${pct(t, 0.99).toFixed(1)} | ${pct(p, 0.5).toFixed(1)} / ${pct(p, 0.99).toFixed(1)} | ${(pct(p, 0.5) / pct(t, 0.5)).toFixed(2)}× |`);
}

console.log(`\n## JWKS fetches under a burst of ${BURST} ID tokens with an unknown kid (all at once)`);
// tollgate-auth: BURST authorized callbacks, then the provider signs every ID token with a rogue key.
const pending = [];
for (let i = 0; i < BURST; i += 1) {
  const jar = new Jar();
  const { location } = await step(jar, `${base}/auth/kakao/start`);
  pending.push({ jar, cb: await authorize(jar, location, acct()) });
}
const peerPending = [];
for (let i = 0; i < BURST; i += 1) peerPending.push(await peerAuthorized());
const rows = [];
for (const round of [1, 2]) {
  kakao.tamperAll((c) => c, { rogue: true });
  const half = pending.splice(0, Math.ceil(BURST / 2));
  let before = kakao.state.jwksFetches;
  const answers = await Promise.all(half.map(({ jar, cb }) => step(jar, cb).then((r) => r.res.json())));
  const tFetches = kakao.state.jwksFetches - before;
  const refused = answers.filter((b) => b.reason === 'unknown_key').length;
  const peerHalf = peerPending.splice(0, Math.ceil(BURST / 2));
  before = kakao.state.jwksFetches;
  const peerAnswers = await Promise.allSettled(peerHalf.map(({ cb, verifier, state, nonce }) =>
    client.authorizationCodeGrant(config, new URL(cb), { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true })));
  const pFetches = kakao.state.jwksFetches - before;
  const peerRefused = peerAnswers.filter((a) => a.status === 'rejected').length;
  kakao.tamperStop();
  rows.push(`| ${round} | ${half.length} | ${tFetches} | ${refused}/${half.length} | ${pFetches} | ${peerRefused}/${peerHalf.length} |`);
}
console.log('| burst | tokens | tollgate-auth JWKS fetches | refused | openid-client JWKS fetches | refused |');
console.log('|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
console.log('(both bursts within one minute; goal: at most one fetch per minute per provider)');
console.log(`\nload average at the end: ${load()}`);
await auth.stop();
await kakao.close();
await stopAll();
process.exit(0);
