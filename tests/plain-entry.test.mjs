// edge/worker/plain-entry.mjs, the build step that replaces worker-build's per-request
// entry Proxy with a plain fetch handler: on a module laid out as worker-build 0.8.7
// writes it (unminified), the handler calls the wasm export with the request's env and
// ctx, runs the recovery check first and reports a wasm trap; anything else stops the
// build and leaves the file as it was. (The e2e suite runs the real patched build.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PATCHER = path.join(ROOT, 'edge/worker/plain-entry.mjs');

// The tail of worker-build's bundle, as it writes it, with stand-ins for the runtime's
// class and the wasm export (which records its calls and throws when asked to).
const BUNDLE = `class WorkerEntrypoint { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }
export const log = [];
function fetch2(req, env, ctx) {
  log.push(['wasm', req, env, ctx]);
  if (req === 'trap') throw new WebAssembly.RuntimeError('unreachable');
  if (req === 'js') throw new TypeError('not critical');
  return 'response to ' + req;
}
// shim.js
function checkReinitialize() {
  log.push(['check']);
}
function handleMaybeCritical(e) {
  log.push(['critical?', e instanceof WebAssembly.RuntimeError]);
}
var Entrypoint = class extends WorkerEntrypoint {
};
Entrypoint.prototype.fetch = function fetch3(arg) {
  return fetch2.call(this, arg, this.env, this.ctx);
};
var classProxyHooks = {};
var shim_default = new Proxy(Entrypoint, classProxyHooks);
export {
  shim_default as default
};
`;

function patch(text) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'plain-entry-'));
  const file = path.join(dir, 'index.js');
  writeFileSync(file, text);
  const run = spawnSync(process.execPath, [PATCHER, file], { encoding: 'utf8' });
  return { status: run.status, stderr: run.stderr, file, out: readFileSync(file, 'utf8') };
}

test('the default export becomes a plain fetch handler around the wasm export, with the recovery calls', async () => {
  const { status, stderr, file, out } = patch(BUNDLE);
  assert.equal(status, 0, stderr);
  assert.match(out, /tollgateEntry as default/);
  assert.doesNotMatch(out, /shim_default as default/);
  const mod = await import(pathToFileURL(file).href);
  const handler = mod.default;
  assert.equal(typeof handler, 'object', 'a handler object, not a class');
  const env = { name: 'env' };
  const ctx = { name: 'ctx' };
  assert.equal(handler.fetch('req', env, ctx), 'response to req');
  assert.deepEqual(mod.log.splice(0), [['check'], ['wasm', 'req', env, ctx]]);
  // A wasm trap is reported (so the next request re-initialises) and still thrown.
  assert.throws(() => handler.fetch('trap', env, ctx), WebAssembly.RuntimeError);
  assert.deepEqual(mod.log.splice(0), [['check'], ['wasm', 'trap', env, ctx], ['critical?', true]]);
  assert.throws(() => handler.fetch('js', env, ctx), TypeError);
  assert.deepEqual(mod.log.splice(0), [['check'], ['wasm', 'js', env, ctx], ['critical?', false]]);
});

test('an unexpected layout stops the build and leaves the file untouched', () => {
  const variants = {
    'no fetch handler': BUNDLE.replace(/Entrypoint\.prototype\.fetch[^]*?\};\n/, ''),
    'two fetch handlers': BUNDLE.replace('var classProxyHooks', 'Entrypoint.prototype.fetch = function fetch4(arg) {\n  return fetch2.call(this, arg, this.env, this.ctx);\n};\nvar classProxyHooks'),
    'no recovery check': BUNDLE.replace('function checkReinitialize() {', 'function checkAgain() {'),
    'default export not the proxied class': BUNDLE.replace('shim_default as default', 'Entrypoint as default'),
    minified: BUNDLE.replace(/\n\s*/g, ''),
  };
  for (const [name, text] of Object.entries(variants)) {
    assert.notEqual(text, BUNDLE, `${name}: the variant differs`);
    const { status, stderr, out } = patch(text);
    assert.equal(status, 1, `${name}: ${stderr}`);
    assert.match(stderr, /expected exactly one/, name);
    assert.equal(out, text, `${name}: file untouched`);
  }
});
