#!/usr/bin/env node
// agentgate interop: an outside OAuth MCP agent built on the official
// TypeScript SDK (Client + StreamableHTTPClientTransport + an
// OAuthClientProvider), acting as a public client: PRE-REGISTERED when
// --client-id is given, else registered by the SDK itself through dynamic
// client registration (RFC 7591, application_type "native").
// A headless user agent (fetch, a cookie jar, redirects followed by hand)
// plays the person: it fills in agentgate's real sign-in and consent pages.
//
//   node tools/ts-agent.mjs --url http://127.0.0.1:PORT/mcp [--client-id ID]
//        --password PW [--username alice] [--scope "openid profile email mcp:tools"|sdk]
//        [--redirect-uri http://127.0.0.1:PORT/callback] [--decision allow|deny]
//        [--language en] [--tool whoami] [--timeout-ms 60000]
//
// Flow: connect → 401 (WWW-Authenticate resource_metadata) → the SDK reads the
// protected resource metadata and the authorization server metadata, then
// calls redirectToAuthorization(url) → the user agent GETs that URL, posts
// the sign-in form (--username/--password), posts the consent form
// (--decision), and reads the code from the Location that points at the
// redirect URI (nothing listens there) → transport.finishAuth(code) (token
// request) → a new transport connects with the token → tools/call --tool.
//
// Scope: SDK 1.32.2 requests the WWW-Authenticate challenge's scope (else the
// metadata's scopes_supported, else clientMetadata.scope), i.e. "mcp:tools"
// here. The user agent replaces the authorization URL's scope with --scope
// (default "openid profile email mcp:tools"); --scope sdk keeps the SDK's own.
// Both are reported ("sdkScope", "requestedScope").
//
// Always prints exactly one JSON line on stdout and exits 0 (exit 2 only for
// bad command-line usage):
//   {"ok":true,"result":{...},"tools":[...],"tokenScope":"...","token":{...},"consent":"allow"|null,
//    "authorization":{...},"callback":{...},"pages":[...],"exchanges":[...]}
//   {"ok":false,"stage":"...","error":"...","consent":...,"callback":{...}|null,"pages":[...],"exchanges":[...]}
// "consent" is the button pressed on the consent page, null when none was
// shown (consent already stored, or a first-party app).
// "exchanges": every HTTP request the SDK made, as {method, path, status, bearer}.
// "registered": the client_id the SDK got from dynamic registration, or null.
// "pages": every HTML page the user agent was shown, as {page, status, path, lang,
// title, h1, buttons} with page one of sign-in, consent, message.
// --decision deny ends with ok:false, stage "authorization", error "access_denied".

