// The page in real headless Chromium (Debian's chromium through playwright-core),
// served by tollgate-auth through the Worker in workerd (wrangler dev), with the
// revocation service and a local Kakao-shaped OpenID provider. A short access-token
// life (3 s) makes the silent refresh happen during the test.
// Run through auth/social.sh (CHROMIUM_BIN, NODE22, WRANGLER_JS, the binaries).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { chromium } from 'playwright-core';

import { stopAll, freePort, waitFor } from '../../tests/lib/procs.mjs';
import { startRevocation, startWorker, need, ROOT } from '../../tests/lib/stack.mjs';
import { startProvider } from './lib/provider.mjs';
import { startAuth, metric } from './lib/auth.mjs';

const SHOTS = path.join(ROOT, 'docs');
const PASSWORD = 'correct horse battery staple';
const ORIGIN_SECRET = `social-browser-origin-secret-${randomUUID()}`;
let svc; let auth; let kakao; let worker; let browser; let page;
const shots = process.env.TOLLGATE_SCREENSHOTS === '1';

async function shot(p, name) {
  if (shots) await p.screenshot({ path: path.join(SHOTS, name), fullPage: true });
}

before(async () => {
  svc = await startRevocation();
  const workerPort = await freePort();
  const edge = `http://127.0.0.1:${workerPort}`;
  kakao = await startProvider({ shape: 'kakao', clientId: 'kakao-client', clientSecret: 'kakao-secret', redirectUris: [`${edge}/auth/kakao/callback`] });
  auth = await startAuth(svc, {
    publicUrl: edge,
    providers: { kakao: { preset: 'kakao', issuer: kakao.issuer, client_id: 'kakao-client', client_secret: 'kakao-secret' } },
    env: {
      TOLLGATE_AUTH_ACCESS_TTL_SECS: '3',
      TOLLGATE_AUTH_EDGE_ASSERTION_SECRETS: JSON.stringify([ORIGIN_SECRET]),
    },
    logName: 'auth-browser',
  });
  const routes = JSON.stringify([
    { path: '/auth/logout', auth: 'required' },
    { path: '/auth/logout-all', auth: 'required' },
    { path: '/auth/*', auth: 'none' },
    { path: '/.well-known/*', auth: 'none' },
    { path: '/healthz', auth: 'none' },
    { path: '/', auth: 'none' },
    { path: '/page/*', auth: 'none' },
    { path: '/admin/*', roles_any: ['admin'] },
    { path: '/*', auth: 'required' },
  ]);
  worker = await startWorker({
    TOLLGATE_ORIGIN: auth.url,
    TOLLGATE_JWKS_URLS: JSON.stringify([`${auth.url}/.well-known/jwks.json`]),
    TOLLGATE_JWKS: '',
    TOLLGATE_ISSUERS: JSON.stringify(['https://issuer.test']),
    TOLLGATE_AUDIENCES: JSON.stringify(['https://api.test']),
    TOLLGATE_REVOCATION_URL: svc.url,
    TOLLGATE_REVOCATION_TOKEN: svc.readKey,
    TOLLGATE_DENYLIST_KEY: await svc.publicJwk(),
    TOLLGATE_ROUTES: routes,
    TOLLGATE_ORIGIN_SECRET: ORIGIN_SECRET,
    TOLLGATE_LEEWAY_SECONDS: '0',
  }, { logName: 'social-browser', port: workerPort });
  assert.equal(worker.url, edge);
  await waitFor('the Worker to reach the login service', async () => (await fetch(`${edge}/healthz`)).status === 200, { timeoutMs: 30000 });
  browser = await chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), 'tollgate-chromium-')), {
    executablePath: need('CHROMIUM_BIN'),
    headless: true,
    viewport: { width: 560, height: 760 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
});

after(async () => {
  await browser?.close();
  await auth?.stop();
  await kakao?.close();
  await stopAll();
});

// Every refresh that reached the service, whatever its outcome (a second tab's
// refresh would converge on the same pair, so counting rotations alone would not see it).
const refreshes = async () => {
  let n = 0;
  for (const outcome of ['rotated', 'converged', 'reuse_detected', 'revoked', 'expired', 'invalid', 'rate_limited', 'unavailable', 'other']) {
    n += await metric(auth.url, 'tollgate_auth_refreshes_total', { outcome });
  }
  return n;
};
const visible = (p, id) => p.locator(`#${id}`).isVisible();

async function open(p) {
  await p.goto(`${worker.url}/`);
  await p.waitForSelector('body[data-ready="true"]', { timeout: 15000 });
}

/** Waits until the browser dropped the access cookie (its Max-Age is the token's life). */
async function accessExpired() {
  await waitFor('the access cookie to expire', async () => !(await browser.cookies(worker.url)).some((c) => c.name === 'access_token'), { timeoutMs: 15000, intervalMs: 100 });
}

const email = `page.${randomUUID().slice(0, 8)}@example.test`;

