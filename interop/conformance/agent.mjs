#!/usr/bin/env node
// agentgate interop: the agent as the MCP conformance suite's client.
//
//   node conformance/agent.mjs SERVER_URL      (the suite appends the URL)
//
// The suite runs this once per scenario, with MCP_CONFORMANCE_SCENARIO set and,
// for some scenarios, MCP_CONFORMANCE_CONTEXT (JSON, e.g. a pre-registered
// client_id and client_secret). It runs `agentgate agent tools` and then
// `agentgate agent call` on the first tool, headless (the suite's
// authorization server approves by itself), with credentials in a fresh
// directory per run. AGENTGATE_BIN names the binary.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const server = process.argv[2];
if (!server) {
  console.error('usage: agent.mjs SERVER_URL');
  process.exit(2);
}
const bin = process.env.AGENTGATE_BIN ?? 'agentgate';
const dir = mkdtempSync(join(tmpdir(), 'agentgate-conformance-'));
const env = { ...process.env, AGENTGATE_AGENT_DIR: dir };
const context = process.env.MCP_CONFORMANCE_CONTEXT ? JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT) : {};
// The suite's stand-in metadata document URL: used where its authorization
// server advertises client_id_metadata_document_supported, else registration.
env.AGENTGATE_AGENT_CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';
if (context.client_id) env.AGENTGATE_AGENT_CLIENT_ID = context.client_id;
if (context.client_secret) env.AGENTGATE_AGENT_CLIENT_SECRET = context.client_secret;

const agent = (...args) =>
  execFileSync(bin, ['agent', ...args, '--headless', '--timeout', '20'], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

let status = 0;
try {
  const tools = JSON.parse(agent('tools', server, '--output', 'json'));
  if (tools.length > 0) {
    process.stdout.write(agent('call', server, tools[0].name, '--output', 'json'));
  }
} catch (error) {
  console.error(`agent.mjs: ${error.message}`);
  status = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.exit(status);
