// The page's client: register, log in (password or a provider), the profile through
// the edge, logout, logout everywhere, linked identities. Every API call goes through
// @tollgate/verify's fetchWithRefresh: an expired access token is refreshed once
// (one refresh per browser, shared by the tabs) and the call retried; a session that
// ended (reuse detected, revoked) brings back the login form.
import { fetchWithRefresh, isExpired } from '/page/client.js';

const $ = (id) => document.getElementById(id);
const csrf = () => document.cookie.split('; ').find((c) => c.startsWith('csrf_token='))?.slice('csrf_token='.length) ?? '';

const MESSAGES = {
  invalid_credentials: 'The email or password is wrong. Check both and try again.',
  email_taken: 'An account with this email already exists. Log in instead.',
  invalid_email: 'That does not look like an email address.',
  rate_limited: 'Too many attempts. Wait a moment and try again.',
  invalid_state: 'That sign-in expired or was started in another browser. Please start it again.',
  state_used: 'That sign-in was already completed. Please start again.',
  provider_error: 'The provider did not complete the sign-in (cancelled?). You can try again.',
  issuer_mismatch: 'The sign-in answer did not come from the expected provider. Please start again.',
  code_exchange_failed: 'The provider refused to complete the sign-in. Please start again.',
  invalid_id_token: 'The provider\'s answer could not be verified. Please start again.',
  provider_unavailable: 'The provider cannot be reached right now. Try again in a minute.',
  provider_misconfigured: 'This sign-in provider is not set up correctly. Use another way to sign in.',
  no_pending_link: 'The account link expired. Sign in with the provider again.',
  identity_taken: 'That identity is already linked to another account.',
  last_sign_in_method: 'This is your only way to sign in; link another provider before removing it.',
  session_ended: 'Your session ended. Please log in again.',
  reuse_detected: 'Your session was ended for safety (a sign-in token was used twice). Please log in again.',
  revoked: 'Your session ended (you were logged out). Please log in again.',
  csrf_rejected: 'The page is out of date. Reload it and try again.',
};

function say(text, ok = false) {
  const m = $('message');
  m.textContent = text;
  m.className = ok ? 'ok' : '';
  m.hidden = !text;
}

function explain(body, fallback) {
  if (body?.error === 'weak_password' || body?.error === 'invalid_request') return body.detail;
  if (body?.error === 'rate_limited' && body.retry_after) return `Too many attempts. Try again in ${body.retry_after} s.`;
  return MESSAGES[body?.error] ?? fallback ?? `Something went wrong (${body?.error ?? 'network'}). Try again.`;
}

function show(view) {
  for (const id of ['signed-out', 'signed-in', 'link']) $(id).hidden = id !== view;
}

function onSessionEnd(reason) {
  show('signed-out');
  say(MESSAGES[reason] ?? MESSAGES.session_ended);
}

const options = {
  refreshUrl: '/auth/refresh',
  refreshInit: () => ({ headers: { 'x-csrf-token': csrf(), 'content-type': 'application/json' }, body: '{}' }),
  onSessionEnd,
  // The access cookie lives as long as its token: once it is gone the edge answers
  // 401 missing_token; the readable csrf_token cookie (as long-lived as the refresh
  // token) says a session may still be renewed.
  expired: async (res) => {
    if (await isExpired(res)) return true;
    if (res.status !== 401 || !csrf()) return false;
    try {
      const b = await res.clone().json();
      // The edge says {"error":"unauthorized","reason":"missing_token"}; the service {"error":"missing_token"}.
      return b.reason === 'missing_token' || b.error === 'missing_token';
    } catch { return false; }
  },
};

function api(path, { method = 'GET', json, csrfHeader = method !== 'GET' } = {}) {
  const headers = {};
  if (json !== undefined) headers['content-type'] = 'application/json';
  if (csrfHeader) headers['x-csrf-token'] = csrf();
  return fetchWithRefresh(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) }, options);
}

async function bodyOf(res) {
  try { return await res.json(); } catch { return null; }
}