test('register and log in through the page; the session cookies are HttpOnly; the profile comes through the Worker', async () => {
  await open(page);
  assert.ok(await visible(page, 'signed-out'));
  assert.ok(await page.getByRole('link', { name: 'Sign in with Kakao' }).isVisible());
  await page.getByLabel('Email', { exact: true }).nth(1).fill(email);
  await page.locator('#register-password').fill('short');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForFunction(() => !document.getElementById('message').hidden);
  assert.match(await page.locator('#message').textContent(), /password/i, 'an actionable weak-password message');
  await page.locator('#register-password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.waitForFunction(() => /Account created/.test(document.getElementById('message').textContent));
  await shot(page, 'social-1-register.png');
  await page.locator('#login-password').fill('wrong password here');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForFunction(() => /wrong/.test(document.getElementById('message').textContent));
  await page.locator('#login-password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForSelector('#signed-in:not([hidden])', { timeout: 10000 });
  assert.equal(await page.locator('#profile-email').textContent(), email);
  assert.equal(await page.locator('#profile-method').textContent(), 'password');
  const docCookie = await page.evaluate(() => document.cookie);
  assert.ok(!docCookie.includes('access_token') && !docCookie.includes('refresh_token'), `HttpOnly: ${docCookie}`);
  assert.match(docCookie, /csrf_token=/);
  const jar = await browser.cookies(worker.url);
  assert.ok(jar.find((c) => c.name === 'access_token')?.httpOnly);
  // The service refuses /profile without the Worker's assertion: the 200 came through the edge.
  const direct = await fetch(`${auth.url}/profile`, { headers: { cookie: `access_token=${jar.find((c) => c.name === 'access_token').value}` } });
  assert.equal(direct.status, 401);
  assert.equal((await direct.json()).error, 'invalid_assertion');
  await shot(page, 'social-2-profile.png');
});

test('a short access-token life: the page refreshes silently', async () => {
  const before = await refreshes();
  await accessExpired();
  await page.getByRole('button', { name: 'Reload profile' }).click();
  await waitFor('one refresh', async () => (await refreshes()) === before + 1, { timeoutMs: 10000 });
  await page.waitForSelector('#signed-in:not([hidden])');
  assert.equal(await page.locator('#profile-email').textContent(), email);
  assert.ok(await page.locator('#message').isHidden(), 'no error shown');
});

test('two tabs refreshing at once both stay logged in, and exactly one refresh reaches the service', async () => {
  const tab2 = await browser.newPage();
  await open(tab2);
  await open(page);
  assert.ok(await visible(tab2, 'signed-in'));
  await accessExpired();
  const before = await refreshes();
  const tabs = [page, tab2];
  const seen = await Promise.all(tabs.map((p) => p.evaluate(() => performance.getEntriesByType('resource').length)));
  await Promise.all(tabs.map((p) => p.evaluate(() => document.getElementById('reload').click())));
  // Each tab's reload ends in a 200 for /profile (a 401 first, then the retry once the
  // shared refresh is done). A tab sends any refresh of its own before that 200, so once
  // both have it the count is final.
  const profileOk = (p, from) =>
    p.evaluate((from) => performance.getEntriesByType('resource').slice(from).some((e) => e.name.endsWith('/profile') && e.responseStatus === 200), from);
  await waitFor('both tabs to load the profile again after the refresh', async () => (await Promise.all(tabs.map((p, i) => profileOk(p, seen[i])))).every(Boolean), { timeoutMs: 10000 });
  for (const p of tabs) {
    await p.waitForFunction(() => !document.getElementById('signed-in').hidden && document.getElementById('profile-email').textContent.length > 0);
  }
  assert.equal(await refreshes(), before + 1, 'one refresh for the browser');
  assert.ok(await visible(page, 'signed-in'));
  assert.ok(await visible(tab2, 'signed-in'));
  await tab2.close();
});

test('logout makes the profile unreachable', async () => {
  const token = (await browser.cookies(worker.url)).find((c) => c.name === 'access_token')?.value;
  await page.getByRole('button', { name: 'Log out', exact: true }).click();
  await page.waitForSelector('#signed-out:not([hidden])');
  const status = await page.evaluate(async () => (await fetch('/profile')).status);
  assert.equal(status, 401);
  if (token) {
    await waitFor('the old access token refused at the edge', async () => (await fetch(`${worker.url}/profile`, { headers: { authorization: `Bearer ${token}` } })).status === 401, { timeoutMs: 5000 });
  }
  // A reload shows the login form, not the profile.
  await open(page);
  assert.ok(await visible(page, 'signed-out'));
});

test('"Sign in with Kakao" through the local provider lands on the profile', async () => {
  await open(page);
  await page.getByRole('link', { name: 'Sign in with Kakao' }).click();
  await page.waitForURL((u) => u.origin === kakao.issuer, { timeout: 10000 });
  await page.locator('input[name=login]').fill('2718281828');
  await page.locator('input[name=password]').fill('any');
  await shot(page, 'social-3-kakao.png');
  await page.locator('button[type=submit]').first().click();
  await page.waitForSelector('button[type=submit]', { timeout: 10000 });
  if (new URL(page.url()).origin === kakao.issuer) await page.locator('button[type=submit]').first().click(); // consent
  await page.waitForURL((u) => u.origin === worker.url, { timeout: 15000 });
  await page.waitForSelector('#signed-in:not([hidden])', { timeout: 15000 });
  assert.equal(await page.locator('#profile-method').textContent(), 'kakao');
  assert.match(await page.locator('#identities').textContent(), /kakao/);
  assert.ok(!(await browser.cookies(worker.url)).some((c) => c.name.startsWith('tg_oauth_')), 'attempt cookie gone');
  await shot(page, 'social-4-kakao-profile.png');
  // Logout everywhere ends it too.
  await page.getByRole('button', { name: 'Log out everywhere' }).click();
  await page.waitForSelector('#signed-out:not([hidden])');
  assert.equal(await page.evaluate(async () => (await fetch('/profile')).status), 401);
});
