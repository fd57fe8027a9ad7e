// The guides' Express auth server, rewritten on @tollgate/verify.
//
//   POST /auth/register   { email, password }          users in memory, bcrypt (cost 10)
//   POST /auth/login      { email, password }          issues the pair, starts the session at
//                                                      the revocation service, sets the cookies
//   POST /auth/refresh    (refresh_token cookie)       rotation with reuse detection: a replayed
//                                                      refresh token → 401 reuse_detected, and the
//                                                      whole session is revoked at the edge
//   POST /auth/logout     (access token)               logout event, cookies cleared
//   GET  /profile         authenticate + RemoteDenylist
//   GET  /admin/users     authenticate + roles_any admin
//   GET  /.well-known/jwks.json                        the access keys, with their Cache-Control
//
// Run: TOLLGATE_REVOCATION_URL, TOLLGATE_EVENTS_KEY (events:write for ISSUER),
// TOLLGATE_READ_KEY (denylist:read), TOLLGATE_DENYLIST_KEY (the service's public JWK) in
// the environment, then `node server.js` (README.md).

import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import express from 'express';
import {
  Issuer,
  RemoteDenylist,
  RevocationClient,
  Refresher,
  authenticate,
  authCookies,
  clearAuthCookies,
  readCookie,
  REFRESH_COOKIE,
} from '@tollgate/verify';

/**
 * Builds the app. `config`: `issuer`, `audience`, `revocationUrl`, `eventsKey`,
 * `readKey`, `denylistKey` (JWK), `alg` (ES256), `insecureLocalhostHttp` (cookies
 * without Secure, for plain-HTTP localhost development only), `admins` (emails made
 * admin at registration), `clock` (ms). Resolves to `{ app, issuer, denylist, close }`.
 */
