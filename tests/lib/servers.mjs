// In-process HTTP servers on 127.0.0.1: the origin (echoes what it received) and a
// JWKS host (serves mutable documents and counts fetches per path).
import http from 'node:http';

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

/** The origin: records every request and answers with what it saw. */
export async function startOrigin() {
  const seen = [];
  const server = http.createServer((req, res) => {
    if (req.url.includes('/__drop')) {
      // An origin that drops the connection: the Worker's fetch rejects (502 expected).
      seen.push({ method: req.method, url: req.url, headers: req.headers, dropped: true });
      req.socket.destroy();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rec = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() };
      seen.push(rec);
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(rec));
    });
  });
  const port = await listen(server);
  return { port, url: `http://127.0.0.1:${port}`, seen, close: () => new Promise((r) => server.close(r)) };
}

/**
 * A JWKS host: `docs[path] = {keys:[...]}` and `maxAge[path]` (or a whole
 * `cacheControl[path]` header value); `fetches[path]` counts.
 */
export async function startJwksHost() {
  const docs = {};
  const maxAge = {};
  const cacheControl = {};
  const fetches = {};
  const server = http.createServer((req, res) => {
    const path = req.url.split('?')[0];
    fetches[path] = (fetches[path] ?? 0) + 1;
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
    fetches,
    count: (p) => fetches[p] ?? 0,
    close: () => new Promise((r) => { server.close(r); server.closeAllConnections(); }),
  };
}
