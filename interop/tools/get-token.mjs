#!/usr/bin/env node
// agentgate interop: obtain tokens from the test issuer (idp/provider.mjs)
// without a browser, by making the HTTP calls a person's browser would make.
//
//   node tools/get-token.mjs --issuer URL --kind user|client
//        [--user alice] [--resource URL] [--scope "openid profile email whoami"]
//        [--client-id ID] [--client-secret SECRET] [--password PW] [--redirect-uri URI]
//
// kind user:   authorization code + PKCE (S256) with the public client
//              agentgate-test-spa: GET /auth, post the devInteractions login
//              form and consent form (keeping cookies), read the code from the
//              redirect to the client's redirect_uri, exchange it at /token.
//              The forms are recognised by their fields, so agentgate's own
//              sign-in (password) and consent (decision=allow) pages work too
//              (with --client-id, --password and --redirect-uri).
// kind client: client_credentials with agentgate-test-m2m (HTTP Basic).
//
// Success: the token endpoint's JSON response, on one line on stdout.
// Failure: a message on stderr, exit code 1.

import { createHash, randomBytes } from 'node:crypto';
import { CookieJar, attributes, parseArgs as parseOptions, textOf } from './common.mjs';

const REDIRECT_URI = 'http://127.0.0.1:6274/oauth/callback';
const SPA_CLIENT = 'agentgate-test-spa';
const M2M_CLIENT = 'agentgate-test-m2m';
const M2M_SECRET = 'agentgate-test-m2m-secret';
const MAX_STEPS = 25;

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

function parseArgs(argv) {
  return parseOptions(argv, [
    'issuer', 'kind', 'user', 'resource', 'scope', 'client-id', 'client-secret', 'password',
    'redirect-uri',
  ], fail);
}

const b64url = (buf) => Buffer.from(buf).toString('base64url');

// ---------------------------------------------------------------- cookie jar



// ---------------------------------------------------------------- HTTP helpers

async function request(jar, url, init = {}) {
  const headers = new Headers(init.headers);
  const cookie = jar.header(url);
  if (cookie) headers.set('cookie', cookie);
  let response;
  try {
    response = await fetch(url, { ...init, headers, redirect: 'manual' });
  } catch (err) {
    fail(`${init.method || 'GET'} ${url}: ${err.cause?.message || err.message}`);
  }
  jar.store(response, url);
  return response;
}




// The first POST form of the page: its action, its pre-filled fields and the
// values of its named submit buttons (name -> [values]).
function parseForm(html, pageUrl) {
  const forms = html.match(/<form\b[^>]*>[\s\S]*?<\/form>/gi) || [];
  for (const form of forms) {
    const open = attributes(form.match(/<form\b[^>]*>/i)[0]);
    if ((open.method || 'get').toLowerCase() !== 'post') continue;
    const fields = {};
    for (const input of form.match(/<input\b[^>]*>/gi) || []) {
      const a = attributes(input);
      if (!a.name) continue;
      fields[a.name] = a.value ?? '';
    }
    const buttons = {};
    for (const button of form.match(/<button\b[^>]*>/gi) || []) {
      const a = attributes(button);
      if (a.name) (buttons[a.name] ||= []).push(a.value ?? '');
    }
    return { action: new URL(open.action || pageUrl, pageUrl).href, fields, buttons };
  }
  return undefined;
}

async function readJson(response, what) {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    fail(`${what}: HTTP ${response.status}, not JSON: ${textOf(text).slice(0, 600)}`);
  }
  if (!response.ok) {
    fail(`${what}: HTTP ${response.status}: ${JSON.stringify(body)}`);
  }
  return body;
}

async function discover(issuer) {
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let response;
  try {
    response = await fetch(url);
  } catch (err) {
    fail(`discovery ${url}: ${err.cause?.message || err.message}`);
  }
  const meta = await readJson(response, `discovery ${url}`);
  if (!meta.authorization_endpoint || !meta.token_endpoint) {
    fail(`discovery ${url}: no authorization_endpoint/token_endpoint`);
  }
  return meta;
}

// ---------------------------------------------------------------- flows