export async function createApp(config) {
  const issuer = await Issuer.generate({ issuer: config.issuer, audience: config.audience, alg: config.alg ?? 'ES256', clock: config.clock });
  const client = new RevocationClient({ url: config.revocationUrl, apiKey: config.eventsKey });
  const auth = new Refresher(issuer, client);
  const denylist = new RemoteDenylist({ url: config.revocationUrl, token: config.readKey, publicJwk: config.denylistKey, waitSeconds: 5 });
  await denylist.start();
  const verifier = issuer.accessVerifier({ denylist });
  const cookieOptions = { insecureLocalhostHttp: config.insecureLocalhostHttp === true };
  const admins = new Set(config.admins ?? []);

  const users = new Map(); // email → { id, email, hash, role }
  const byId = new Map();

  const app = express();
  app.use(express.json());

  app.post('/auth/register', async (req, res) => {
    const { email, password } = req.body ?? {};
    if (typeof email !== 'string' || typeof password !== 'string' || !email || password.length < 8) {
      return res.status(400).json({ error: 'invalid_request', detail: 'email and a password of at least 8 characters' });
    }
    if (users.has(email)) return res.status(409).json({ error: 'user_exists' });
    const user = { id: `u-${randomBytes(8).toString('hex')}`, email, hash: await bcrypt.hash(password, 10), role: admins.has(email) ? 'admin' : 'user' };
    users.set(email, user);
    byId.set(user.id, user);
    res.status(201).json({ id: user.id });
  });

  app.post('/auth/login', async (req, res, next) => {
    try {
      const { email, password } = req.body ?? {};
      const user = typeof email === 'string' ? users.get(email) : undefined;
      const ok = user !== undefined && typeof password === 'string' && (await bcrypt.compare(password, user.hash));
      if (!ok) return res.status(401).json({ error: 'invalid_credentials' });
      const pair = await auth.start({ sub: user.id, sid: randomBytes(16).toString('base64url'), roles: [user.role] });
      res.setHeader('Set-Cookie', authCookies(pair, cookieOptions));
      res.json({ accessToken: pair.access.token, expiresAt: pair.access.exp });
    } catch (e) {
      next(e);
    }
  });

  app.post('/auth/refresh', async (req, res, next) => {
    try {
      const presented = readCookie(req.headers.cookie, REFRESH_COOKIE);
      if (!presented) return res.status(401).json({ error: 'missing_refresh_token' });
      const r = await auth.refresh(presented, (p) => ({ roles: [byId.get(p.sub)?.role ?? 'user'] }));
      switch (r.outcome) {
        case 'rotated':
          res.setHeader('Set-Cookie', authCookies(r.pair, cookieOptions));
          return res.json({ accessToken: r.pair.access.token, expiresAt: r.pair.access.exp });
        case 'reuse_detected':
          // The service has already revoked the whole session at the edge.
          res.setHeader('Set-Cookie', clearAuthCookies(cookieOptions));
          return res.status(401).json({ error: 'reuse_detected' });
        case 'expired':
          res.setHeader('Set-Cookie', clearAuthCookies(cookieOptions));
          return res.status(401).json({ error: 'refresh_expired' });
        default:
          res.setHeader('Set-Cookie', clearAuthCookies(cookieOptions));
          return res.status(401).json({ error: 'invalid_refresh', reason: r.reason });
      }
    } catch (e) {
      next(e);
    }
  });

  app.post('/auth/logout', authenticate({ verifier, denylist }), async (req, res, next) => {
    try {
      const ack = await client.logout(req.user.sid, { iss: config.issuer });
      res.setHeader('Set-Cookie', clearAuthCookies(cookieOptions));
      res.json({ loggedOut: true, seq: ack.seq });
    } catch (e) {
      next(e);
    }
  });

  app.get('/profile', authenticate({ verifier, denylist }), (req, res) => {
    const user = byId.get(req.user.sub);
    if (!user) return res.status(404).json({ error: 'unknown_user' });
    res.json({ id: user.id, email: user.email, role: user.role, sid: req.user.sid });
  });

  app.get('/admin/users', authenticate({ verifier, denylist, rolesAny: ['admin'] }), (req, res) => {
    res.json({ users: [...users.values()].map((u) => ({ id: u.id, email: u.email, role: u.role })) });
  });

  app.get('/.well-known/jwks.json', (req, res) => {
    const doc = issuer.jwks();
    res.setHeader('Cache-Control', doc.cacheControl);
    res.type('application/json').send(doc.body);
  });

  // Failures that are not the caller's: the service unreachable, ... (never a stack trace).
  app.use((err, req, res, _next) => {
    const status = err?.code === 'UNREACHABLE' || err?.code === 'DEADLINE' || err?.status === 503 ? 503 : err?.type === 'entity.parse.failed' ? 400 : 500;
    const error = status === 400 ? 'bad_json' : status === 503 ? 'revocation_unavailable' : 'internal';
    if (status === 500) console.error(err);
    res.status(status).json({ error });
  });

  return { app, issuer, denylist, close: () => denylist.stop() };
}

const isMain = import.meta.url === new URL(process.argv[1] ?? '', 'file:').href;
if (isMain) {
  const env = (name, fallback) => {
    const v = process.env[name] ?? fallback;
    if (v === undefined) {
      console.error(`${name} is required`);
      process.exit(2);
    }
    return v;
  };
  const { app, close } = await createApp({
    issuer: env('ISSUER', 'https://auth.example.test'),
    audience: env('AUDIENCE', 'https://api.example.test'),
    revocationUrl: env('TOLLGATE_REVOCATION_URL', 'http://127.0.0.1:8790'),
    eventsKey: env('TOLLGATE_EVENTS_KEY'),
    readKey: env('TOLLGATE_READ_KEY'),
    denylistKey: JSON.parse(env('TOLLGATE_DENYLIST_KEY')),
    insecureLocalhostHttp: process.env.INSECURE_LOCALHOST_COOKIES === '1',
    admins: (process.env.ADMINS ?? '').split(',').filter(Boolean),
  });
  const port = Number(process.env.PORT ?? 3000);
  const server = app.listen(port, process.env.HOST ?? '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
  process.on('SIGTERM', () => server.close(() => close().then(() => process.exit(0))));
}
