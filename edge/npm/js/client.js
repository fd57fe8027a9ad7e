// fetchWithRefresh: the seeds' apiRequest, done once and right.
//
// Sends the request; when the answer is 401 with `code: "TOKEN_EXPIRED"` (or the
// equivalent `WWW-Authenticate` error_description), refreshes the session once and
// retries the request once. Concurrent calls that hit an expired token share one
// refresh, and a call whose 401 arrives after another call's refresh finished just
// retries. Anything else (including a second 401) is returned to the caller as is.
//
// Two modes:
// - cookies (the seeds' HttpOnly pattern): `refreshUrl` is POSTed with
//   `credentials: "include"`; the server sets the new cookie. (Pass
//   `credentials: "include"` in `init` too for cross-origin APIs in browsers.)
// - bearer: `getToken()` supplies the access token for each attempt, and `refresh()`
//   (or the JSON `accessToken` from `refreshUrl`, handed to `setToken`) renews it.

// Per refresh function (weakly held) or URL: the number of refreshes that succeeded,
// and the one in flight.
const byFunction = new WeakMap();
const byUrl = new Map();

/**
 * @param {RequestInfo | URL} input
 * @param {RequestInit} [init]
 * @param {object} [options] `refreshUrl`, `refreshInit`, `refresh`, `getToken`,
 *   `setToken`, `fetch`.
 */
export async function fetchWithRefresh(input, init = {}, options = {}) {
  const doFetch = options.fetch ?? globalThis.fetch;
  if (typeof doFetch !== 'function') throw new TypeError('no fetch available: pass options.fetch');
  if (!options.refresh && !options.refreshUrl) throw new TypeError('fetchWithRefresh needs options.refresh or options.refreshUrl');
  const session = sessionFor(options);
  const base = new Request(input, init);
  const retryCopy = base.clone();

  const generation = session.generation;
  const first = await doFetch(await withToken(base, options));
  if (!(await isExpired(first))) return first;

  // A refresh that finished after this request was sent already renewed the session.
  const refreshed = session.generation !== generation || (await refreshOnce(session, options, doFetch));
  if (!refreshed) return first;
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

function refreshOnce(session, options, doFetch) {
  if (!session.inflight) {
    session.inflight = runRefresh(options, doFetch)
      .catch(() => false)
      .then((ok) => {
        if (ok) session.generation += 1;
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
    return result !== false && result !== null && result !== undefined;
  }
  const res = await doFetch(options.refreshUrl, { method: 'POST', credentials: 'include', ...(options.refreshInit ?? {}) });
  if (!res.ok) {
    await res.body?.cancel();
    return false;
  }
  if (options.setToken && (res.headers.get('content-type') ?? '').includes('json')) {
    const body = await res.json();
    if (typeof body?.accessToken !== 'string') return false;
    await options.setToken(body.accessToken);
  } else {
    await res.body?.cancel();
  }
  return true;
}