import { createHash, randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { CookieJar, attributes, describe, parseArgs as parseOptions, textOf } from './common.mjs';

const MAX_STEPS = 20;
const DEFAULT_SCOPE = 'openid profile email mcp:tools';

function usage(message) {
  process.stderr.write(`ts-agent: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  return parseOptions(argv, [
    'url', 'client-id', 'username', 'password', 'scope', 'redirect-uri', 'decision',
    'language', 'tool', 'timeout-ms',
  ], usage);
}

const opts = parseArgs(process.argv.slice(2));
if (!opts.url) usage('--url is required');
let url;
try {
  url = new URL(opts.url);
} catch {
  usage(`--url is not a URL: ${JSON.stringify(opts.url)}`);
}
// Undefined: the SDK registers the agent itself (saveClientInformation).
let clientInformation = opts['client-id'] ? { client_id: opts['client-id'] } : undefined;
let registered = null;
const username = opts.username || 'alice';
const password = opts.password ?? process.env.AGENTGATE_DEMO_PASSWORD;
if (password === undefined) usage('--password is required (or AGENTGATE_DEMO_PASSWORD)');
const scopeOption = opts.scope || DEFAULT_SCOPE;
const decision = opts.decision || 'allow';
if (!['allow', 'deny'].includes(decision)) usage('--decision must be allow or deny');
const language = opts.language || 'en';
const toolName = opts.tool || 'whoami';
const timeoutMs = Number(opts['timeout-ms'] || 60000);
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms must be a positive number');
// A loopback redirect may use any port (RFC 8252 section 7.3); nothing listens on it.
const redirectUri = opts['redirect-uri']
  || `http://127.0.0.1:${49152 + Math.floor(Math.random() * 16000)}/callback`;
try {
  new URL(redirectUri);
} catch {
  usage(`--redirect-uri is not a URL: ${JSON.stringify(redirectUri)}`);
}

// ------------------------------------------------------------------ output

let finished = false;
function finish(payload) {
  if (finished) return;
  finished = true;
  // Exit explicitly: keep-alive sockets or a standalone SSE stream must not
  // keep the process alive once the answer is out.
  process.stdout.write(`${JSON.stringify(payload)}\n`, () => process.exit(0));
}

class Failure extends Error {
  constructor(stage, message, extra = {}) {
    super(message);
    this.stage = stage;
    this.extra = extra;
  }
}


// ------------------------------------------------------------------ the SDK's HTTP, recorded

const exchanges = [];

function headerOf(init, name) {
  const h = init?.headers;
  if (!h) return null;
  if (h instanceof Headers) return h.get(name);
  if (Array.isArray(h)) return h.find(([k]) => k.toLowerCase() === name)?.[1] ?? null;
  const key = Object.keys(h).find((k) => k.toLowerCase() === name);
  return key === undefined ? null : h[key];
}

async function recordingFetch(input, init) {
  const method = (init?.method || 'GET').toUpperCase();
  const target = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const entry = {
    method,
    path: target.pathname,
    status: null,
    bearer: /^bearer /i.test(headerOf(init, 'authorization') || ''),
  };
  exchanges.push(entry);
  try {
    const response = await fetch(input, init);
    entry.status = response.status;
    if (response.status === 401 || response.status === 403) {
      entry.wwwAuthenticate = response.headers.get('www-authenticate');
    }
    return response;
  } catch (err) {
    if (err?.name !== 'AbortError') entry.error = describe(err);
    throw err;
  }
}

// ------------------------------------------------------------------ the user agent





// What the person sees: which page, its language, title, heading, the form.
function readPage(html, pageUrl, status) {
  const first = (re) => {
    const m = html.match(re);
    return m ? textOf(m[1]) : null;
  };
  let form;
  for (const f of html.match(/<form\b[^>]*>[\s\S]*?<\/form>/gi) || []) {
    const open = attributes(f.match(/<form\b[^>]*>/i)[0]);
    if ((open.method || 'get').toLowerCase() !== 'post') continue;
    const fields = {};
    for (const input of f.match(/<input\b[^>]*>/gi) || []) {
      const a = attributes(input);
      if (a.name) fields[a.name] = a.value ?? '';
    }
    const buttons = [];
    for (const b of f.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/gi)) {
      const a = attributes(`<button${b[1]}>`);
      buttons.push({ name: a.name ?? null, value: a.value ?? null, text: textOf(b[2]) });
    }
    form = { action: new URL(open.action || pageUrl, pageUrl).href, fields, buttons };
    break;
  }
  let page = 'message';
  if (form && 'password' in form.fields) page = 'sign-in';
  else if (form?.buttons.some((b) => b.name === 'decision')) page = 'consent';
  return {
    summary: {
      page,
      status,
      path: new URL(pageUrl).pathname,
      lang: html.match(/<html\b[^>]*\blang="([^"]*)"/i)?.[1] ?? null,
      title: first(/<title[^>]*>([\s\S]*?)<\/title>/i),
      h1: first(/<h1[^>]*>([\s\S]*?)<\/h1>/i),
      buttons: form ? form.buttons.map((b) => b.text) : [],
      error: first(/<p class="error"[^>]*>([\s\S]*?)<\/p>/i),
    },
    form,
    text: textOf(html),
  };
}

const pages = [];
// What was pressed on the consent page; null when none was shown (a stored
// consent, or a first-party app).
let consentDecision = null;

function isRedirectUri(target) {
  const want = new URL(redirectUri);
  return target.origin === want.origin && target.pathname === want.pathname;
}

// Plays the person from the authorization URL to the redirect back; returns
// the callback URL the authorization server sent the browser to.
async function userAgent(authorizationUrl) {
  const jar = new CookieJar();
  const request = async (target, init = {}) => {
    const headers = new Headers(init.headers);
    headers.set('accept', 'text/html,application/xhtml+xml');
    headers.set('accept-language', language);
    const cookie = jar.header(target);
    if (cookie) headers.set('cookie', cookie);
    let response;
    try {
      response = await fetch(target, { ...init, headers, redirect: 'manual' });
    } catch (err) {
      throw new Failure('authorization', `${init.method || 'GET'} ${target}: ${describe(err)}`);
    }
    jar.store(response, target);
    return response;
  };

  let current = authorizationUrl;
  let response = await request(current);
  let signedIn = false;
  let decided = false;
  for (let step = 0; step < MAX_STEPS; step += 1) {
    if (response.status >= 300 && response.status < 400) {
      const location = response.headers.get('location');
      await response.body?.cancel();
      if (!location) throw new Failure('authorization', `HTTP ${response.status} from ${current} without Location`);
      const next = new URL(location, current);
      if (isRedirectUri(next)) return next;
      current = next.href;
      response = await request(current);
      continue;
    }
    const html = await response.text();
    const seen = readPage(html, current, response.status);
    pages.push(seen.summary);
    if (seen.summary.page === 'sign-in' && !signedIn) {
      signedIn = true;
      const fields = { ...seen.form.fields, login: username, password };
      current = seen.form.action;
      response = await request(current, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
      });
      continue;
    }
    if (seen.summary.page === 'consent' && !decided) {
      decided = true;
      consentDecision = decision;
      const fields = { ...seen.form.fields, decision };
      current = seen.form.action;
      response = await request(current, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields).toString(),
      });
      continue;
    }
    const why = seen.summary.error || seen.text.slice(0, 300);
    throw new Failure('authorization', `stuck on the ${seen.summary.page} page (HTTP ${response.status}) at ${current}: ${why}`);
  }
  throw new Failure('authorization', `no redirect to ${redirectUri} after ${MAX_STEPS} steps (last: ${current})`);
}