async function loadProfile() {
  const res = await api('/profile');
  if (res.status !== 200) {
    show('signed-out');
    return false;
  }
  const p = await res.json();
  $('profile-email').textContent = p.user.email || '(none)';
  $('profile-id').textContent = p.user.id;
  $('profile-method').textContent = p.session.method;
  $('profile-roles').textContent = p.token.roles.join(', ');
  const ul = $('identities');
  ul.replaceChildren();
  if (p.user.identities.length === 0) {
    const li = document.createElement('li');
    li.textContent = 'None';
    ul.append(li);
  }
  for (const i of p.user.identities) {
    const li = document.createElement('li');
    li.textContent = `${i.provider}${i.email ? ` (${i.email})` : ''}`;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary';
    b.textContent = 'Unlink';
    b.setAttribute('aria-label', `Unlink ${i.provider}`);
    b.addEventListener('click', async () => {
      const r = await api(`/account/identities/${encodeURIComponent(i.provider)}/${encodeURIComponent(i.subject)}`, { method: 'DELETE' });
      if (r.ok) { say(`${i.provider} unlinked.`, true); await loadProfile(); } else say(explain(await bodyOf(r)));
    });
    li.append(b);
    ul.append(li);
  }
  show('signed-in');
  return true;
}

async function loadProviders() {
  const res = await fetch('/auth/providers');
  if (!res.ok) return;
  const { providers } = await res.json();
  const box = $('providers');
  for (const p of providers) {
    const a = document.createElement('a');
    a.href = p.start;
    a.className = `provider ${p.preset}`;
    a.textContent = p.label;
    box.append(a);
  }
}

$('login-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target;
  const r = await fetch('/auth/login', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: f.email.value, password: f.password.value, cookies: true }),
  });
  if (r.ok) { f.reset(); say(''); await loadProfile(); } else { say(explain(await bodyOf(r))); f.password.focus(); }
});

$('register-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = e.target;
  const r = await fetch('/auth/register', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email: f.email.value, password: f.password.value }),
  });
  if (r.status === 201) {
    $('login-email').value = f.email.value;
    f.reset();
    say('Account created. Log in with your new password.', true);
    $('login-password').focus();
  } else say(explain(await bodyOf(r)));
});

$('link-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const r = await fetch('/auth/link', {
    method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf() },
    body: JSON.stringify({ password: e.target.password.value }),
  });
  if (r.ok) { history.replaceState(null, '', '/'); say('Linked.', true); await loadProfile(); } else say(explain(await bodyOf(r)));
});

$('link-new').addEventListener('click', async () => {
  const r = await fetch('/auth/link/new', { method: 'POST', headers: { 'x-csrf-token': csrf() } });
  if (r.ok) { history.replaceState(null, '', '/'); say(''); await loadProfile(); } else say(explain(await bodyOf(r)));
});

$('reload').addEventListener('click', () => loadProfile());

$('logout').addEventListener('click', async () => {
  const r = await api('/auth/logout', { method: 'POST' });
  if (r.ok || r.status === 401) { show('signed-out'); say('You are logged out.', true); } else say(explain(await bodyOf(r)));
});

$('logout-all').addEventListener('click', async () => {
  const r = await api('/auth/logout-all', { method: 'POST' });
  if (r.ok) { show('signed-out'); say('You are logged out on every device.', true); } else say(explain(await bodyOf(r)));
});

async function main() {
  await loadProviders();
  const q = new URLSearchParams(location.search);
  if (q.get('error')) {
    say(explain({ error: q.get('error') }));
    history.replaceState(null, '', '/');
  }
  if (q.get('link')) {
    const r = await fetch('/auth/link');
    if (r.ok) {
      const l = await r.json();
      $('link-text').textContent = `An account with ${l.email} already exists. Enter its password to link your ${l.provider} sign-in to it, or create a separate account.`;
      show('link');
      $('link-password').focus();
      document.body.dataset.ready = 'true';
      return;
    }
    say(explain(await bodyOf(r)));
  }
  await loadProfile();
  document.body.dataset.ready = 'true';
}

main();
