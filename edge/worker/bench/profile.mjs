// CPU profiles of the Worker under load, from V8's own sampling profiler: `workerd serve`
// runs with --inspector-addr, this script connects to the Worker's isolate over the
// DevTools protocol and, for each scenario, profiles a wrk run and counts the calls of
// every function of the JavaScript shim (worker-build's bundle of the wasm-bindgen glue),
// which is where every JS↔wasm crossing goes through. Run through edge/worker/profile.sh
// (which makes the named, unminified build it needs); loopback only, every load bounded.
//
//   (a') passthrough Worker → in-workerd origin, one Authorization header (not checked)
//   (b') Tollgate, one hot token → in-workerd origin
//   (c') Tollgate, a new ES256 token per request → in-workerd origin
//
// Prints per scenario: req/s under the profiler, workerd CPU per request (/proc), the
// time per category (wasm of the Worker by crate, the JS shim, V8 builtins and runtime
// natives, GC, idle), the top functions by self time, the top wasm/shim functions by
// total (inclusive) time, and the shim's calls per request. Writes the raw profiles as
// <scenario>.cpuprofile (open them in Chrome DevTools → Performance) to PROFILE_OUT.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  env, need, say, fetch, freePort, stopAll, esKey, jwt, claims, startRevocation, startWorkerd,
  IN_PROCESS_ORIGIN, LUA, workerVars, waitFor, runMain,
} from './lib.mjs';

const SCRIPT = 'edge/worker/profile.sh';
const WORKERD = need('WORKERD', SCRIPT);
const REVOCATION_BIN = need('TOLLGATE_REVOCATION_BIN', SCRIPT);
const BUILD = need('TOLLGATE_WORKER_BUILD', SCRIPT); // the named build, edge/worker/build-profile
const SECS = Number(env('PROFILE_SECONDS', 10));
const WARM_SECS = Number(env('PROFILE_WARM_SECONDS', 3));
const COUNT_SECS = Number(env('PROFILE_COUNT_SECONDS', 4));
const CONNS = Number(env('PROFILE_CONNECTIONS', 50));
const INTERVAL_US = Number(env('PROFILE_INTERVAL_US', 200));
const TOP = Number(env('PROFILE_TOP', 25));
const ONLY = env('PROFILE_SCENARIOS', 'a,b,c').split(',');
const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-profile-'));
const OUT = env('PROFILE_OUT', work);
const execFileP = promisify(execFile);

// ---- the wasm name section -------------------------------------------------------
function leb(buf, i) {
  let r = 0;
  let s = 0;
  for (;;) {
    const b = buf[i++];
    r += (b & 0x7f) * 2 ** s;
    s += 7;
    if (b < 0x80) return [r, i];
  }
}
/** Names of the custom sections of a wasm module. */
function customSections(buf) {
  const names = [];
  let i = 8;
  while (i < buf.length) {
    const id = buf[i++];
    let size;
    [size, i] = leb(buf, i);
    if (id === 0) {
      const [len, j] = leb(buf, i);
      names.push(buf.subarray(j, j + len).toString('utf8'));
    }
    i += size;
  }
  return names;
}

// ---- DevTools protocol -----------------------------------------------------------
async function connect(inspector, service) {
  const list = await (await fetch(`http://${inspector}/json/list`)).json();
  const target = list.find((t) => t.title === service || t.id === service || t.webSocketDebuggerUrl?.endsWith(`/${service}`));
  if (!target) throw new Error(`no inspector target for ${service}: ${JSON.stringify(list.map((t) => t.title ?? t.id))}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot open ${target.webSocketDebuggerUrl}`));
  });
  let next = 1;
  const pending = new Map();
  const contexts = [];
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.method === 'Runtime.executionContextCreated') contexts.push(msg.params.context.id);
    const p = msg.id && pending.get(msg.id);
    if (!p) return; // other events
    pending.delete(msg.id);
    if (msg.error) p.reject(new Error(`${p.method}: ${JSON.stringify(msg.error)}`));
    else p.resolve(msg.result);
  };
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject, method });
      ws.send(JSON.stringify({ id, method, params }));
    });
  return { send, contexts, close: () => ws.close() };
}

