// The demo's last step: "Sign in with Kakao" through the edge, as a browser would —
// GET /auth/kakao/start, the local provider's login and consent (its dev interactions,
// over HTTP), the callback, then /profile with the session cookies.
//   node demo-login.mjs EDGE_URL ACCOUNT
// Prints one line: the statuses and the profile (exit 1 unless the profile answered 200).
import { Jar, step, authorize } from './lib/provider.mjs';

const [edge, account] = process.argv.slice(2);
const jar = new Jar();
const t0 = performance.now();
const start = await step(jar, `${edge}/auth/kakao/start`);
const callbackUrl = await authorize(jar, start.location, account);
const t1 = performance.now();
const cb = await step(jar, callbackUrl);
const t2 = performance.now();
const profile = await fetch(`${edge}/profile`, { headers: { cookie: jar.header(`${edge}/profile`) } });
const body = await profile.json();
const where = cb.location ? new URL(cb.location).pathname : '-';
console.log(`start ${start.res.status}, callback ${cb.res.status} → ${where} (${Math.round(t2 - t1)} ms; whole sign-in ${Math.round(t2 - t0)} ms), `
  + `profile through the edge ${profile.status}: ${body.user?.email} via ${body.session?.method} (sub ${body.user?.identities?.[0]?.subject})`);
process.exit(profile.status === 200 && cb.res.status === 303 ? 0 : 1);
