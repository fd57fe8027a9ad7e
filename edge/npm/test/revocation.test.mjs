// RemoteDenylist against the real revocation service (the `tollgate-revocation`
// binary on 127.0.0.1): a logout posted to the service → the replica learns it over
// the long-poll → the same token is rejected as revoked. Also revoke_token and
// revoke_subject, and a fresh replica that starts from a snapshot holding entries
// (fingerprints keyed by the service's own SipHash key).
//
// Skipped, saying so, only when the binary has not been built
// (cargo build -p tollgate-revocation; test.sh builds it).

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { NOW, REPO_ROOT, keyPair, pkg, sign } from './helpers.mjs';

const { Verifier, RemoteDenylist } = pkg;

const BIN = process.env.TOLLGATE_REVOCATION_BIN ?? join(REPO_ROOT, 'target/npm/debug/tollgate-revocation');
const skip = existsSync(BIN) ? false : `the tollgate-revocation binary is not built (${BIN}); build it with cargo build -p tollgate-revocation`;
// Tokens expire far ahead; the events' `exp` must lie within the service's bound
// (30 days ahead of its real clock).
const FAR = 4_000_000_000;
const EXP = Math.floor(Date.now() / 1000) + 7 * 86_400;

describe('RemoteDenylist against the real revocation service', { skip }, () => {
  let dir, child, url, readKey, writeKey, es, verifier, remote, remotePublicJwk;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-revocation-'));
    // The service refuses TOLLGATE_* variables it does not know (fail-fast config), and
    // test.sh exports some for the tests: give it none.
    const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_'))), RUST_LOG: 'warn' };
    const create = (name, scope, ...extra) =>
      execFileSync(BIN, ['keys', 'create', '--data-dir', dir, '--name', name, '--scope', scope, ...extra], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    readKey = create('edge', 'denylist:read');
    // These tokens carry no `iss`: the key revokes across issuers (asked for by name).
    writeKey = create('origin', 'events:write', '--all-issuers');
    child = spawn(BIN, ['serve', '--data-dir', dir, '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`service did not start within 20 s: ${out}${stderr}`)), 20_000);
      child.stdout.on('data', (d) => {
        out += d;
        const m = /listening on (\S+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(`http://${m[1]}`);
        }
      });
      child.on('exit', (code) => reject(new Error(`service exited with ${code}: ${stderr}`)));
    });
    es = await keyPair('ES256', 'k1');
    verifier = new Verifier({ jwks: { keys: [es.jwk] } });
    const publicJwk = await (await fetch(`${url}/v1/denylist/key`)).json();
    remotePublicJwk = publicJwk;
    remote = new RemoteDenylist({ url, token: readKey, publicJwk, waitSeconds: 5 });
    await remote.start();
  });

  after(async () => {
    await remote?.stop();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function post(events) {
    const res = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${writeKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const body = await res.json();
    return Math.max(...body.accepted.map((a) => a.seq));
  }

  async function reason(token, denylist = remote) {
    const r = await verifier.check(token, { now: NOW, denylist });
    return r.ok ? 'accept' : r.reason;
  }

  it('logout → the replica rejects the session token', async (t) => {
    const token = await sign(es, { sub: 'user-1', sid: 'sess-1', jti: 'a-1', iat: NOW - 5, exp: FAR });
    assert.equal(await reason(token), 'accept');
    const started = performance.now();
    const seq = await post([{ kind: 'logout', sid: 'sess-1', exp: EXP }]);
    const acked = performance.now();
    await remote.waitForSeq(seq, { timeoutMs: 5000 });
    const applied = performance.now();
    assert.equal(await reason(token), 'revoked');
    t.diagnostic(`logout acknowledged in ${(acked - started).toFixed(1)} ms, replica had it ${(applied - acked).toFixed(1)} ms later`);
  });

  it('revoke_token and revoke_subject reach the replica too', async () => {
    const one = await sign(es, { sub: 'user-2', jti: 'j-2', exp: FAR });
    // The cutoff lies within the service's bound (30 days ahead of its real clock).
    const cut = Math.floor(Date.now() / 1000);
    const older = await sign(es, { sub: 'user-3', iat: cut - 100, exp: FAR });
    const newer = await sign(es, { sub: 'user-3', iat: cut + 100, exp: FAR });
    const seq = await post([
      { kind: 'revoke_token', jti: 'j-2', exp: EXP },
      { kind: 'revoke_subject', sub: 'user-3', before: cut, exp: EXP },
    ]);
    await remote.waitForSeq(seq, { timeoutMs: 5000 });
    assert.equal(await reason(one), 'revoked');
    assert.equal(await reason(older), 'revoked');
    assert.equal(await reason(newer), 'accept');
  });

  it('a new replica starting from the snapshot holds the same entries', async () => {
    const fresh = new RemoteDenylist({ url, token: readKey, publicJwk: remotePublicJwk });
    await fresh.sync();
    assert.equal(fresh.seq, remote.seq);
    assert.equal(fresh.size, remote.size);
    assert.ok(fresh.size >= 3);
    assert.equal(await reason(await sign(es, { sid: 'sess-1', exp: FAR }), fresh), 'revoked');
    assert.equal(await reason(await sign(es, { jti: 'j-2', exp: FAR }), fresh), 'revoked');
    assert.equal(await reason(await sign(es, { jti: 'j-3', exp: FAR }), fresh), 'accept');
  });

  it('a replica with the wrong key or scope is refused', async () => {
    const wrongScope = new RemoteDenylist({ url, token: writeKey, publicJwk: remotePublicJwk });
    await assert.rejects(wrongScope.start(), (e) => e.code === 'DENYLIST_FETCH' && /403/.test(e.message));
    const other = await keyPair('ES256', 'x');
    const wrongKey = new RemoteDenylist({ url, token: readKey, publicJwk: other.jwk });
    await assert.rejects(wrongKey.start(), (e) => e.code === 'DENYLIST_SIGNATURE');
  });
});
