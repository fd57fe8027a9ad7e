// fetchWithRefresh: the seeds' apiRequest, done once and right.
//
// Sends the request; when the answer is 401 with `code: "TOKEN_EXPIRED"` (or the
// equivalent `WWW-Authenticate` error_description), refreshes the session once and
// retries the request once. Concurrent calls that hit an expired token share one
// refresh, and a call whose 401 arrives after another call's refresh finished just
// retries. Anything else (including a second 401) is returned to the caller as is.
//
// Across the tabs of one browser (where the Web Locks API exists), refreshes are
// serialised by a Web Lock named after the refresh URL or `lockName`, and their
// outcome is shared on a BroadcastChannel of the same name: a tab that had to wait for
// the lock (another tab was refreshing) or that heard of a refresh newer than its
// request first retries with what that refresh left (the new cookies), and refreshes
// itself only if that retry is still expired. So a browser with many tabs sends one
// refresh, and no tab replays a refresh token another tab already rotated. When a
// refresh answers `reuse_detected` or `revoked` (or any other 401: the session is
// over), every tab's `onSessionEnd(reason)` is called — the page's cue to show the
// login form.
//
// Two modes:
// - cookies (the seeds' HttpOnly pattern): `refreshUrl` is POSTed with
//   `credentials: "include"`; the server sets the new cookie. (Pass
//   `credentials: "include"` in `init` too for cross-origin APIs in browsers.)
//   `refreshInit` may be a function, called for each refresh (e.g. to read a CSRF
//   token at that moment).
// - bearer: `getToken()` supplies the access token for each attempt, and `refresh()`
//   (or the JSON `accessToken` from `refreshUrl`, handed to `setToken`) renews it.

// Per refresh function (weakly held) or URL: the number of refreshes that succeeded,
// and the one in flight.
const byFunction = new WeakMap();
const byUrl = new Map();
// Per coordination name: the BroadcastChannel, the time of the newest successful
// refresh heard of, and the onSessionEnd handlers.
const channels = new Map();

/**
 * @param {RequestInfo | URL} input
 * @param {RequestInit} [init]
 * @param {object} [options] `refreshUrl`, `refreshInit`, `refresh`, `getToken`,
 *   `setToken`, `fetch`, `coordinate` (default true where Web Locks exist),
 *   `lockName`, `onSessionEnd`, `expired` (an async predicate replacing
 *   `isExpired`, e.g. to also refresh when the access cookie itself has expired).
 */
export async function fetchWithRefresh(input, init = {}, options = {}) {
  const doFetch = options.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw new TypeError('no fetch available: pass options.fetch');
  if (!options.refresh && !options.refreshUrl) throw new TypeError('fetchWithRefresh needs options.refresh or options.refreshUrl');
  const session = sessionFor(options);
  const shared = coordination(options);
  const base = new Request(input, init);
  const retryCopy = base.clone();
  const probeCopy = shared ? base.clone() : null;

  const expired = options.expired ?? isExpired;
  const generation = session.generation;
  const sentAt = Date.now();
  const first = await doFetch(await withToken(base, options));
  if (!(await expired(first))) return first;

  // A refresh that finished after this request was sent already renewed the session.
  if (session.generation !== generation) {
    await first.body?.cancel();
    return doFetch(await withToken(retryCopy, options));
  }
  if (!shared) {
    const refreshed = await refreshOnce(session, options, doFetch);
    if (!refreshed) return first;
    await first.body?.cancel();
    return doFetch(await withToken(retryCopy, options));
  }
  // Across tabs: one refresh at a time; the outcome of another tab's is reused.
  const outcome = await refreshOnce(session, options, doFetch, async (run) => {
    let waited = false;
    return navigator.locks.request(shared.name, { ifAvailable: true }, async (lock) => {
      if (lock) return decide(false);
      waited = true;
      return navigator.locks.request(shared.name, () => decide(waited));
    });
    async function decide(hadToWait) {
      if (hadToWait || shared.lastRefreshAt >= sentAt) {
        const probe = await doFetch(await withToken(probeCopy, options));
        if (!(await expired(probe))) return { response: probe };
        await probe.body?.cancel();
      }
      return run();
    }
  });
  if (outcome && typeof outcome === 'object' && outcome.response) {
    await first.body?.cancel();
    // Calls of this tab that shared the wait: the first takes the probe's answer, the
    // others send their own retry.
    if (!outcome.taken) {
      outcome.taken = true;
      return outcome.response;
    }
    return doFetch(await withToken(retryCopy, options));
  }
  if (!outcome) return first;
  await first.body?.cancel();
  return doFetch(await withToken(retryCopy, options));
}