// ------------------------------------------------------------------ the OAuth client provider

// In memory, for one run. With --client-id, clientInformation() is fixed and
// the SDK never registers; without it, the SDK registers the clientMetadata
// below and hands the answer to saveClientInformation.
class AgentProvider {
  #tokens;
  #verifier;
  #discovery;
  #state = randomBytes(16).toString('base64url');
  authorization;
  callback;

  get redirectUrl() {
    return redirectUri;
  }

  get clientMetadata() {
    return {
      client_name: 'agentgate interop ts-agent',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      scope: scopeOption === 'sdk' ? DEFAULT_SCOPE : scopeOption,
    };
  }

  state() {
    return this.#state;
  }

  clientInformation() {
    return clientInformation;
  }

  saveClientInformation(information) {
    if (opts['client-id']) throw new Error('a pre-registered agent must not register');
    clientInformation = information;
    registered = information.client_id;
  }

  tokens() {
    return this.#tokens;
  }

  saveTokens(tokens) {
    this.#tokens = tokens;
  }

  saveCodeVerifier(verifier) {
    this.#verifier = verifier;
  }

  codeVerifier() {
    if (!this.#verifier) throw new Error('no code verifier saved');
    return this.#verifier;
  }

  discoveryState() {
    return this.#discovery;
  }

  saveDiscoveryState(state) {
    this.#discovery = state;
  }

  invalidateCredentials(what) {
    // The client id is configuration and stays; the rest can go.
    if (what === 'all' || what === 'tokens') this.#tokens = undefined;
    if (what === 'all' || what === 'verifier') this.#verifier = undefined;
    if (what === 'all' || what === 'discovery') this.#discovery = undefined;
  }

  async redirectToAuthorization(authorizationUrl) {
    const target = new URL(authorizationUrl.href);
    const sdkScope = target.searchParams.get('scope');
    if (scopeOption !== 'sdk') target.searchParams.set('scope', scopeOption);
    const p = target.searchParams;
    this.authorization = {
      endpoint: `${target.origin}${target.pathname}`,
      sdkScope,
      requestedScope: p.get('scope'),
      resource: p.get('resource'),
      redirectUri: p.get('redirect_uri'),
      codeChallengeMethod: p.get('code_challenge_method'),
      prompt: p.get('prompt'),
      state: p.has('state'),
    };
    const back = await userAgent(target.href);
    const q = back.searchParams;
    const issuer = this.#discovery?.authorizationServerMetadata?.issuer ?? null;
    this.callback = {
      code: q.has('code'),
      stateMatches: q.get('state') === this.#state,
      iss: q.get('iss'),
      issMatches: issuer !== null && q.get('iss') === issuer,
      error: q.get('error'),
      errorDescription: q.get('error_description'),
    };
    if (q.get('error')) {
      throw new Failure('authorization', q.get('error'), { errorDescription: q.get('error_description') });
    }
    if (!this.callback.stateMatches) throw new Failure('authorization', `state mismatch in ${back.href}`);
    if (!this.callback.issMatches) {
      throw new Failure('authorization', `iss ${JSON.stringify(q.get('iss'))} is not the issuer ${JSON.stringify(issuer)}`);
    }
    if (!q.get('code')) throw new Failure('authorization', `no code in ${back.href}`);
    this.code = q.get('code');
  }
}

// ------------------------------------------------------------------ main

function jwtClaims(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return null;
  try {
    return JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}

const provider = new AgentProvider();
const transports = [];
let closing = false;

function newClient() {
  const transport = new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: recordingFetch });
  const client = new Client({ name: 'agentgate-interop-ts-agent', version: '0.1.0' });
  client.onerror = (err) => {
    if (!closing && !(err instanceof UnauthorizedError) && !(err instanceof Failure)) {
      process.stderr.write(`ts-agent: transport: ${describe(err)}\n`);
    }
  };
  transports.push({ transport, client });
  return { transport, client };
}

