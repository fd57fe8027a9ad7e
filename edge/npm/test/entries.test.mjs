// The browser/bundler entry (dist/web.js) in Node: it fetches the .wasm relative to
// import.meta.url and instantiates it with top-level await. Node's fetch has no file:
// URLs, so a child process gets a fetch that serves them (as a browser or a bundler's
// dev server would serve the asset, with the wasm MIME type), then imports the entry.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { NOW, PKG_DIR, keyPair, sign } from './helpers.mjs';

it('dist/web.js initialises through fetch + top-level await and verifies', async () => {
  const key = await keyPair('ES256', 'k1');
  const token = await sign(key, { sub: 'web', exp: NOW + 60 });
  const web = pathToFileURL(`${PKG_DIR}/dist/web.js`).href;
  const script = `
    import { readFile } from 'node:fs/promises';
    const realFetch = globalThis.fetch;
    const fetched = [];
    globalThis.fetch = async (input, init) => {
      const url = input instanceof Request ? input.url : String(input);
      if (!url.startsWith('file:')) return realFetch(input, init);
      fetched.push(url.split('/').slice(-2).join('/'));
      return new Response(await readFile(new URL(url)), { headers: { 'content-type': 'application/wasm' } });
    };
    const { Verifier } = await import(${JSON.stringify(web)});
    const v = new Verifier({ jwks: ${JSON.stringify({ keys: [key.jwk] })} });
    const a = await v.verify(${JSON.stringify(token)}, { now: ${NOW} });
    const b = v.verifySync(${JSON.stringify(token)}, { now: ${NOW} });
    console.log(JSON.stringify({ a: a.sub, b: b.sub, fetched }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), { a: 'web', b: 'web', fetched: ['wasm/tollgate_wasm_bg.wasm'] });
});
