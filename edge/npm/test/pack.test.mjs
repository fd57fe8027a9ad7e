// `npm pack` output installs in a fresh temporary project and works from both `import`
// and `require` (on this Node, and on Node 22 when test.sh provides it), errors cross
// the ESM/CJS copies, and the shipped types compile against a TypeScript consumer.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NOW, NPM_DIR, PKG_DIR, keyPair, sign } from './helpers.mjs';

let dir, tarball, token, jwks;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tollgate-pack-'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', dir], { cwd: PKG_DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const [info] = JSON.parse(out);
  tarball = join(dir, info.filename);
  const files = info.files.map((f) => f.path).sort();
  assert.deepEqual(files, [
    'README.md',
    'dist/api.js',
    'dist/assertion.js',
    'dist/b64.js',
    'dist/client.js',
    'dist/cookies.js',
    'dist/errors.js',
    'dist/http.js',
    'dist/hub-subscription.js',
    'dist/issuer.js',
    'dist/jwks-source.js',
    'dist/node.cjs',
    'dist/node.js',
    'dist/refresh.js',
    'dist/remote-denylist.js',
    'dist/revocation-client.js',
    'dist/url.js',
    'dist/verifier.js',
    'dist/web.js',
    'dist/workerd.js',
    'index.d.cts',
    'index.d.ts',
    'package.json',
    'wasm/tollgate_wasm.js',
    'wasm/tollgate_wasm_bg.wasm',
  ]);
  const app = join(dir, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, version: '1.0.0' }));
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', tarball], { cwd: app, stdio: 'ignore' });
  const key = await keyPair('ES256', 'k1');
  jwks = { keys: [key.jwk] };
  token = await sign(key, { sub: 'packed', exp: NOW + 60 });
  writeFileSync(join(app, 'input.json'), JSON.stringify({ jwks, token, now: NOW }));

  writeFileSync(
    join(app, 'esm.mjs'),
    `import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Verifier, Denylist, TollgateError } from '@tollgate/verify';
const { jwks, token, now } = JSON.parse(readFileSync(new URL('./input.json', import.meta.url), 'utf8'));
const v = new Verifier({ jwks });
const a = await v.verify(token, { now });
const b = v.verifySync(token, { now });
const d = new Denylist();
d.revokeSid('s', now + 1);
// An error thrown by the CommonJS copy is a TollgateError for the ESM copy too.
const cjs = createRequire(import.meta.url)('@tollgate/verify');
let cross = null;
try { new cjs.Verifier({ jwks }).verifySync('x', { now }); }
catch (e) { cross = e instanceof TollgateError && e.reason === 'malformed' && cjs.Verifier !== Verifier; }
// Issuing from the ESM entry, verified by the CJS copy.
const { Issuer } = await import('@tollgate/verify');
const issuer = await Issuer.generate({ issuer: 'https://i', audience: 'https://a' });
const t = await issuer.issueAccess({ sub: 'issued', sid: 's' });
const back = new cjs.Verifier({ jwks: JSON.parse(issuer.jwks().body), ...issuer.accessPolicy() }).verifySync(t.token).sub;
console.log(JSON.stringify({ a: a.sub, b: b.sub, size: d.size, cross, issued: back }));
`,
  );
  writeFileSync(
    join(app, 'cjs.cjs'),
    `const { readFileSync } = require('node:fs');
const { Verifier, TollgateError } = require('@tollgate/verify');
const { jwks, token, now } = JSON.parse(readFileSync(__dirname + '/input.json', 'utf8'));
const v = new Verifier({ jwks });
v.verify(token, { now }).then((a) => {
  let err = null;
  try { v.verifySync(token, { now: now + 3600 }); } catch (e) { err = e instanceof TollgateError ? e.code : String(e); }
  const { accessTokenCookie, Issuer } = require('@tollgate/verify');
  return Issuer.generate({ issuer: 'https://i', audience: 'https://a', alg: 'RS256' })
    .then((i) => i.issueAccess({ sub: 'c', sid: 's' }))
    .then((t) => console.log(JSON.stringify({ a: a.sub, b: v.verifySync(token, { now }).sub, err, cookie: accessTokenCookie(t).split(';')[1].trim() })));
});
`,
  );
});

after(() => rmSync(dir, { recursive: true, force: true }));

function nodes() {
  const list = [['node', process.execPath]];
  const n22 = process.env.NODE22;
  if (n22 && existsSync(n22)) list.push(['node22', n22]);
  return list;
}

