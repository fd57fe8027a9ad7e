// The package in a real browser, through a bundler, as a web app would ship it: a small
// app that imports '@tollgate/verify' is bundled by esbuild (platform=browser, so the
// package's "browser" export condition picks dist/web.js), the package's .wasm is put
// where that entry's `new URL('../wasm/…', import.meta.url)` points (esbuild does not
// copy it), and both are served by a static HTTP server on 127.0.0.1. Headless Chromium
// (Debian's, driven by playwright-core) loads the page; the entry fetches and
// instantiates the wasm with top-level await. In the page, every shared conformance
// case and a set of jose-minted tokens (minted here, passed in as JSON) run through
// judge.mjs's runCase (verify with the browser's WebCrypto, verifySync, check, the
// cache); the results are judged here, case by case. The page must log no error or
// warning, and every request must go to the local server.
//
// Needs /usr/bin/chromium (scripts/tools.sh ensure_chromium; test.sh sets CHROMIUM_BIN).

import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, relative, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as esbuild from 'esbuild';
import { chromium } from 'playwright-core';
import { PKG_DIR, conformanceCases, joseCases, listen } from './helpers.mjs';
import { expectedResult } from './judge.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
const TIMEOUT_MS = 60_000;

const APP = `
import * as tollgate from '@tollgate/verify';
import { runCases } from ${JSON.stringify(realpathSync(new URL('./judge.mjs', import.meta.url)))};

window.tollgateTest = {
  ready: true,
  secure: window.isSecureContext,
  subtle: typeof crypto.subtle?.verify === 'function',
  run: (cases) => runCases(tollgate, cases),
};
document.getElementById('status').textContent = 'ready';
`;

const HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>tollgate browser test</title><link rel="icon" href="data:,">
<script type="module" src="/app/app.js"></script></head>
<body><p id="status">loading</p></body></html>
`;

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm' };

const shared = conformanceCases().flatMap(({ cases }) => cases);
const extra = await joseCases();

describe('the package bundled by esbuild, in headless Chromium', () => {
  let dir, server, context, page, meta, results;
  const served = [];
  const problems = []; // console errors/warnings, page errors, failed or foreign requests

  before(async () => {
    assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run edge/npm/test.sh (scripts/tools.sh ensure_chromium installs Debian's chromium)`);
    dir = mkdtempSync(join(tmpdir(), 'tollgate-browser-'));

    // A user's project with the package installed, and its bundle.
    const project = join(dir, 'project');
    mkdirSync(join(project, 'node_modules/@tollgate'), { recursive: true });
    symlinkSync(PKG_DIR, join(project, 'node_modules/@tollgate/verify'), 'dir');
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'tollgate-npm-browser-test', private: true, type: 'module' }));
    writeFileSync(join(project, 'app.js'), APP);
    const www = join(dir, 'www');
    const built = await esbuild.build({
      entryPoints: [join(project, 'app.js')],
      absWorkingDir: project,
      bundle: true,
      platform: 'browser',
      format: 'esm',
      outfile: join(www, 'app/app.js'),
      metafile: true,
      logLevel: 'silent',
    });
    assert.deepEqual(built.warnings, [], 'esbuild warnings');
    meta = built.metafile;
    mkdirSync(join(www, 'wasm'));
    cpSync(join(project, 'node_modules/@tollgate/verify/wasm/tollgate_wasm_bg.wasm'), join(www, 'wasm/tollgate_wasm_bg.wasm'));
    writeFileSync(join(www, 'index.html'), HTML);

    // The static server: files under www/ only.
    server = await listen((req, res) => {
      const path = new URL(req.url, 'http://x').pathname;
      const file = join(www, path === '/' ? 'index.html' : path);
      served.push(path);
      if (relative(www, file).startsWith('..') || !existsSync(file) || !(extname(file) in TYPES)) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': TYPES[extname(file)], 'cache-control': 'no-store' }).end(readFileSync(file));
    });

    context = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      timeout: TIMEOUT_MS,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    context.setDefaultTimeout(TIMEOUT_MS);
    // Only the local server: anything else is refused and reported.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(`${server.url}/`)) return route.continue();
      problems.push(`request outside 127.0.0.1: ${url}`);
      return route.abort();
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`console.${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => window.tollgateTest?.ready === true);
    results = await page.evaluate((cases) => window.tollgateTest.run(cases), [...shared, ...extra]);
  });

  after(async () => {
    await context?.close();
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('the bundle took dist/web.js (the "browser" condition) and the page fetched the wasm from the server', async () => {
    const inputs = Object.keys(meta.inputs).map((p) => p.split(sep).join('/'));
    assert.ok(inputs.some((p) => p.endsWith('pkg/dist/web.js')), `dist/web.js among the bundle's inputs: ${inputs.join(', ')}`);
    assert.ok(!inputs.some((p) => p.endsWith('dist/node.js') || p.endsWith('dist/workerd.js')), 'no Node or workerd entry in the bundle');
    assert.deepEqual(served.slice(0, 3), ['/', '/app/app.js', '/wasm/tollgate_wasm_bg.wasm']);
    assert.equal(await page.textContent('#status'), 'ready');
    assert.deepEqual(await page.evaluate(() => [window.tollgateTest.secure, window.tollgateTest.subtle]), [true, true]);
    assert.match(await page.evaluate(() => navigator.userAgent), /HeadlessChrome\//);
  });

  it('returns a result for every case, in order', () => {
    assert.ok(shared.length >= 90, `expected the full conformance suite, found ${shared.length} cases`);
    assert.deepEqual(
      results.map((r) => r.id),
      [...shared, ...extra].map((c) => c.id),
    );
  });

  describe('every shared conformance case (verify via Chromium WebCrypto, verifySync, check, cache)', () => {
    for (const [i, c] of shared.entries()) {
      it(c.id, () => assert.deepEqual(results[i], expectedResult(c)));
    }
  });

  describe('jose-minted ES256/RS256 tokens and Denylist revocations', () => {
    for (const [i, c] of extra.entries()) {
      it(c.id, () => assert.deepEqual(results[shared.length + i], expectedResult(c)));
    }
  });

  it('the page logged no error or warning and made no request outside the local server', () => {
    assert.deepEqual(problems, []);
  });
});