// ---- wrk, asynchronously (the inspector socket must stay served) ------------------
async function wrk(url, { token, tokensFile }, secs) {
  const args = ['-t1', `-c${CONNS}`, `-d${secs}s`];
  if (token) args.push('-H', `Authorization: Bearer ${token}`);
  if (tokensFile) args.push('-s', LUA);
  args.push(url);
  if (tokensFile) args.push('--', tokensFile);
  const { stdout } = await execFileP('wrk', args, { encoding: 'utf8', timeout: (secs + 30) * 1000 });
  const num = (re) => Number(re.exec(stdout)?.[1] ?? NaN);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    errors: num(/Non-2xx or 3xx responses:\s+(\d+)/) || 0,
  };
}

/** utime + stime of a process, in µs. */
function cpuMicros(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1e6) / 100; // USER_HZ is 100 on Linux
}

// ---- analysis --------------------------------------------------------------------
const demangle = (name) => name.replace(/^\$/, '').replace(/::h[0-9a-f]{16}$/, '').replace(/::\{\{closure\}\}/g, '::{closure}');

/** The crate a (demangled) Rust symbol belongs to: the first path segment, looking
 * through `<T as Trait>::` and `<T>::` to T. */
function crateOf(name) {
  const m = /^<?&?(?:mut )?(?:dyn )?([A-Za-z_][A-Za-z0-9_]*)/.exec(name);
  return m ? m[1] : '?';
}

function category(frame, wasmIds) {
  const fn = frame.functionName;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return '(idle)';
  if (fn === '(program)') return '(program): native code outside JS/wasm';
  if (fn === '(root)') return '(root)';
  if (/^(js-to-wasm|wasm-to-js)/.test(fn)) return 'JS↔wasm boundary wrappers (V8)';
  if (fn === '' && frame.url === '') return 'workerd native, no JS frame (isolate lock held)';
  if (frame.url.startsWith('wasm://') || wasmIds.has(frame.scriptId)) {
    const crate = crateOf(demangle(fn));
    if (crate === 'tollgate_edge' || crate === 'tollgate_core') return `wasm: ${crate}`;
    if (/^__(wbindgen|wbg|externref)/.test(fn) || ['worker', 'wasm_bindgen', 'wasm_bindgen_futures', 'js_sys', 'web_sys'].includes(crate)) return 'wasm: worker / wasm-bindgen / js-sys / web-sys';
    if (['serde_json', 'serde', 'serde_core'].includes(crate)) return 'wasm: serde / serde_json';
    if (['sha2', 'p256', 'ecdsa', 'elliptic_curve', 'primeorder', 'crypto_bigint', 'rsa', 'num_bigint_dig', 'digest', 'hmac'].includes(crate)) return 'wasm: crypto crates';
    if (['core', 'alloc', 'std', 'dlmalloc', 'compiler_builtins', 'hashbrown', 'memchr'].includes(crate) || /^(memcpy|memmove|memset|memcmp|__rust|rust_|__rdl|__rg)/.test(fn)) return 'wasm: std / core / alloc';
    return `wasm: other (${crate})`;
  }
  if (/(^|\/)index\.js$/.test(frame.url)) return 'JS shim (worker-build + wasm-bindgen glue)';
  if (frame.url === '') return 'V8 builtins / runtime natives (Headers, fetch, Request, subtle…)';
  return `other JS (${frame.url.slice(0, 40)})`;
}

function label(frame, wasmIds) {
  const isWasm = frame.url.startsWith('wasm://') || wasmIds.has(frame.scriptId);
  const name = isWasm ? demangle(frame.functionName) : frame.functionName || (frame.url ? '(anonymous)' : '(workerd native)');
  if (isWasm) return `[wasm] ${name}`;
  if (frame.url === '' || frame.functionName.startsWith('(')) return name;
  return `[${path.basename(frame.url)}:${frame.lineNumber + 1}] ${name}`;
}