/** Whether a response says the access token expired. */
export async function isExpired(res) {
  if (res.status !== 401) return false;
  const www = res.headers.get('www-authenticate') ?? '';
  if (/error_description="expired"/i.test(www)) return true;
  if (!(res.headers.get('content-type') ?? '').includes('json')) return false;
  try {
    const body = await res.clone().json();
    return body?.code === 'TOKEN_EXPIRED';
  } catch {
    return false;
  }
}

async function withToken(request, options) {
  if (!options.getToken) return request;
  const token = await options.getToken();
  if (!token) return request;
  const headers = new Headers(request.headers);
  headers.set('authorization', `Bearer ${token}`);
  return new Request(request, { headers });
}

function sessionFor(options) {
  const [map, key] = options.refresh ? [byFunction, options.refresh] : [byUrl, String(options.refreshUrl)];
  let session = map.get(key);
  if (!session) {
    session = { generation: 0, inflight: null };
    map.set(key, session);
  }
  return session;
}

function coordination(options) {
  if (options.coordinate === false) return null;
  if (typeof navigator === 'undefined' || !navigator.locks || typeof BroadcastChannel === 'undefined') return null;
  const name = options.lockName ?? `tollgate-refresh:${options.refreshUrl ?? 'function'}`;
  let c = channels.get(name);
  if (!c) {
    const channel = new BroadcastChannel(name);
    c = { name, channel, lastRefreshAt: 0, handlers: new Set() };
    channel.onmessage = (ev) => {
      const m = ev.data;
      if (m?.type === 'refreshed') c.lastRefreshAt = Math.max(c.lastRefreshAt, m.at);
      if (m?.type === 'ended') for (const h of c.handlers) h(m.reason);
    };
    channels.set(name, c);
  }
  if (options.onSessionEnd) c.handlers.add(options.onSessionEnd);
  return c;
}

function refreshOnce(session, options, doFetch, guard) {
  if (!session.inflight) {
    const shared = guard ? coordination(options) : null;
    const run = async () => {
      const result = await runRefresh(options, doFetch);
      if (shared) {
        if (result.ok) {
          shared.lastRefreshAt = Date.now();
          shared.channel.postMessage({ type: 'refreshed', at: shared.lastRefreshAt });
        } else if (result.ended) {
          shared.channel.postMessage({ type: 'ended', reason: result.ended });
        }
      }
      if (result.ended) options.onSessionEnd?.(result.ended);
      return result.ok;
    };
    session.inflight = (guard ? guard(run) : run())
      .catch(() => false)
      .then((ok) => {
        if (ok === true || ok?.response) session.generation += 1;
        return ok;
      })
      .finally(() => {
        session.inflight = null;
      });
  }
  return session.inflight;
}

async function runRefresh(options, doFetch) {
  if (options.refresh) {
    const result = await options.refresh();
    if (typeof result === 'string' && options.setToken) await options.setToken(result);
    return { ok: result !== false && result !== null && result !== undefined };
  }
  const extra = typeof options.refreshInit === 'function' ? await options.refreshInit() : (options.refreshInit ?? {});
  const res = await doFetch(options.refreshUrl, { method: 'POST', credentials: 'include', ...extra });
  if (!res.ok) {
    let ended = null;
    if (res.status === 401) {
      ended = 'unauthorized';
      try {
        const body = await res.json();
        if (typeof body?.error === 'string') ended = body.error;
      } catch {
        /* not JSON */
      }
    } else {
      await res.body?.cancel();
    }
    return { ok: false, ended };
  }
  if (options.setToken && (res.headers.get('content-type') ?? '').includes('json')) {
    const body = await res.json();
    if (typeof body?.accessToken !== 'string') return { ok: false };
    await options.setToken(body.accessToken);
  } else {
    await res.body?.cancel();
  }
  return { ok: true };
}
