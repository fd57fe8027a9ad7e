// How a conformance case is run through the package and what it must give, in one
// place for every runtime: Node (conformance.test.mjs), Deno (deno.test.mjs, which
// imports this file into Deno) and Chromium (browser.test.mjs, which bundles it into
// the page). No imports and no Node APIs, so it runs anywhere the package does.
//
// A "case" has the shape of a line of shared/conformance/cases/*.jsonl:
//   { id, token, jwks, policy?, now, denylist?, expect: { verdict, reason? } }
// runCase() returns plain JSON (it crosses process and page boundaries), and
// expectedResult() returns what runCase() must return for that case: compare the two
// with deepEqual.

/** The conformance policy (snake_case) as Verifier options (camelCase). */
export function policyOptions(policy = {}) {
  const map = {
    issuers: 'issuers',
    audiences: 'audiences',
    algorithms: 'algorithms',
    leeway_seconds: 'leewaySeconds',
    required_claims: 'requiredClaims',
    typ: 'typ',
    max_token_bytes: 'maxTokenBytes',
    min_rsa_bits: 'minRsaBits',
  };
  const out = {};
  for (const [k, v] of Object.entries(policy)) {
    if (!(k in map)) throw new Error(`unknown conformance policy field ${k}`);
    out[map[k]] = v;
  }
  return out;
}

/** A conformance case's denylist as a package Denylist (entries never expire). */
export function caseDenylist(Denylist, d) {
  const list = new Denylist();
  const forever = 2 ** 40;
  for (const jti of d?.jti ?? []) list.revokeJti(jti, forever);
  for (const sid of d?.sid ?? []) list.revokeSid(sid, forever);
  for (const [sub, before] of Object.entries(d?.sub_before ?? {})) list.revokeSubject(sub, before, forever);
  return list;
}

/** The error code the package gives for a token rejection with `reason`. */
export function codeFor(reason) {
  if (reason === undefined) return null;
  return reason === 'expired' ? 'TOKEN_EXPIRED' : reason === 'revoked' ? 'TOKEN_REVOKED' : 'TOKEN_INVALID';
}

// 'accept', the rejection's reason, or 'error: …' for anything that is not a
// TollgateError (always a failure: a bad token must never throw anything else).
function classify(TollgateError, e) {
  if (e instanceof TollgateError && typeof e.reason === 'string') return { verdict: e.reason, code: e.code };
  return { verdict: `error: ${e && e.name}: ${e && e.message}`, code: (e && e.code) ?? null };
}

async function outcome(TollgateError, fn) {
  try {
    await fn();
    return { verdict: 'accept', code: null };
  } catch (e) {
    return classify(TollgateError, e);
  }
}

function outcomeSync(TollgateError, fn) {
  try {
    const r = fn();
    if (r && typeof r.then === 'function') return { verdict: 'error: returned a promise', code: null };
    return { verdict: 'accept', code: null };
  } catch (e) {
    return classify(TollgateError, e);
  }
}

/**
 * Runs one case through every path of the package `api` (the module's exports):
 * verify() (WebCrypto), verifySync() (pure Rust), check()/checkSync(), and one
 * verifier used three times (verify, verify again — a cache hit when accepted —
 * then verifySync), with a fresh verifier per path so each starts with an empty cache.
 */
export async function runCase(api, c) {
  const { Verifier, Denylist, TollgateError } = api;
  const opts = { now: c.now, denylist: caseDenylist(Denylist, c.denylist) };
  const make = () => new Verifier({ jwks: c.jwks, ...policyOptions(c.policy) });

  const verify = await outcome(TollgateError, () => make().verify(c.token, opts));
  const verifySync = outcomeSync(TollgateError, () => make().verifySync(c.token, opts));
  const checked = await make().check(c.token, opts);
  const checkedSync = make().checkSync(c.token, opts);
  const v = make();
  const repeated = [
    (await outcome(TollgateError, () => v.verify(c.token, opts))).verdict,
    (await outcome(TollgateError, () => v.verify(c.token, opts))).verdict,
    outcomeSync(TollgateError, () => v.verifySync(c.token, opts)).verdict,
  ];
  return {
    id: c.id,
    verify: verify.verdict,
    verifyCode: verify.code,
    verifySync: verifySync.verdict,
    verifySyncCode: verifySync.code,
    check: { ok: checked.ok, reason: checked.reason ?? null },
    checkSync: { ok: checkedSync.ok, reason: checkedSync.reason ?? null },
    repeated,
    cacheSize: v.cacheSize,
  };
}

/** What runCase() must return for case `c`. */
export function expectedResult(c) {
  const accept = c.expect.verdict === 'accept';
  const want = accept ? 'accept' : c.expect.reason;
  const reason = accept ? null : c.expect.reason;
  return {
    id: c.id,
    verify: want,
    verifyCode: codeFor(reason ?? undefined),
    verifySync: want,
    verifySyncCode: codeFor(reason ?? undefined),
    check: { ok: accept, reason },
    checkSync: { ok: accept, reason },
    repeated: [want, want, want],
    // Only accepted tokens are cached.
    cacheSize: accept ? 1 : 0,
  };
}

/** runCase() over many cases, in order. */
export async function runCases(api, cases) {
  const out = [];
  for (const c of cases) out.push(await runCase(api, c));
  return out;
}
