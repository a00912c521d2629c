// agentgate interop: an "outside" OpenID Connect issuer built on node oidc-provider.
//
// Started by the Rust integration tests as a child process. It listens on
// 127.0.0.1 (IDP_PORT, default 0 = ephemeral), then prints exactly one line to
// stdout:
//
//     ISSUER=http://127.0.0.1:<port>
//
// Everything else (oidc-provider notices included) goes to stderr.
//
// Environment:
//   IDP_PORT                 port to listen on (default 0: the OS picks one)
//   IDP_RESOURCES            comma-separated extra resource indicators (any
//                            http://127.0.0.1:<port>... URL is accepted anyway)
//   IDP_JWT_ALG              ES256 (default) or RS256: JWT access token signature
//   IDP_ACCESS_TOKEN_FORMAT  jwt (default) or opaque: format of resource tokens
//   IDP_OPAQUE_RESOURCES     comma-separated resources whose tokens are opaque
//                            even when the default format is jwt
//   IDP_ACCESS_TOKEN_TTL     access token lifetime in seconds (default 600)
//   IDP_EXIT_ON_STDIN_CLOSE  1: exit when stdin reaches EOF (lets a parent that
//                            keeps a pipe open make sure we never outlive it)
//   IDP_LOG                  1: log every request (method, path, status) to stderr
//
// oidc-provider refuses to introspect structured (JWT) access tokens, so tests
// that exercise RFC 7662 introspection ask for opaque resource tokens through
// IDP_ACCESS_TOKEN_FORMAT=opaque or IDP_OPAQUE_RESOURCES.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

// Keep stdout for the single ISSUER= line. oidc-provider writes its notices
// with console.info, so point the stdout-bound console methods at stderr
// before the library is loaded (hence the dynamic import below).
const toStderr = (...args) => console.error(...args);
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;

const { default: Provider, errors } = await import('oidc-provider');

const HOST = '127.0.0.1';