describe('the packed package in a fresh project', () => {
  for (const [name, bin] of nodes()) {
    it(`works from import (${name} ${execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim()})`, () => {
      const out = execFileSync(bin, ['esm.mjs'], { cwd: join(dir, 'app'), encoding: 'utf8' });
      assert.deepEqual(JSON.parse(out), { a: 'packed', b: 'packed', size: 1, cross: true, issued: 'issued' });
    });

    it(`works from require (${name})`, () => {
      const out = execFileSync(bin, ['cjs.cjs'], { cwd: join(dir, 'app'), encoding: 'utf8' });
      assert.deepEqual(JSON.parse(out), { a: 'packed', b: 'packed', err: 'TOKEN_EXPIRED', cookie: 'Path=/' });
    });
  }

  it('the shipped types compile for ESM and CJS consumers (tsc, nodenext)', () => {
    const app = join(dir, 'app');
    const use = `
import { Verifier, Denylist, RemoteDenylist, TollgateError, authenticate, withAuth, fetchWithRefresh, Issuer, KeySet, SigningKey, RevocationClient, Refresher, authCookies, clearAuthCookies, readCookie, requireAssertion, withAssertion, AssertionVerifier, type Claims, type Reason, type RefreshOutcome, type EdgeIdentity, type Issued } from '@tollgate/verify';
async function main(): Promise<void> {
  const v = new Verifier({ jwks: { keys: [] }, issuers: ['i'], leewaySeconds: 5, cacheSize: 10 });
  const c: Claims = await v.verify('t', { now: 1 });
  const s: string | undefined = c.sub;
  const r = v.checkSync('t');
  if (!r.ok) { const why: Reason | undefined = r.reason; void why; }
  const d = new Denylist();
  d.revokeJti('j', 1); d.revokeSubject('u', 1, 2, 'iss');
  const n: number = d.seq + d.size;
  const remote = new RemoteDenylist({ url: 'http://127.0.0.1:1', token: 'k', publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' } });
  const v2 = await Verifier.fromJwksUrl('http://127.0.0.1:1/jwks', { cooldownSeconds: 30, audiences: ['a'] });
  await v2.verify('t', { denylist: remote });
  const mw = authenticate({ verifier: v, denylist: d, rolesAny: ['admin'] });
  const h = withAuth(async (req: Request, auth, env: { X: string }) => new Response(auth.claims.sub ?? env.X), { verifier: v });
  const res: Response = await h(new Request('http://x'), { X: 'y' });
  await fetchWithRefresh('http://x', {}, { refreshUrl: '/refresh' });
  try { v.verifySync('t'); } catch (e) { if (e instanceof TollgateError) { const code: string = e.code; void code; } }
  // Issuing, the client, the refresh flow, cookies, the assertion middleware.
  const key = await SigningKey.generate('RS256', { modulusLength: 2048 });
  const issuer = new Issuer({ issuer: 'i', audience: ['a', 'b'], accessTyp: 'at+jwt' }, new KeySet(key, 0), new KeySet(await SigningKey.generate(), 0, { jwksMaxAgeSeconds: 60 }));
  const at: Issued = await issuer.issueAccess({ sub: 's', sid: 'x', roles: ['r'], scope: 'a b', clientId: 'c', claims: { t: 1 } });
  const kid: string = at.kid;
  const from: number = issuer.rotateAccess(await SigningKey.generate());
  const state: 'pending' | 'current' | 'retiring' | 'retired' = issuer.accessKeys.status(0)[0].state;
  const client = new RevocationClient({ url: 'https://r', apiKey: 'k', retry: { maxAttempts: 2 } });
  const rot = await client.rotate({ sid: 'x', presentedJti: 'a', nextJti: 'b', exp: 1 });
  if (rot.outcome === 'rotated') { const g: boolean = rot.grace; void g; } else { const q: number | null = rot.seq; void q; }
  const ack = await client.logout('x', { iss: 'i' });
  const seq: number = ack.seq;
  const outcome: RefreshOutcome = await new Refresher(issuer, client).refresh('t', (p) => ({ roles: [p.sub] }));
  if (outcome.outcome === 'rotated') { const c2: [string, string] = authCookies(outcome.pair); void c2; }
  else if (outcome.outcome === 'invalid') { const why2: string = outcome.reason; void why2; }
  const cleared: [string, string] = clearAuthCookies({ insecureLocalhostHttp: true });
  const rt: string | null = readCookie('a=b', 'a');
  const am = requireAssertion({ secrets: ['x'.repeat(32)], audience: 'https://o' });
  const av = await AssertionVerifier.create({ es256Keys: [{ kty: 'EC', crv: 'P-256', x: 'x', y: 'y' }] });
  const fh = withAssertion(async (req: Request, who: EdgeIdentity, env: { E: string }) => new Response(who.sub ?? env.E), av);
  await fh(new Request('http://o'), { E: 'e' });
  try { await client.revokeToken('j'); } catch (e) { if (e instanceof TollgateError && e.code === 'SERVICE_ERROR') { const k: string | undefined = e.kind; void k; } }
  // @ts-expect-error publicJwk is required (no trust on first use)
  new RemoteDenylist({ url: 'https://r', token: 'k' });
  // @ts-expect-error HS256 is not a signing algorithm here
  await SigningKey.generate('HS256');
  // @ts-expect-error logout events carry a sid, not a jti
  await client.post({ kind: 'logout', jti: 'j' });
  void s; void n; void mw; void res; void kid; void from; void state; void seq; void cleared; void rt; void am;
}
void main;
`;
    writeFileSync(join(app, 'use.mts'), use);
    writeFileSync(join(app, 'use.cts'), use.replace(/^import (.*) from '@tollgate\/verify';$/m, 'import $1 from "@tollgate/verify";'));
    const tsc = join(NPM_DIR, 'node_modules/typescript/bin/tsc');
    const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,dom', '--skipLibCheck', 'false'];
    try {
      execFileSync(process.execPath, [tsc, ...args, 'use.mts', 'use.cts'], { cwd: app, encoding: 'utf8' });
    } catch (e) {
      assert.fail(`tsc:\n${e.stdout}${e.stderr}`);
    }
    assert.match(readFileSync(join(app, 'node_modules/@tollgate/verify/package.json'), 'utf8'), /"@tollgate\/verify"/);
  });
});
