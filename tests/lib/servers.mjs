// In-process HTTP servers on 127.0.0.1: the origin (echoes what it received) and a
// JWKS host (serves mutable documents and counts fetches per path).
import http from 'node:http';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/** The origin: records every request (with the time it arrived) and answers with what it saw. */
export async function startOrigin() {
  const seen = [];
  const server = http.createServer((req, res) => {
    const receivedAt = Date.now();
    if (req.url.includes('/__drop')) {
      // An origin that drops the connection: the Worker's fetch rejects (502 expected).
      seen.push({ method: req.method, url: req.url, headers: req.headers, receivedAt, dropped: true });
      req.socket.destroy();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push({ ...rec, receivedAt });
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(rec));
    });
  });
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(r)) };
}

/**
 * A JWKS host: `docs[path] = {keys:[...]}` and `maxAge[path]` (or a whole
 * `cacheControl[path]` header value); `redirects[path] = location` answers 302;
 * `fetches[path]` counts (by path, whatever host name the request used).
 */
export async function startJwksHost() {
  const docs = {};
  const maxAge = {};
  const cacheControl = {};
  const redirects = {};
  const fetches = {};
  const server = http.createServer((req, res) => {
    const path = req.url.split('?')[0];
    fetches[path] = (fetches[path] ?? 0) + 1;
    if (path in redirects) {
      res.writeHead(302, { location: redirects[path] });
      return res.end();
    }
    if (!(path in docs)) {
      res.statusCode = 404;
      return res.end('{}');
    }
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', cacheControl[path] ?? `public, max-age=${maxAge[path] ?? 300}`);
    res.end(JSON.stringify(docs[path]));
  });
  const port = await listen(server);
  return {
    port,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    docs,
    maxAge,
    cacheControl,
    redirects,
    fetches,
    count: (p) => fetches[p] ?? 0,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }),
  };
}

/**
 * A proxy in front of the revocation service that can misbehave as something on the
 * way to it could: `mode` 'pass' forwards; 'unsigned' answers delta requests with
 * `unsignedStatus` (204 by default) and no body; 'rollback' answers deltas with 410 and
 * snapshots with the first snapshot it passed (an older, validly signed one: a service
 * restored from a backup, or a replay). `snapshotDelayMs` holds snapshot answers back.
 */
export async function startServiceProxy(target) {
  const state = { mode: 'pass', unsignedStatus: 204, snapshotDelayMs: 0, firstSnapshot: null, snapshots: 0, requests: 0 };
  const server = http.createServer(async (req, res) => {
    state.requests++;
    const u = new URL(req.url, 'http://x');
    const isDelta = u.pathname === '/v1/denylist' && u.searchParams.has('since');
    const isSnapshot = u.pathname === '/v1/denylist' && !isDelta;
    try {
      if (isDelta && state.mode === 'unsigned') return res.writeHead(state.unsignedStatus).end();
      if (isDelta && state.mode === 'rollback') return res.writeHead(410).end();
      if (isSnapshot) {
        state.snapshots++;
        if (state.snapshotDelayMs) await new Promise((r) => setTimeout(r, state.snapshotDelayMs));
        if (state.mode === 'rollback' && state.firstSnapshot) {
          return res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(state.firstSnapshot);
        }
      }
      const upstream = await fetch(target + req.url, { headers: { authorization: req.headers.authorization ?? '', accept: req.headers.accept ?? '*/*' } });
      const body = Buffer.from(await upstream.arrayBuffer());
      if (isSnapshot && upstream.ok) state.firstSnapshot ??= body;
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(502).end();
    }
  });
  const port = await listen(server);
  return {
    url: `http://127.0.0.1:${port}`,
    state,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }),
  };
}
