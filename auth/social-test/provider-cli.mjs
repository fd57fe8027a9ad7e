// Starts one local provider for the demo: node provider-cli.mjs SHAPE CLIENT_ID SECRET REDIRECT_URI [ACCOUNT EMAIL]
// Prints its issuer URL on stdout, then serves until killed.
import { startProvider } from './lib/provider.mjs';

const [shape, clientId, clientSecret, redirect, account, email] = process.argv.slice(2);
const p = await startProvider({ shape, clientId, clientSecret, redirectUris: [redirect] });
if (account) p.accounts.set(account, { email, email_verified: true });
console.log(p.issuer);
