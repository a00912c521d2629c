"""Notes: a plain Python MCP server with no auth of its own, the kind that sits behind
agentgate's gateway unchanged. Built with the official Python SDK's `MCPServer` (mcp 2.x's
name for FastMCP), served over Streamable HTTP at /mcp by uvicorn.

Tools:
  add_note(text)   keeps a note; answers how many there are
  list_notes()     the notes so far
  caller()         the X-Agentgate-* headers of the request, as the gateway sent them
                   ({} when it sent none): what an upstream learns of who is calling

Environment:
  NOTES_PORT       where to listen on 127.0.0.1 (0, the default, lets the OS choose)
  NOTES_STATELESS=1, NOTES_JSON_RESPONSE=1   Streamable HTTP options

`python notes.py` prints exactly one line on stdout once it is listening:
  NOTES_URL=http://127.0.0.1:<port>/mcp
and exits when its stdin closes.
"""

import contextlib
import os
import socket
import sys
import threading

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.applications import Starlette
from starlette.routing import Mount

mcp = MCPServer("Notes")
notes: list[str] = []


@mcp.tool()
def add_note(text: str) -> str:
    """Keeps a note."""
    notes.append(text)
    return f"{len(notes)} notes"


@mcp.tool()
def list_notes() -> list[str]:
    """The notes so far."""
    return notes


@mcp.tool()
def caller(ctx: Context) -> dict[str, str]:
    """The X-Agentgate-* headers of this request."""
    request = ctx.request_context.request
    headers = request.headers if request is not None else {}
    return {k: v for k, v in headers.items() if k.lower().startswith("x-agentgate-")}


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


_streamable = mcp.streamable_http_app(
    stateless_http=_flag("NOTES_STATELESS"), json_response=_flag("NOTES_JSON_RESPONSE")
)


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette):
    async with mcp.session_manager.run():
        yield


app = Starlette(routes=[Mount("/", app=Starlette(routes=_streamable.routes))], lifespan=lifespan)


class _Server(uvicorn.Server):
    """Announces the URL on stdout once the socket is listening."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket):
        super().__init__(config)
        self._sock = sock

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if not self.should_exit:
            host, port = self._sock.getsockname()[:2]
            print(f"NOTES_URL=http://{host}:{port}/mcp", flush=True)


def main() -> None:
    sock = socket.socket(socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", int(os.environ.get("NOTES_PORT", "0"))))
    server = _Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2), sock)

    def wait_for_eof() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        server.should_exit = True

    threading.Thread(target=wait_for_eof, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
