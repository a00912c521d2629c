// node oidc-provider configured like `agentgate dev`, for bench/issuer.sh.
//
// The same library and version as interop/ (it is loaded from interop/node_modules),
// set up so that both issuers do the same work per request:
//   - one public client, PKCE, redirect http://127.0.0.1:7777/callback;
//   - ES256 for ID tokens and JWT access tokens (agentgate signs both with ES256;
//     oidc-provider's default RS256 ID tokens would cost it an RSA signature each);
//   - the resource RESOURCE (default: any http://127.0.0.1:<port>... URL) with the
//     scope mcp:tools, JWT access tokens (RFC 9068);
//   - devInteractions (the library's own login and consent pages; any password);
//   - the default in-memory adapter (an LRU of 1000 entries: codes must be redeemed
//     soon after they are made, which is why issuer-load mints codes in batches).
//
// Env: IDP_PORT (0: any free port). Prints one line on stdout when it serves:
//   ISSUER=http://127.0.0.1:<port>
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';

const toStderr = (...args) => console.error(...args);
console.log = toStderr;
console.info = toStderr;

const library = new URL('../../interop/node_modules/oidc-provider/lib/index.js', import.meta.url);
const { default: Provider, errors } = await import(library.href);

const HOST = '127.0.0.1';
const PORT = Number(process.env.IDP_PORT || 0);
const REDIRECT = 'http://127.0.0.1:7777/callback';
const RESOURCE = process.env.RESOURCE || '';

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
const jwks = { keys: [{ ...ec, kid: `bench-${randomBytes(4).toString('hex')}`, alg: 'ES256', use: 'sig' }] };

const ACCOUNTS = new Map([
  ['alice', { sub: 'alice', preferred_username: 'alice', name: 'Alice', email: 'alice@example.com' }],
]);

const configuration = {
  clients: [{
    client_id: 'agentgate-bench',
    client_name: 'SmartMail AI',
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT],
    id_token_signed_response_alg: 'ES256',
  }],
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks,
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'profile', 'email', 'offline_access', 'mcp:tools'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email'] },
  async findAccount(_ctx, id) {
    const account = ACCOUNTS.get(id);
    return account && { accountId: id, async claims() { return { ...account }; } };
  },
  features: {
    devInteractions: { enabled: true },
    userinfo: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, indicator) => {
        const ok = RESOURCE ? indicator === RESOURCE : indicator.startsWith('http://127.0.0.1:');
        if (!ok) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        return {
          scope: 'mcp:tools',
          audience: indicator,
          accessTokenTTL: 600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
  // agentgate's defaults (crates/issuer/src/settings.rs).
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 12 * 3600,
    Grant: 12 * 3600,
    RefreshToken: 14 * 24 * 3600,
  },
};

const server = http.createServer();
await new Promise((resolve) => server.listen(PORT, HOST, resolve));
const issuer = `http://${HOST}:${server.address().port}`;
const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, err) => console.error('provider: server_error', err));
server.on('request', provider.callback());

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
process.stdout.write(`ISSUER=${issuer}\n`);
