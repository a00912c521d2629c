// agentgate interop: preloaded into the conformance suite (`node --import
// ./conformance/with-token.mjs …/conformance/dist/index.js server --url URL`) so
// that its server scenarios, whose client sends no credentials, can run against a
// guarded MCP server. Every request to CONFORMANCE_BEARER_ORIGIN gets
// `Authorization: Bearer $CONFORMANCE_BEARER`, as an agent that holds a token sends
// it; nothing else in the suite is touched.
const token = process.env.CONFORMANCE_BEARER;
const origin = process.env.CONFORMANCE_BEARER_ORIGIN;
if (!token || !origin) {
  console.error('with-token: set CONFORMANCE_BEARER and CONFORMANCE_BEARER_ORIGIN');
  process.exit(2);
}
const plainFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  const url = typeof input === 'string' || input instanceof URL ? String(input) : input.url;
  if (!url.startsWith(origin)) return plainFetch(input, init);
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  headers.set('authorization', `Bearer ${token}`);
  return plainFetch(input, { ...init, headers });
};
