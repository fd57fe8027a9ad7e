// A local OpenID provider (panva's oidc-provider) shaped like Google or like Kakao,
// with dev interactions driven over HTTP, PKCE required, and test controls:
//
//   google: client_secret_basic or _post, sub = the account id, email + email_verified
//           in the ID token.
//   kakao:  client_secret_post only, numeric sub, comma-separated scopes accepted
//           (as Kakao does), email in the ID token only when it is verified (userinfo
//           always has email + email_verified).
//
// Controls: `accounts` (id → {email, email_verified}), `jwksFetches` (GET /jwks
// counted), `scopesSeen` (the raw `scope` of each authorization request),
// `tamperNext(fn)` (the next token response's ID token gets its claims changed by fn
// and is re-signed with the provider's own key — or with `{rogue: true}` a key the
// provider never publishes, with a new kid).
import http from 'node:http';
import { Provider } from 'oidc-provider';
import * as jose from 'jose';

export async function startProvider({ shape, port = 0, clientId, clientSecret, redirectUris }) {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const signing = { ...(await jose.exportJWK(privateKey)), kid: `${shape}-key-1`, alg: 'RS256', use: 'sig' };
  const rogue = await jose.generateKeyPair('RS256', { extractable: true });
  const accounts = new Map();
  const state = { jwksFetches: 0, scopesSeen: [], tamper: null, tokenAuthSeen: [] };
  const server = http.createServer();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const kakao = shape === 'kakao';
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: kakao ? 'client_secret_post' : 'client_secret_basic',
    }],
    clientAuthMethods: kakao ? ['client_secret_post'] : ['client_secret_basic', 'client_secret_post'],
    jwks: { keys: [signing] },
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'account_email'],
    claims: kakao
      ? { openid: ['sub'], account_email: ['email', 'email_verified'] }
      : { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['social-test-cookie-key'] },
    async findAccount(ctx, id) {
      const a = accounts.get(id) ?? { email: `${id}@${shape}.test`, email_verified: true };
      return {
        accountId: id,
        async claims(use) {
          const c = { sub: id };
          if (kakao) {
            if (use === 'userinfo') Object.assign(c, { email: a.email, email_verified: a.email_verified });
            else if (a.email_verified) c.email = a.email;
          } else {
            Object.assign(c, { email: a.email, email_verified: a.email_verified, name: id });
          }
          return c;
        },
      };
    },
  });
  provider.proxy = false;
  provider.use(async (ctx, next) => {
    if (ctx.path === '/jwks') state.jwksFetches += 1;
    if (ctx.path === '/auth' && typeof ctx.query.scope === 'string') {
      state.scopesSeen.push(ctx.query.scope);
      // Kakao takes its consent scopes comma-separated.
      if (kakao && ctx.query.scope.includes(',')) ctx.query = { ...ctx.query, scope: ctx.query.scope.split(',').join(' ') };
    }
    if (ctx.path === '/token') {
      state.tokenAuthSeen.push(ctx.get('authorization') ? 'client_secret_basic' : 'client_secret_post');
    }
    await next();
    if (ctx.path === '/token' && ctx.status === 200 && state.tamper && ctx.body?.id_token) {
      const { fn, rogue: useRogue, keep } = state.tamper;
      if (!keep) state.tamper = null;
      const claims = fn(jose.decodeJwt(ctx.body.id_token));
      const key = useRogue ? rogue.privateKey : privateKey;
      const kid = useRogue ? `${shape}-rogue-${Date.now()}` : signing.kid;
      ctx.body = { ...ctx.body, id_token: await new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).sign(key) };
    }
  });
  server.on('request', provider.callback());
  return {
    issuer,
    shape,
    accounts,
    state,
    tamperNext(fn, { rogue: useRogue = false } = {}) {
      state.tamper = { fn, rogue: useRogue };
    },
    /** Like tamperNext, for every token response until `tamperStop()`. */
    tamperAll(fn, { rogue: useRogue = false } = {}) {
      state.tamper = { fn, rogue: useRogue, keep: true };
    },
    tamperStop() {
      state.tamper = null;
    },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
  };
}

/** A cookie jar for one browser: host-wide (ports share cookies, as in browsers), with paths. */
export class Jar {
  constructor() { this.cookies = new Map(); }
  store(res, url) {
    const u = new URL(url);
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';').map((s) => s.trim());
      const i = pair.indexOf('=');
      const name = pair.slice(0, i);
      const value = pair.slice(i + 1);
      let path = '/';
      let maxAge = null;
      for (const a of attrs) {
        const [k, v] = a.split('=');
        if (k.toLowerCase() === 'path') path = v;
        if (k.toLowerCase() === 'max-age') maxAge = Number(v);
      }
      const key = `${u.hostname}|${path}|${name}`;
      if (maxAge === 0 || value === '') this.cookies.delete(key);
      else this.cookies.set(key, { host: u.hostname, path, name, value, attrs: line });
    }
  }
  header(url) {
    const u = new URL(url);
    const list = [...this.cookies.values()].filter((c) => c.host === u.hostname && (u.pathname === c.path || u.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`) || c.path === '/'));
    return list.map((c) => `${c.name}=${c.value}`).join('; ');
  }
  get(name) {
    for (const c of this.cookies.values()) if (c.name === name) return c;
    return undefined;
  }
  names() { return [...this.cookies.values()].map((c) => c.name); }
}

/** One GET or POST without following redirects, through `jar`. */
export async function step(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const h = { ...headers };
  const cookie = jar.header(url);
  if (cookie) h.cookie = cookie;
  let body;
  if (form) {
    h['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const res = await fetch(url, { method, headers: h, body, redirect: 'manual' });
  jar.store(res, url);
  const location = res.headers.get('location');
  return { res, location: location ? new URL(location, url).toString() : null };
}

/**
 * Drives the provider from an authorization URL to the redirect back: login as
 * `account` and consent, over HTTP. Returns the callback URL (not yet visited).
 */
export async function authorize(jar, authUrl, account) {
  let url = authUrl;
  for (let hops = 0; hops < 12; hops += 1) {
    const { res, location } = await step(jar, url);
    if (!location) throw new Error(`provider stopped at ${url}: ${res.status} ${await res.text()}`);
    await res.body?.cancel();
    const loc = new URL(location);
    if (!location.startsWith(new URL(authUrl).origin)) return location; // back to the client
    const m = loc.pathname.match(/^\/interaction\/([^/]+)$/);
    if (m) {
      const page = await step(jar, location);
      const html = await page.res.text();
      const prompt = html.includes('name="login"') ? { prompt: 'login', login: account, password: 'any' } : { prompt: 'consent' };
      const sent = await step(jar, location, { method: 'POST', form: prompt });
      await sent.res.body?.cancel();
      if (!sent.location) throw new Error(`interaction ${prompt.prompt} failed: ${sent.res.status}`);
      url = sent.location;
      continue;
    }
    url = location;
  }
  throw new Error('too many redirects at the provider');
}