async function closeAll() {
  closing = true;
  for (const { client } of transports) await client.close().catch(() => {});
}

async function main() {
  // 1. Without a token: 401, discovery, and the authorization (by the user agent).
  const first = newClient();
  let firstError;
  try {
    await first.client.connect(first.transport);
  } catch (err) {
    firstError = err;
  }
  if (!firstError) throw new Failure('connect', 'the MCP server answered without asking for a token');
  if (firstError instanceof Failure) throw firstError;
  if (!(firstError instanceof UnauthorizedError) || !provider.code) {
    throw new Failure('connect', describe(firstError));
  }

  // 2. The code for tokens.
  try {
    await first.transport.finishAuth(provider.code);
  } catch (err) {
    throw new Failure('token', describe(err));
  }
  const tokens = provider.tokens();

  // 3. Again, with the token.
  const second = newClient();
  try {
    await second.client.connect(second.transport);
  } catch (err) {
    throw new Failure('reconnect', describe(err));
  }
  const tools = [];
  let cursor;
  do {
    const page = await second.client.listTools(cursor ? { cursor } : undefined);
    for (const t of page.tools) tools.push(t.name);
    cursor = page.nextCursor;
  } while (cursor);
  let result;
  try {
    result = await second.client.callTool({ name: toolName, arguments: {} });
  } catch (err) {
    throw new Failure('call', describe(err));
  }

  const claims = jwtClaims(tokens.access_token);
  return {
    ok: true,
    result,
    tools,
    tokenScope: tokens.scope ?? null,
    token: {
      type: tokens.token_type ?? null,
      expiresIn: tokens.expires_in ?? null,
      refreshToken: Boolean(tokens.refresh_token),
      idToken: Boolean(tokens.id_token),
      aud: claims?.aud ?? null,
      clientId: claims?.client_id ?? null,
      scope: claims?.scope ?? null,
    },
    consent: consentDecision,
    authorization: provider.authorization,
    callback: provider.callback,
    sessionId: second.transport.sessionId ?? null,
    protocolVersion: second.transport.protocolVersion ?? null,
    registered,
    pages,
    exchanges,
  };
}

function failure(err) {
  const out = {
    ok: false,
    stage: err instanceof Failure ? err.stage : 'internal',
    error: err instanceof Failure ? err.message : (err?.stack || String(err)),
    ...(err instanceof Failure ? err.extra : {}),
    consent: consentDecision,
    authorization: provider.authorization ?? null,
    callback: provider.callback ?? null,
    pages,
    exchanges,
  };
  return out;
}

const timer = setTimeout(() => {
  finish({ ok: false, stage: 'timeout', error: `timeout after ${timeoutMs} ms`, pages, exchanges });
}, timeoutMs);

main().then(
  async (out) => {
    clearTimeout(timer);
    await closeAll();
    finish(out);
  },
  async (err) => {
    clearTimeout(timer);
    const out = failure(err);
    await closeAll();
    finish(out);
  },
);
