#!/usr/bin/env node
// agentgate interop: the tutorial's Node.js MCP server ("Enable third-party AI agents to
// access your MCP server", Logto + mcp-auth), with an outside issuer in Logto's place.
// It is the server agentgate replaces, kept here so the agent can be tried against it.
//
//   MCP_AUTH_ISSUER=http://127.0.0.1:PORT node tutorial/whoami.mjs
//
// Prints exactly one line on stdout once it listens: `MCP=http://127.0.0.1:PORT/mcp`.
//
// MCP_AUTH_MODE picks how tokens are checked:
//   tutorial (default)  the tutorial's code: mcp-auth in its `server` mode (the MCP server
//                       republishes the issuer's metadata at its own
//                       /.well-known/oauth-authorization-server, no protected resource
//                       metadata) and the tutorial's verifyToken, which asks the issuer's
//                       userinfo endpoint. That is the MCP authorization spec of 2025-03-26.
//   resource            mcp-auth's `resource server` mode, which its documentation
//                       recommends for current MCP clients: protected resource metadata
//                       (RFC 9728) naming the issuer, and the token checked as a JWT
//                       whose audience is this server (RFC 8707) with the `whoami` scope.
//
// Changes from the tutorial's text, each forced by today's packages:
//   - Streamable HTTP at /mcp (one McpServer per session), beside the tutorial's SSE
//     endpoints (/sse, /messages): the SDK deprecates SSE, and current clients speak the
//     Streamable HTTP transport.
//   - registerTool instead of the deprecated tool(); express.json() so that Streamable HTTP
//     gets a parsed body.
//   - The issuer, host and port come from the environment; 127.0.0.1 only.

import { randomUUID } from 'node:crypto';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import express from 'express';
import { MCPAuth, MCPAuthTokenVerificationError, fetchServerConfig } from 'mcp-auth';

const authIssuer = process.env.MCP_AUTH_ISSUER;
const mode = process.env.MCP_AUTH_MODE ?? 'tutorial';
if (!authIssuer) {
  console.error('whoami: MCP_AUTH_ISSUER is required (the issuer URL)');
  process.exit(2);
}
if (!['tutorial', 'resource'].includes(mode)) {
  console.error(`whoami: MCP_AUTH_MODE must be tutorial or resource, not ${JSON.stringify(mode)}`);
  process.exit(2);
}

const app = express();
app.use(express.json());
const http = await new Promise((resolve) => {
  const listening = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => resolve(listening));
});
const resource = `http://127.0.0.1:${http.address().port}/mcp`;
const serverConfig = await fetchServerConfig(authIssuer, { type: 'oidc' });

// --- the tutorial's authentication ----------------------------------------------------
let mcpAuth;
if (mode === 'tutorial') {
  mcpAuth = new MCPAuth({ server: serverConfig });

  // The tutorial's verifyToken: the issuer's userinfo answer becomes the claims.
  const verifyToken = async (token) => {
    const { userinfoEndpoint, issuer } = mcpAuth.config.server.metadata;
    const response = await fetch(userinfoEndpoint, { headers: { Authorization: `Bearer ${token}` } });
    if (!response.ok) throw new MCPAuthTokenVerificationError('token_verification_failed', response);
    const userInfo = await response.json();
    return { token, issuer, subject: userInfo.sub, clientId: '', scopes: [], claims: userInfo };
  };
  app.use(mcpAuth.delegatedRouter());
  app.use(mcpAuth.bearerAuth(verifyToken));
} else {
  mcpAuth = new MCPAuth({
    protectedResources: [
      { metadata: { resource, authorizationServers: [serverConfig], scopesSupported: ['whoami'] } },
    ],
  });
  app.use(mcpAuth.protectedResourceMetadataRouter());
  app.use(mcpAuth.bearerAuth('jwt', { resource, audience: resource, requiredScopes: ['whoami'] }));
}

// --- the tutorial's tool ----------------------------------------------------------------
const createServer = () => {
  const server = new McpServer({ name: 'WhoAmI', version: '0.0.0' });
  server.registerTool('whoami', { description: "The current user's claims." }, ({ authInfo }) => ({
    content: [{ type: 'text', text: JSON.stringify(authInfo?.claims ?? { error: 'Not authenticated' }) }],
  }));
  return server;
};

// --- Streamable HTTP at /mcp ------------------------------------------------------------
const sessions = {};
app.post('/mcp', async (req, res) => {
  const id = req.headers['mcp-session-id'];
  let transport = id ? sessions[id] : undefined;
  if (!transport) {
    if (id || !isInitializeRequest(req.body)) {
      res.status(id ? 404 : 400).json({
        jsonrpc: '2.0',
        error: { code: -32000, message: id ? 'Session not found' : 'Bad Request: No valid session ID provided' },
        id: null,
      });
      return;
    }
    transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sessionId) => {
        sessions[sessionId] = transport;
      },
    });
    transport.onclose = () => {
      if (transport.sessionId) delete sessions[transport.sessionId];
    };
    await createServer().connect(transport);
  }
  await transport.handleRequest(req, res, req.body);
});
const inSession = async (req, res) => {
  const transport = sessions[req.headers['mcp-session-id']];
  if (!transport) {
    res.status(404).json({ jsonrpc: '2.0', error: { code: -32000, message: 'Session not found' }, id: null });
    return;
  }
  await transport.handleRequest(req, res);
};
app.get('/mcp', inSession);
app.delete('/mcp', inSession);

// --- the tutorial's SSE transport ---------------------------------------------------------
const sseTransports = {};
app.get('/sse', async (_req, res) => {
  const transport = new SSEServerTransport('/messages', res);
  sseTransports[transport.sessionId] = transport;
  res.on('close', () => delete sseTransports[transport.sessionId]);
  await createServer().connect(transport);
});
app.post('/messages', async (req, res) => {
  const transport = sseTransports[String(req.query.sessionId)];
  if (transport) await transport.handlePostMessage(req, res, req.body);
  else res.status(400).send('No transport found for sessionId');
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    http.closeAllConnections?.();
    http.close(() => process.exit(0));
  });
}
process.stdout.write(`MCP=${resource}\n`);
