#!/usr/bin/env node
// agentgate interop: an outside MCP agent built on the official TypeScript SDK
// (Client + StreamableHTTPClientTransport). It tests bearer-token handling
// only: the token is sent as a static header, there is no OAuth provider.
//
//   node tools/ts-client.mjs --url http://127.0.0.1:PORT/mcp [--token T]
//        [--tool whoami] [--arguments JSON] [--session-token T2] [--timeout-ms 30000]
//
// Always prints exactly one JSON line on stdout and exits 0 (exit 2 only for
// bad command-line usage):
//   {"ok":true,"tools":[...],"result":{...},"sessionId":...,"protocolVersion":...,
//    "exchanges":[...], "second":{"status":N,"body":"..."}}     ("second" only with --session-token)
//   {"ok":false,"status":N|null,"error":"...","wwwAuthenticate":"..."|null,"exchanges":[...]}
//
// "exchanges" lists every HTTP request the SDK made, as {method, status}.
// With --session-token, after the first successful tools/call the same tool is
// called again on the same MCP session (same Mcp-Session-Id and
// MCP-Protocol-Version) with Authorization: Bearer T2, as a raw POST, and the
// HTTP status and body text of that answer are reported as "second".

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { describe, parseArgs as parseOptions } from './common.mjs';

function usage(message) {
  process.stderr.write(`ts-client: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  return parseOptions(argv, ['url', 'token', 'tool', 'arguments', 'session-token', 'timeout-ms'], usage);
}

const opts = parseArgs(process.argv.slice(2));
if (!opts.url) usage('--url is required');
let url;
try {
  url = new URL(opts.url);
} catch {
  usage(`--url is not a URL: ${JSON.stringify(opts.url)}`);
}
const toolName = opts.tool || 'whoami';
let toolArguments = {};
if (opts.arguments !== undefined) {
  try {
    toolArguments = JSON.parse(opts.arguments);
  } catch (err) {
    usage(`--arguments is not JSON: ${err.message}`);
  }
}
const timeoutMs = Number(opts['timeout-ms'] || 30000);
if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms must be a positive number');

// ------------------------------------------------------------------ output

let finished = false;
function finish(payload) {
  if (finished) return;
  finished = true;
  const line = `${JSON.stringify(payload)}\n`;
  // Exit explicitly: keep-alive sockets or a standalone SSE stream must not
  // keep the process alive once the answer is out.
  process.stdout.write(line, () => process.exit(0));
}

// ------------------------------------------------------------------ HTTP recording

// Every response the SDK sees passes through here. The last non-2xx response
// is what a failure is reported with; POSTs are preferred, because the SDK's
// optional standalone GET stream may be refused (e.g. 405) without harm.
const exchanges = [];
let lastBad;
let lastBadPost;

async function recordingFetch(input, init) {
  const method = (init?.method || 'GET').toUpperCase();
  let response;
  try {
    response = await fetch(input, init);
  } catch (err) {
    exchanges.push({ method, status: null, error: describe(err) });
    throw err;
  }
  exchanges.push({ method, status: response.status });
  if (response.status < 200 || response.status > 299) {
    const seen = {
      method,
      status: response.status,
      wwwAuthenticate: response.headers.get('www-authenticate'),
    };
    lastBad = seen;
    if (method === 'POST') lastBadPost = seen;
  }
  return response;
}


function failure(err) {
  const code = typeof err?.code === 'number' && err.code >= 100 && err.code <= 599 ? err.code : undefined;
  let seen = lastBadPost || lastBad;
  if (code !== undefined && seen?.status !== code) {
    // The error names a status: take the header of the response that had it.
    seen = [lastBadPost, lastBad].find((s) => s?.status === code) || { status: code, wwwAuthenticate: null };
  }
  const out = {
    ok: false,
    status: seen?.status ?? null,
    error: describe(err),
    wwwAuthenticate: seen?.wwwAuthenticate ?? null,
    exchanges,
  };
  // JSON-RPC errors carry a negative code (e.g. -32602 for an unknown tool).
  if (typeof err?.code === 'number' && err.code < 0) out.rpcCode = err.code;
  return out;
}

// ------------------------------------------------------------------ main

const headers = {};
if (opts.token !== undefined) headers.Authorization = `Bearer ${opts.token}`;

const transport = new StreamableHTTPClientTransport(url, {
  requestInit: { headers },
  fetch: recordingFetch,
});
const client = new Client({ name: 'agentgate-interop-ts-client', version: '0.1.0' });
// Background errors (e.g. the optional GET stream being refused) are only
// logged, and not at all once we are closing (the GET stream is aborted then).
let closing = false;
client.onerror = (err) => {
  if (!closing) process.stderr.write(`ts-client: transport: ${describe(err)}\n`);
};

async function closeClient() {
  closing = true;
  await client.close().catch(() => {});
}

const timer = setTimeout(() => {
  finish({
    ok: false,
    status: (lastBadPost || lastBad)?.status ?? null,
    error: `timeout after ${timeoutMs} ms`,
    wwwAuthenticate: (lastBadPost || lastBad)?.wwwAuthenticate ?? null,
    exchanges,
  });
}, timeoutMs);

async function secondCall(token) {
  const h = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
  };
  if (transport.sessionId) h['mcp-session-id'] = transport.sessionId;
  if (transport.protocolVersion) h['mcp-protocol-version'] = transport.protocolVersion;
  const body = {
    jsonrpc: '2.0',
    id: 'agentgate-interop-second-call',
    method: 'tools/call',
    params: { name: toolName, arguments: toolArguments },
  };
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: h,
      body: JSON.stringify(body),
      redirect: 'manual',
      signal: AbortSignal.timeout(Math.max(1000, timeoutMs / 2)),
    });
    const text = await response.text();
    return {
      status: response.status,
      body: text,
      wwwAuthenticate: response.headers.get('www-authenticate'),
    };
  } catch (err) {
    return { status: null, body: '', error: describe(err) };
  }
}

async function main() {
  await client.connect(transport);

  const tools = [];
  let cursor;
  do {
    const page = await client.listTools(cursor ? { cursor } : undefined);
    for (const t of page.tools) tools.push(t.name);
    cursor = page.nextCursor;
  } while (cursor);

  const result = await client.callTool({ name: toolName, arguments: toolArguments });

  const out = {
    ok: true,
    tools,
    result,
    sessionId: transport.sessionId ?? null,
    protocolVersion: transport.protocolVersion ?? null,
    exchanges,
  };
  if (opts['session-token'] !== undefined) {
    out.second = await secondCall(opts['session-token']);
  }
  return out;
}

main().then(
  async (out) => {
    clearTimeout(timer);
    await closeClient();
    finish(out);
  },
  async (err) => {
    clearTimeout(timer);
    const out = failure(err);
    await closeClient();
    finish(out);
  },
);
