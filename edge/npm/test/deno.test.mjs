// The package in Deno, imported as a Deno user with the package in node_modules does:
// a project whose package.json depends on @tollgate/verify, node_modules/@tollgate/verify
// linked to the built package (what `npm install <dir>` makes), and a program that
// imports the bare specifier '@tollgate/verify' (Deno resolves the "node" export
// condition, so dist/node.js). `deno run` with reads of only the project, the package
// and the conformance cases; no network, no environment, no prompts. The program runs
// every shared conformance case and a set of jose-minted tokens (ES256, RS256,
// denylist revocations) through judge.mjs's runCase and prints the results; they are
// judged here, case by case, against expectedResult.
//
// Needs Deno (scripts/tools.sh ensure_deno; test.sh sets DENO_BIN).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { CONFORMANCE_DIR, PKG_DIR, REPO_ROOT, conformanceCases, joseCases } from './helpers.mjs';
import { expectedResult } from './judge.mjs';
import { judgeOriginSmoke } from './origin-judge.mjs';

const DENO = process.env.DENO_BIN ?? join(REPO_ROOT, '.tools/deno/node_modules/@deno/linux-x64-glibc/deno');

const here = (f) => pathToFileURL(realpathSync(new URL(f, import.meta.url))).href;
const PROGRAM = `
import * as tollgate from '@tollgate/verify';
import { readConformanceCases } from ${JSON.stringify(here('./cases.mjs'))};
import { runCases } from ${JSON.stringify(here('./judge.mjs'))};
import { originSmoke } from ${JSON.stringify(here('./origin-smoke.mjs'))};

const [casesDir, extraFile] = Deno.args;
const shared = readConformanceCases(casesDir).flatMap((f) => f.cases);
const extra = JSON.parse(await Deno.readTextFile(extraFile));
const results = await runCases(tollgate, [...shared, ...extra]);
console.log(JSON.stringify({
  deno: Deno.version.deno,
  entry: import.meta.resolve('@tollgate/verify'),
  results,
  origin: await originSmoke(tollgate),
}));
`;

const shared = conformanceCases().flatMap(({ cases }) => cases);
const extra = await joseCases();

describe('the package in Deno (deno run)', () => {
  let dir, out;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tollgate-deno-'));
    mkdirSync(join(dir, 'node_modules/@tollgate'), { recursive: true });
    symlinkSync(PKG_DIR, join(dir, 'node_modules/@tollgate/verify'), 'dir');
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'tollgate-npm-deno-test', private: true, type: 'module', dependencies: { '@tollgate/verify': '0.1.0' } }),
    );
    writeFileSync(join(dir, 'main.mjs'), PROGRAM);
    writeFileSync(join(dir, 'jose-cases.json'), JSON.stringify(extra));
    const args = [
      'run',
      '--no-prompt',
      '--no-remote',
      '--node-modules-dir=manual',
      `--allow-read=${[dir, realpathSync(PKG_DIR), realpathSync(CONFORMANCE_DIR)].join(',')}`,
      'main.mjs',
      realpathSync(CONFORMANCE_DIR),
      join(dir, 'jose-cases.json'),
    ];
    const env = { PATH: process.env.PATH, HOME: dir, DENO_DIR: join(dir, '.deno'), DENO_NO_UPDATE_CHECK: '1', NO_COLOR: '1' };
    const { stdout, stderr } = await new Promise((resolve, reject) =>
      execFile(DENO, args, { cwd: dir, env, timeout: 90_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
        err ? reject(new Error(`deno run failed (${err.code ?? err.signal}): ${err.message}\n${stderr}`)) : resolve({ stdout, stderr }),
      ),
    );
    assert.equal(stderr, '', 'deno printed nothing on stderr');
    out = JSON.parse(stdout);
  });

  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('resolves @tollgate/verify through the "node" condition to dist/node.js', () => {
    assert.match(out.deno, /^2\./);
    assert.equal(out.entry, pathToFileURL(join(realpathSync(PKG_DIR), 'dist/node.js')).href);
  });

  it('returns a result for every case, in order', () => {
    assert.ok(shared.length >= 90, `expected the full conformance suite, found ${shared.length} cases`);
    assert.deepEqual(
      out.results.map((r) => r.id),
      [...shared, ...extra].map((c) => c.id),
    );
  });

  describe('every shared conformance case (verify via Deno WebCrypto, verifySync, check, cache)', () => {
    for (const [i, c] of shared.entries()) {
      it(c.id, () => assert.deepEqual(out.results[i], expectedResult(c)));
    }
  });

  it('issues ES256 and RS256 tokens on Deno WebCrypto that jose verifies; cookies; the assertion check', async () => {
    await judgeOriginSmoke(out.origin);
  });

  describe('jose-minted ES256/RS256 tokens and Denylist revocations', () => {
    for (const [i, c] of extra.entries()) {
      it(c.id, () => assert.deepEqual(out.results[shared.length + i], expectedResult(c)));
    }
  });
});
