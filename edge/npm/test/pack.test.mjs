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
    'dist/client.js',
    'dist/errors.js',
    'dist/http.js',
    'dist/jwks-source.js',
    'dist/node.cjs',
    'dist/node.js',
    'dist/remote-denylist.js',
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
console.log(JSON.stringify({ a: a.sub, b: b.sub, size: d.size, cross }));
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
  console.log(JSON.stringify({ a: a.sub, b: v.verifySync(token, { now }).sub, err }));
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
      assert.deepEqual(JSON.parse(out), { a: 'packed', b: 'packed', size: 1, cross: true });
    });

    it(`works from require (${name})`, () => {
      const out = execFileSync(bin, ['cjs.cjs'], { cwd: join(dir, 'app'), encoding: 'utf8' });
      assert.deepEqual(JSON.parse(out), { a: 'packed', b: 'packed', err: 'TOKEN_EXPIRED' });
    });
  }

  it('the shipped types compile for ESM and CJS consumers (tsc, nodenext)', () => {
    const app = join(dir, 'app');
    const use = `
import { Verifier, Denylist, RemoteDenylist, TollgateError, authenticate, withAuth, fetchWithRefresh, type Claims, type Reason } from '@tollgate/verify';
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
  void s; void n; void mw; void res;
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