function envList(name) {
  return (process.env[name] || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`provider: ${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const PORT = envInt('IDP_PORT', 0);
const ACCESS_TOKEN_TTL = envInt('IDP_ACCESS_TOKEN_TTL', 600) || 600;
const EXTRA_RESOURCES = new Set(envList('IDP_RESOURCES'));
const OPAQUE_RESOURCES = new Set(envList('IDP_OPAQUE_RESOURCES'));

const JWT_ALG = (process.env.IDP_JWT_ALG || 'ES256').toUpperCase();
if (!['ES256', 'RS256'].includes(JWT_ALG)) {
  console.error(`provider: IDP_JWT_ALG must be ES256 or RS256, got ${JSON.stringify(process.env.IDP_JWT_ALG)}`);
  process.exit(2);
}

const DEFAULT_FORMAT = (process.env.IDP_ACCESS_TOKEN_FORMAT || 'jwt').toLowerCase();
if (!['jwt', 'opaque'].includes(DEFAULT_FORMAT)) {
  console.error(`provider: IDP_ACCESS_TOKEN_FORMAT must be jwt or opaque, got ${JSON.stringify(process.env.IDP_ACCESS_TOKEN_FORMAT)}`);
  process.exit(2);
}

// Scopes a resource server hands out; the token carries the requested subset.
const RESOURCE_SCOPE = 'whoami tools:admin';

const ACCOUNTS = new Map([
  ['alice', {
    sub: 'alice',
    username: 'alice',
    name: 'Alice Liddell',
    email: 'alice@example.com',
    email_verified: true,
  }],
  ['bob', {
    sub: 'bob',
    username: 'bob',
    name: 'Bob Builder',
    email: 'bob@example.com',
  }],
]);

// Fresh signing keys on every start: an EC P-256 key (ES256) and an RSA 2048
// key (RS256; also what ID tokens use by default). Kids carry a random suffix
// so that a restarted issuer never reuses a kid for a different key.
function makeJwks() {
  const suffix = randomBytes(4).toString('hex');
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...ec, kid: `agentgate-test-es256-${suffix}`, alg: 'ES256', use: 'sig' },
      { ...rsa, kid: `agentgate-test-rs256-${suffix}`, alg: 'RS256', use: 'sig' },
    ],
  };
}

function isResourceServer(indicator) {
  return EXTRA_RESOURCES.has(indicator) || indicator.startsWith('http://127.0.0.1:');
}

function tokenFormatFor(indicator) {
  return OPAQUE_RESOURCES.has(indicator) ? 'opaque' : DEFAULT_FORMAT;
}

// Introspection: a client may always look at its own tokens; the dedicated
// introspector client may look at anyone's.
const INTROSPECTOR = 'agentgate-test-introspector';

function mayInspect(client, token) {
  return token.clientId === client.clientId || client.clientId === INTROSPECTOR;
}

function escapeHtml(value) {
  return String(value)
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

function buildConfiguration() {
  return {
    clients: [
      {
        client_id: 'agentgate-test-spa',
        client_name: 'agentgate test SPA (public, PKCE)',
        application_type: 'web',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1:6274/oauth/callback'],
      },
      {
        // The tutorial's third-party agent, registered by hand as in the tutorial:
        // a native app, so any loopback port is accepted (RFC 8252 section 7.3).
        client_id: 'smartmail-ai',
        client_name: 'SmartMail AI',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: ['http://127.0.0.1/callback'],
      },
      {
        client_id: 'agentgate-test-m2m',
        client_secret: 'agentgate-test-m2m-secret',
        client_name: 'agentgate test machine client',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        scope: RESOURCE_SCOPE,
      },
      {
        // agentgate's issuer, signing people in here (its [[provider]] "outside"
        // or "other"): a confidential web app whose callback is on loopback,
        // any port (native rules, RFC 8252 section 7.3).
        client_id: 'agentgate-upstream',
        client_secret: 'agentgate-upstream-secret',
        client_name: 'agentgate (upstream sign-in)',
        application_type: 'native',
        token_endpoint_auth_method: 'client_secret_basic',
        // refresh_token: for a [[provider]] with keep_refresh_token.
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: [
          'http://127.0.0.1/sign-in/outside/callback',
          'http://127.0.0.1/sign-in/other/callback',
          'http://127.0.0.1/sign-in/provider/callback',
        ],
      },
      {
        client_id: INTROSPECTOR,
        client_secret: 'agentgate-test-introspector-secret',
        client_name: 'agentgate test introspection client',
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: [],
        response_types: [],
        redirect_uris: [],
      },
    ],
    jwks: makeJwks(),
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'profile', 'email', 'offline_access', 'whoami', 'tools:admin'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'username'],
      email: ['email', 'email_verified'],
    },

    async findAccount(_ctx, id) {
      const account = ACCOUNTS.get(id);
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { ...account };
        },
      };
    },

    // Profile claims in access tokens of user grants (JWT payload, or the
    // introspection response of an opaque token). Machine tokens get nothing.
    async extraTokenClaims(_ctx, token) {
      const account = token.accountId ? ACCOUNTS.get(token.accountId) : undefined;
      if (!account) return undefined;
      const { username, name, email } = account;
      return { username, name, email };
    },

    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => mayInspect(client, token),
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => mayInspect(client, token),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        getResourceServerInfo: async (_ctx, indicator) => {
          if (!isResourceServer(indicator)) {
            throw new errors.InvalidTarget(`unknown resource indicator ${indicator}`);
          }
          const format = tokenFormatFor(indicator);
          return {
            scope: RESOURCE_SCOPE,
            audience: indicator,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: format,
            ...(format === 'jwt' ? { jwt: { sign: { alg: JWT_ALG } } } : {}),
          };
        },
      },
    },

    // Local test issuer: no browser origin restrictions.
    clientBasedCORS: () => true,

    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = '<!DOCTYPE html><html><head><title>error</title></head><body>'
        + Object.entries(out).map(([k, v]) => `<pre>${escapeHtml(k)}: ${escapeHtml(v)}</pre>`).join('')
        + '</body></html>';
    },

    ttl: {
      AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_TTL,
      ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 86400,
    },
  };
}

const server = http.createServer();

server.on('error', (err) => {
  console.error(`provider: http server error: ${err.stack || err}`);
  process.exit(1);
});

await new Promise((resolve) => server.listen(PORT, HOST, resolve));

const { port } = server.address();
const issuer = `http://${HOST}:${port}`;

const configuration = buildConfiguration();
const provider = new Provider(issuer, configuration);

provider.on('server_error', (_ctx, err) => console.error('provider: server_error', err));

const handle = provider.callback();
if (process.env.IDP_LOG === '1') {
  server.on('request', (req, res) => {
    res.on('finish', () => console.error(`provider: ${req.method} ${req.url} -> ${res.statusCode}`));
    handle(req, res);
  });
} else {
  server.on('request', handle);
}

let closing = false;
function shutdown(reason) {
  if (closing) return;
  closing = true;
  console.error(`provider: shutting down (${reason})`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

if (process.env.IDP_EXIT_ON_STDIN_CLOSE === '1') {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

console.error(
  `provider: issuer ${issuer}; jwt alg ${JWT_ALG}; default resource token format ${DEFAULT_FORMAT}; `
  + `kids ${configuration.jwks.keys.map((k) => k.kid).join(', ')}`,
);
process.stdout.write(`ISSUER=${issuer}\n`);