function analyse(profile, requests, wasmIds) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map(); // node id -> µs
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i + 1] ?? 0; // a sample's time is until the next one
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });
  const selfBy = new Map();
  const cats = new Map();
  const incl = new Map();
  const pathKeys = new Map();
  const keysOf = (id) => {
    if (pathKeys.has(id)) return pathKeys.get(id);
    const n = byId.get(id);
    const up = parent.has(id) ? keysOf(parent.get(id)) : new Set();
    const mine = new Set(up);
    const c = category(n.callFrame, wasmIds);
    if (c.startsWith('wasm') || c.startsWith('JS shim')) mine.add(label(n.callFrame, wasmIds));
    pathKeys.set(id, mine);
    return mine;
  };
  for (const [id, us] of self) {
    const n = byId.get(id);
    const key = label(n.callFrame, wasmIds);
    const e = selfBy.get(key) ?? { us: 0, cat: category(n.callFrame, wasmIds) };
    e.us += us;
    selfBy.set(key, e);
    cats.set(e.cat, (cats.get(e.cat) ?? 0) + us);
    for (const k of keysOf(id)) incl.set(k, (incl.get(k) ?? 0) + us);
  }
  return { total, selfBy, cats, incl, requests };
}

function printAnalysis(name, a, extra) {
  const pctOf = (us) => ((100 * us) / a.total).toFixed(1).padStart(5);
  const perReq = (us) => (us / a.requests).toFixed(1).padStart(7);
  say(`\n## ${name}`);
  say(extra);
  say(`\n| category | % of samples | µs/request |\n|---|---:|---:|`);
  for (const [c, us] of [...a.cats].sort((x, y) => y[1] - x[1])) say(`| ${c} | ${pctOf(us)} | ${perReq(us)} |`);
  say(`\n| top ${TOP} by self time | % | µs/req | category |\n|---|---:|---:|---|`);
  for (const [k, e] of [...a.selfBy].sort((x, y) => y[1].us - x[1].us).slice(0, TOP)) {
    say(`| ${k.slice(0, 110)} | ${pctOf(e.us)} | ${perReq(e.us)} | ${e.cat.split(' (')[0]} |`);
  }
  say(`\n| top ${TOP} wasm/shim functions by total (inclusive) time | % | µs/req |\n|---|---:|---:|`);
  for (const [k, us] of [...a.incl].sort((x, y) => y[1] - x[1]).slice(0, TOP)) say(`| ${k.slice(0, 110)} | ${pctOf(us)} | ${perReq(us)} |`);
}

// ---- crossing counts -------------------------------------------------------------
// workerd runs the profiler itself and does not let V8's precise coverage (call counts)
// be enabled, so the counts come from a copy of the bundle whose shim counts its calls:
// every wasm import (a wasm→JS crossing), every wasm export (JS→wasm, including the
// closure trampolines that resume futures), and the string/array copy helpers.
const COUNTED_HELPERS = ['passStringToWasm0', 'getStringFromWasm0', 'passArray8ToWasm0', 'getArrayU8FromWasm0', 'addToExternrefTable0', 'takeFromExternrefTable0', 'makeMutClosure', 'debugString'];
const COUNTER = `globalThis.__tollgateCalls = new Map();
function __tgCount(k) {
  const m = globalThis.__tollgateCalls;
  m.set(k, (m.get(k) ?? 0) + 1);
}
function __tgInstance(module, imports) {
  for (const ns of Object.values(imports)) {
    for (const [k, f] of Object.entries(ns)) {
      if (typeof f === 'function') ns[k] = function (...a) { __tgCount('wasm→JS ' + k); return f.apply(this, a); };
    }
  }
  const inst = new WebAssembly.Instance(module, imports);
  const exports = {};
  for (const [k, v] of Object.entries(inst.exports)) {
    exports[k] = typeof v === 'function' ? function (...a) { __tgCount('JS→wasm ' + k); return v.apply(this, a); } : v;
  }
  return { exports };
}
`;
/** A copy of `build` in `dir` whose shim counts its calls into globalThis.__tollgateCalls. */
function countingBuild(build, dir) {
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(build, 'index_bg.wasm'), path.join(dir, 'index_bg.wasm'));
  let js = readFileSync(path.join(build, 'index.js'), 'utf8');
  const before = js;
  js = js.replaceAll('new WebAssembly.Instance(wasmModule, __wbg_get_imports())', '__tgInstance(wasmModule, __wbg_get_imports())');
  for (const h of COUNTED_HELPERS) js = js.replace(new RegExp(`^function ${h}\\(([^)]*)\\) \\{$`, 'm'), `function ${h}($1) { __tgCount('helper ${h}');`);
  if (js === before) throw new Error('countingBuild: the shim does not look like an unminified wasm-bindgen shim');
  // After the imports, before the first statement that instantiates.
  js = js.replace(/^(import .*\n)+/m, (m) => m + COUNTER);
  writeFileSync(path.join(dir, 'index.js'), js);
  return dir;
}

