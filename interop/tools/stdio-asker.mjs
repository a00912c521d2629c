// A small MCP server on stdio (newline-delimited JSON-RPC, no SDK) whose every
// move a test controls, for attacking the gateway's stdio routing:
//
//   tools/call pid        -> this process's pid (shared or not?)
//   tools/call ask        -> sends sampling/createMessage to the client, waits
//                            for its answer, and returns that answer as text
//   tools/call wait       -> answers after `ms` (default 1000), with the id the
//                            request arrived under (the gateway's own); with a
//                            progressToken, first a progress notification whose
//                            message is the `tag` argument
//   tools/call cancelled  -> the requestIds of every notifications/cancelled seen
//   tools/call tell       -> sends notifications/resources/updated, then answers
//   tools/call flood      -> sends `count` notifications/message of `size` bytes
//                            each (as fast as stdout takes them), then answers
//   tools/call exit       -> the process exits at once (a crash, to the gateway)
//
// At start it writes "stdio-asker started pid=<pid>" to stderr (the gateway logs
// a program's stderr under its route's name).
import { createInterface } from "node:readline";

process.stderr.write(`stdio-asker started pid=${process.pid}\n`);
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
const text = (id, value) => send({ jsonrpc: "2.0", id, result: { content: [{ type: "text", text: String(value) }] } });

const cancelled = [];
const waitingForAnswers = new Map();
let asked = 0;

const tools = ["pid", "ask", "wait", "cancelled", "tell", "flood", "exit"].map((name) => ({
  name,
  inputSchema: { type: "object" },
}));

createInterface({ input: process.stdin }).on("line", (line) => {
  if (!line.trim()) return;
  const message = JSON.parse(line);
  if (message.method === undefined) {
    // An answer to one of our requests.
    const resolve = waitingForAnswers.get(message.id);
    if (resolve) {
      waitingForAnswers.delete(message.id);
      resolve(message);
    }
    return;
  }
  if (message.method === "notifications/cancelled") {
    cancelled.push(message.params?.requestId);
    return;
  }
  if (message.id === undefined) return;
  const { id, method, params } = message;
  if (method === "initialize") {
    send({
      jsonrpc: "2.0",
      id,
      result: {
        protocolVersion: params?.protocolVersion ?? "2025-06-18",
        capabilities: { tools: {}, resources: { subscribe: true } },
        serverInfo: { name: "stdio-asker", version: "1.0.0" },
      },
    });
  } else if (method === "tools/list") {
    send({ jsonrpc: "2.0", id, result: { tools } });
  } else if (method === "tools/call") {
    const name = params?.name;
    if (name === "pid") text(id, process.pid);
    else if (name === "cancelled") text(id, JSON.stringify(cancelled));
    else if (name === "wait") {
      const token = params?._meta?.progressToken;
      if (token !== undefined) {
        const message = String(params?.arguments?.tag ?? "");
        send({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: token, progress: 1, message } });
      }
      setTimeout(() => text(id, JSON.stringify(id)), params?.arguments?.ms ?? 1000);
    }
    else if (name === "exit") process.exit(3);
    else if (name === "flood") {
      const { count = 1000, size = 65536 } = params?.arguments ?? {};
      const data = "x".repeat(size);
      let sent = 0;
      const more = () => {
        while (sent < count) {
          sent += 1;
          const line = JSON.stringify({ jsonrpc: "2.0", method: "notifications/message", params: { level: "info", data } });
          if (!process.stdout.write(line + "\n")) return process.stdout.once("drain", more);
        }
        text(id, `flooded ${count}`);
      };
      more();
    } else if (name === "tell") {
      send({ jsonrpc: "2.0", method: "notifications/resources/updated", params: { uri: "memo://private" } });
      text(id, "told");
    } else if (name === "ask") {
      asked += 1;
      const ours = `ask-${asked}`;
      waitingForAnswers.set(ours, (answer) => text(id, JSON.stringify(answer.result ?? answer.error)));
      send({
        jsonrpc: "2.0",
        id: ours,
        method: "sampling/createMessage",
        params: { messages: [{ role: "user", content: { type: "text", text: "private question" } }], maxTokens: 5 },
      });
    } else send({ jsonrpc: "2.0", id, error: { code: -32602, message: `no tool ${name}` } });
  } else if (method === "ping") {
    send({ jsonrpc: "2.0", id, result: {} });
  } else {
    send({ jsonrpc: "2.0", id, error: { code: -32601, message: `no method ${method}` } });
  }
});
