// Replaces the per-request Proxy of worker-build's entry module with a plain `fetch`
// handler, keeping worker-build's panic recovery. Run by build.sh (and profile.sh) on
// the unminified bundle worker-build writes (NO_MINIFY=1), before minifying it:
//   node plain-entry.mjs build/index.js
//
// Why: worker-build (0.8.7) exports the Worker as `new Proxy(Entrypoint, classProxyHooks)`,
// a `WorkerEntrypoint` class. For every request the runtime constructs an instance, and
// the Proxy's `construct` trap wraps that instance in a new Proxy whose `get` trap wraps
// `fetch` in yet another Proxy, all to call `checkReinitialize()` before the handler and
// `handleMaybeCritical()` on a synchronous throw (the recovery from a wasm trap: the next
// request re-initialises the module). Measured on workerd: about 5% of a hot-token
// request's instructions (callgrind) and +2–7% req/s (A/B, 12 pairs).
//
// The replacement is a module-worker handler object, `{ fetch(request, env, ctx) }`,
// that makes the same two calls around the same wasm export, so a trap is handled as
// before; the runtime calls it with the request's own `env` and `ctx`, which the class
// read from `this.env` and `this.ctx`. Anything unexpected in the bundle (another
// worker-build version, another layout) stops the build: the script never guesses.
import { readFileSync, writeFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  console.error('usage: node plain-entry.mjs <worker-build index.js (unminified)>');
  process.exit(2);
}
const src = readFileSync(file, 'utf8');

function once(re, what) {
  const all = [...src.matchAll(new RegExp(re.source, `${re.flags.replace('g', '')}g`))];
  if (all.length !== 1) {
    console.error(`plain-entry: expected exactly one ${what} in ${file}, found ${all.length}; is this worker-build 0.8.7's unminified output?`);
    process.exit(1);
  }
  return all[0];
}

// `Entrypoint.prototype.fetch = function fetchN(arg) { return <wasm fetch>.call(this, arg, this.env, this.ctx); };`
const handler = once(
  /Entrypoint\.prototype\.fetch = function \w+\(arg\) \{\s*return (\w+)\.call\(this, arg, this\.env, this\.ctx\);\s*\};/,
  "fetch handler of worker-build's Entrypoint class",
);
const wasmFetch = handler[1];
once(/^function checkReinitialize\(\) \{$/m, 'checkReinitialize()');
once(/^function handleMaybeCritical\(e\) \{$/m, 'handleMaybeCritical()');
const proxied = once(/^var (\w+) = new Proxy\(Entrypoint, classProxyHooks\);$/m, 'proxied default export');
const exported = once(new RegExp(`^  ${proxied[1]} as default$`, 'm'), 'default export of the proxied class');

const plain = `
// plain-entry.mjs: the Worker's handler, called by the runtime with the request's own
// env and ctx; the same recovery calls as worker-build's per-request Proxy.
var tollgateEntry = {
  fetch(request, env, ctx) {
    checkReinitialize();
    try {
      return ${wasmFetch}(request, env, ctx);
    } catch (e) {
      handleMaybeCritical(e);
      throw e;
    }
  }
};
`;
let out = src.slice(0, exported.index) + '  tollgateEntry as default' + src.slice(exported.index + exported[0].length);
out = out.replace(proxied[0], () => `${proxied[0]}\n${plain}`); // a function: no `$` patterns
writeFileSync(file, out);
console.error(`plain-entry: ${file}: default export is a plain fetch handler calling ${wasmFetch}`);