function printCounts(name, counts, requests) {
  const per = (n) => (n / requests).toFixed(2);
  const sum = (prefix) => counts.filter(([k]) => k.startsWith(prefix)).reduce((a, [, n]) => a + n, 0);
  say(`\n### ${name}: JS↔wasm crossings per request (${requests} requests, counting shim)`);
  say(`wasm→JS (imports) ${per(sum('wasm→JS'))}, JS→wasm (exports, closure trampolines, malloc/free) ${per(sum('JS→wasm'))}, ` +
    `strings JS→wasm ${per(sum('helper passStringToWasm0'))}, strings wasm→JS ${per(sum('helper getStringFromWasm0'))}, closures made ${per(sum('helper makeMutClosure'))}`);
  say('| call | per request |\n|---|---:|');
  for (const [k, n] of counts.sort((x, y) => y[1] - x[1]).slice(0, 45)) say(`| ${k.replace(/(_[0-9a-f]{4})[0-9a-f]{12}$/, '$1')} | ${per(n)} |`);
}

// ---- main ------------------------------------------------------------------------
async function main() {
  const wasm = readFileSync(path.join(BUILD, 'index_bg.wasm'));
  const sections = customSections(wasm);
  say(`# tollgate-edge CPU profiles — ${new Date().toISOString()}, ${os.cpus().length} cores, wrk -t1 -c${CONNS} -d${SECS}s, sampling every ${INTERVAL_US} µs (figures under the profiler: compare shares, not absolutes)`);
  say(`build: ${BUILD} (wasm custom sections: ${sections.join(', ')})`);
  if (!sections.includes('name')) say('WARNING: the wasm has no "name" section: wasm functions will show as wasm-function[N]');
  mkdirSync(OUT, { recursive: true });

  const svc = await startRevocation(REVOCATION_BIN, work);
  const es = esKey('bench-es');
  const jwks = JSON.stringify({ keys: [es.jwk] });
  const { tollgate, passthrough } = workerVars({ originUrl: IN_PROCESS_ORIGIN, jwks, svc });
  const inspectorPort = await freePort();
  const inspector = `127.0.0.1:${inspectorPort}`;
  const wd = await startWorkerd(
    { 'passthrough-in': passthrough, 'tollgate-in': tollgate },
    { workerd: WORKERD, build: BUILD, args: [`--inspector-addr=${inspector}`] },
  );
  const hot = jwt(es, claims());
  // Every wrk run starts at the top of its token file, so each run of (c') gets its own
  // tokens: a run reusing an earlier run's tokens would hit the verified-token cache.
  const coldFiles = [];
  const coldFile = (secs) => {
    const file = path.join(work, `cold-${coldFiles.length}.txt`);
    writeFileSync(file, Array.from({ length: Math.ceil(secs * 6000) }, () => jwt(es, claims())).join('\n'));
    coldFiles.push(file);
    return file;
  };
  const cold = Symbol('a new token per request');
  // The load of a scenario for one run of `secs` seconds.
  const loadFor = (load, secs) => (load === cold ? { tokensFile: coldFile(secs) } : load);
  const scenarios = [
    ['a', "(a') passthrough Worker, in-workerd origin", 'passthrough-in', { token: hot }],
    ['b', "(b') Tollgate, hot token, in-workerd origin", 'tollgate-in', { token: hot }],
    ['c', "(c') Tollgate, new ES256 token per request, in-workerd origin", 'tollgate-in', cold],
  ].filter(([k]) => ONLY.includes(k));
  for (const [, name, service, load] of scenarios) {
    const url = `${wd.urls[service]}/profile`;
    const check = await fetch(url, { headers: { authorization: `Bearer ${hot}` } });
    if (check.status !== 200) throw new Error(`${url}: ${check.status} ${await check.text()}`);
  }

  try {
    for (const [key, name, service, load] of scenarios) {
      const url = `${wd.urls[service]}/profile`;
      await wrk(url, loadFor(load, WARM_SECS), WARM_SECS); // JIT, caches, key import
      const profiled = loadFor(load, SECS);
      const cdp = await connect(inspector, service);
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: INTERVAL_US });
      await cdp.send('Profiler.start');
      const cpu0 = cpuMicros(wd.child.pid);
      const run = await wrk(url, profiled, SECS);
      const cpu = cpuMicros(wd.child.pid) - cpu0;
      const { profile } = await cdp.send('Profiler.stop');
      writeFileSync(path.join(OUT, `${key}.cpuprofile`), JSON.stringify(profile));
      // Which scripts are wasm: V8 names wasm frames with a wasm:// URL, or none.
      const wasmIds = new Set(profile.nodes.filter((n) => n.callFrame.url.startsWith('wasm://')).map((n) => n.callFrame.scriptId));
      const a = analyse(profile, run.requests, wasmIds);
      printAnalysis(
        name,
        a,
        `under the profiler: ${run.rps.toFixed(0)} req/s, ${run.requests} requests (${run.errors} non-2xx); ` +
          `workerd CPU ${(cpu / run.requests).toFixed(0)} µs/request (all threads, /proc); ` +
          `profiled isolate thread ${(a.total / run.requests).toFixed(0)} µs/request of wall time; ${profile.samples.length} samples`,
      );

      await cdp.send('Profiler.disable');
      cdp.close();
    }
    process.kill(-wd.child.pid, 'SIGKILL');

    // Crossings: the same scenarios on a counting copy of the bundle, in its own workerd.
    const counting = countingBuild(BUILD, path.join(work, 'build-count'));
    const countInspector = `127.0.0.1:${await freePort()}`;
    const wc = await startWorkerd(
      { 'passthrough-in': passthrough, 'tollgate-in': tollgate },
      { workerd: WORKERD, build: counting, args: [`--inspector-addr=${countInspector}`] },
    );
    for (const [, name, service, load] of scenarios) {
      const url = `${wc.urls[service]}/profile`;
      await wrk(url, loadFor(load, 1), 1);
      const cdp = await connect(countInspector, service);
      await cdp.send('Runtime.enable'); // announces the Worker's context
      await waitFor('the Worker\'s execution context', async () => cdp.contexts.length > 0, 5000);
      const evaluate = async (expression) =>
        (await cdp.send('Runtime.evaluate', { expression, returnByValue: true, contextId: cdp.contexts[0] })).result.value;
      const counted = loadFor(load, COUNT_SECS);
      await evaluate('globalThis.__tollgateCalls.clear()');
      const run = await wrk(url, counted, COUNT_SECS);
      const counts = JSON.parse(await evaluate('JSON.stringify([...globalThis.__tollgateCalls])'));
      printCounts(name, counts, run.requests);
      cdp.close();
    }
    process.kill(-wc.child.pid, 'SIGKILL');
    say(`\nraw profiles: ${OUT}/{${scenarios.map(([k]) => k).join(',')}}.cpuprofile`);
  } finally {
    stopAll();
  }
}

runMain(main);