async function userFlow(opts, meta) {
  const user = opts.user || 'alice';
  const scope = opts.scope || (opts.resource ? 'openid profile email whoami' : 'openid profile email');
  const clientId = opts['client-id'] || SPA_CLIENT;
  const redirectUri = opts['redirect-uri'] || REDIRECT_URI;
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const state = b64url(randomBytes(16));

  const auth = new URL(meta.authorization_endpoint);
  auth.searchParams.set('client_id', clientId);
  auth.searchParams.set('response_type', 'code');
  auth.searchParams.set('redirect_uri', redirectUri);
  auth.searchParams.set('scope', scope);
  auth.searchParams.set('state', state);
  auth.searchParams.set('code_challenge', challenge);
  auth.searchParams.set('code_challenge_method', 'S256');
  auth.searchParams.set('prompt', 'consent');
  if (opts.resource) auth.searchParams.set('resource', opts.resource);

  const jar = new CookieJar();
  let url = auth.href;
  let response = await request(jar, url);
  let callback;
  let logins = 0;

  for (let step = 0; step < MAX_STEPS && !callback; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      if (!location) fail(`HTTP ${response.status} from ${url} without Location`);
      await response.body?.cancel();
      const next = new URL(location, url).href;
      if (next.startsWith(redirectUri)) {
        callback = new URL(next);
        break;
      }
      url = next;
      response = await request(jar, url);
      continue;
    }

    const html = await response.text();
    if (response.status !== 200) {
      // oidc-provider's devInteractions accept any login name; an account its
      // findAccount does not know only fails later, with a server_error.
      const hint = logins > 0 ? ` (after logging in as ${JSON.stringify(user)}: unknown account?)` : '';
      fail(`HTTP ${response.status} from ${url}${hint}: ${textOf(html).slice(0, 600)}`);
    }
    const form = parseForm(html, url);
    if (!form) fail(`no form on ${url}: ${textOf(html).slice(0, 600)}`);

    const fields = { ...form.fields };
    // oidc-provider's devInteractions say which form it is in a `prompt` field;
    // agentgate's sign-in form has a password field, its consent form
    // decision=allow|deny buttons.
    if (fields.prompt === 'login' || (fields.prompt === undefined && 'password' in fields)) {
      logins += 1;
      if (logins > 1) fail(`login as ${JSON.stringify(user)} was not accepted (unknown account?)`);
      fields.login = user;
      fields.password = opts.password || 'any-password';
    } else if (fields.prompt === undefined && form.buttons.decision?.includes('allow')) {
      fields.decision = 'allow';
    } else if (fields.prompt !== 'consent') {
      fail(`unexpected form on ${url} (prompt=${JSON.stringify(fields.prompt)})`);
    }

    url = form.action;
    response = await request(jar, url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields).toString(),
    });
  }

  if (!callback) fail(`no redirect to ${redirectUri} after ${MAX_STEPS} steps (last: ${url})`);

  const p = callback.searchParams;
  if (p.get('error')) {
    fail(`authorization error: ${p.get('error')}: ${p.get('error_description') || ''}`);
  }
  if (p.get('state') !== state) fail(`state mismatch in ${callback.href}`);
  if (p.get('iss') !== meta.issuer) {
    fail(`iss mismatch in redirect: got ${JSON.stringify(p.get('iss'))}, want ${JSON.stringify(meta.issuer)}`);
  }
  const code = p.get('code');
  if (!code) fail(`no code in ${callback.href}`);

  const form = new URLSearchParams({
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
    client_id: clientId,
  });
  if (opts.resource) form.set('resource', opts.resource);

  const tokenResponse = await request(jar, meta.token_endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: form.toString(),
  });
  return readJson(tokenResponse, 'token endpoint');
}

async function clientFlow(opts, meta) {
  if (!opts.resource) fail('--kind client needs --resource');
  const clientId = opts['client-id'] || M2M_CLIENT;
  const secret = opts['client-secret'] ?? M2M_SECRET;
  // RFC 6749 section 2.3.1: form-encode id and secret before Basic encoding.
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  const basic = Buffer.from(`${enc(clientId)}:${enc(secret)}`).toString('base64');

  const form = new URLSearchParams({
    grant_type: 'client_credentials',
    resource: opts.resource,
    scope: opts.scope || 'whoami',
  });

  let response;
  try {
    response = await fetch(meta.token_endpoint, {
      method: 'POST',
      headers: {
        authorization: `Basic ${basic}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: form.toString(),
      redirect: 'manual',
    });
  } catch (err) {
    fail(`POST ${meta.token_endpoint}: ${err.cause?.message || err.message}`);
  }
  return readJson(response, 'token endpoint');
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (!opts.issuer) fail('--issuer is required');
  if (!['user', 'client'].includes(opts.kind)) fail('--kind must be user or client');

  const meta = await discover(opts.issuer);
  const tokens = opts.kind === 'user' ? await userFlow(opts, meta) : await clientFlow(opts, meta);
  process.stdout.write(`${JSON.stringify(tokens)}\n`);
}

main().then(
  () => { process.exitCode = 0; },
  (err) => {
    const message = err instanceof Failure ? err.message : (err.stack || String(err));
    process.stderr.write(`get-token: ${message}\n`);
    process.exitCode = 1;
  },
);
