// A/B of two builds of the Worker on `workerd serve` with the in-workerd origin:
// (a') passthrough, (b') hot token, (c') new token per request, wrk runs interleaved
// (base, candidate; the order alternates from pair to pair), median of COMPARE_PAIRS, with
// each build's workerd CPU per request from /proc and the median of the per-pair ratios
// (a pair runs back to back, so a slow spell of a shared machine hits both builds alike).
//   TOLLGATE_BASE_BUILD=dir TOLLGATE_CANDIDATE_BUILD=dir WORKERD=… TOLLGATE_REVOCATION_BIN=… \
//     node compare.mjs          (COMPARE_PAIRS=3, COMPARE_SECONDS=8, COMPARE_SCENARIOS=b,c)
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  env, need, say, median, esKey, jwt, claims, startRevocation, startWorkerd, IN_PROCESS_ORIGIN, wrk, workerVars, runMain, cpuUs,
} from './lib.mjs';

const WORKERD = need('WORKERD', 'compare.mjs');
const REVOCATION_BIN = need('TOLLGATE_REVOCATION_BIN', 'compare.mjs');
const BUILDS = { base: need('TOLLGATE_BASE_BUILD', 'compare.mjs'), candidate: need('TOLLGATE_CANDIDATE_BUILD', 'compare.mjs') };
const PAIRS = Number(env('COMPARE_PAIRS', 3));
const SECS = Number(env('COMPARE_SECONDS', 8));
const CONNS = Number(env('COMPARE_CONNECTIONS', 50));
const ONLY = env('COMPARE_SCENARIOS', 'b,c').split(',');
const work = mkdtempSync(path.join(os.tmpdir(), 'tollgate-compare-'));

async function main() {
  const svc = await startRevocation(REVOCATION_BIN, work);
  const es = esKey('bench-es');
  const { tollgate, passthrough } = workerVars({ originUrl: IN_PROCESS_ORIGIN, jwks: JSON.stringify({ keys: [es.jwk] }), svc });
  const wd = {};
  for (const [k, build] of Object.entries(BUILDS)) {
    wd[k] = await startWorkerd({ 'passthrough-in': passthrough, 'tollgate-in': tollgate }, { workerd: WORKERD, build });
  }
  const hot = jwt(es, claims());
  let files = 0;
  // A fresh token list per run, so no run hits tokens an earlier run cached.
  const coldFile = () => {
    const file = path.join(work, `cold-${files++}.txt`);
    writeFileSync(file, Array.from({ length: SECS * 6000 }, () => jwt(es, claims())).join('\n'));
    return file;
  };
  const scenarios = [
    ['a', "(a') passthrough", 'passthrough-in', () => ({ token: hot })],
    ['b', "(b') hot token", 'tollgate-in', () => ({ token: hot })],
    ['c', "(c') new token/request", 'tollgate-in', () => ({ tokensFile: coldFile() })],
  ].filter(([k]) => ONLY.includes(k));
  const results = {};
  const cpus = {}; // workerd CPU µs per request (all its threads, from /proc)
  say(`# A/B ${new Date().toISOString()}: base ${BUILDS.base}, candidate ${BUILDS.candidate}; wrk -t1 -c${CONNS} -d${SECS}s, ${PAIRS} interleaved pairs`);
  for (const [, , service, load] of scenarios) {
    for (const k of Object.keys(BUILDS)) wrk(`${wd[k].urls[service]}/profile`, load(), { conns: CONNS, secs: 2 }); // warm
  }
  for (let pair = 0; pair < PAIRS; pair++) {
    for (const [key, , service, load] of scenarios) {
      const order = pair % 2 ? ['candidate', 'base'] : ['base', 'candidate'];
      for (const k of order) {
        const opts = load();
        const cpu0 = cpuUs([wd[k].child.pid]);
        const r = wrk(`${wd[k].urls[service]}/profile`, opts, { conns: CONNS, secs: SECS });
        const cpu = (cpuUs([wd[k].child.pid]) - cpu0) / r.requests;
        if (r.errors) throw new Error(`${k} ${key}: ${r.errors} non-2xx`);
        ((results[key] ??= {})[k] ??= []).push(r.rps);
        ((cpus[key] ??= {})[k] ??= []).push(cpu);
        say(`pair ${pair + 1} ${key} ${k}: ${r.rps.toFixed(0)} req/s, workerd ${cpu.toFixed(1)} CPU µs/request`);
      }
    }
  }
  say('\n| scenario | base req/s (runs) | candidate req/s (runs) | median Δ | per request µs (base → cand) | workerd CPU µs/request, median (base → cand) | median of per-pair ratios cand/base (req/s) |\n|---|---|---|---:|---|---|---:|');
  for (const [key, name] of scenarios) {
    const b = results[key].base;
    const c = results[key].candidate;
    const mb = median(b);
    const mc = median(c);
    say(`| ${name} | ${mb.toFixed(0)} (${b.map((x) => x.toFixed(0)).join(', ')}) | ${mc.toFixed(0)} (${c.map((x) => x.toFixed(0)).join(', ')}) | ${(((mc - mb) / mb) * 100).toFixed(1)}% | ${(1e6 / mb).toFixed(0)} → ${(1e6 / mc).toFixed(0)} | ${median(cpus[key].base).toFixed(1)} → ${median(cpus[key].candidate).toFixed(1)} | ${median(b.map((x, i) => c[i] / x)).toFixed(3)} |`);
  }
}

runMain(main);
