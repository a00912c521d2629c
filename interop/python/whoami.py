"""WhoAmI: the Python MCP server of the "third-party AI agents" tutorial (mcp-auth + an
OpenID Connect issuer), pointed at agentgate's issuer instead of Logto.

It keeps the tutorial's shape: mcpauth's `fetch_server_config(issuer, type=OIDC)`, a
`verify_access_token` that sends the bearer token to the issuer's userinfo endpoint and
turns the answer into an `AuthInfo`, `mcp_auth.bearer_auth_middleware(verify_access_token)`
in front of the MCP app, and a `whoami` tool that returns `mcp_auth.auth_info.claims`.

Changes from the tutorial text, for mcp 2.x and mcpauth 0.1.1 (see requirements.in):
  * mcp 2.x has no `mcp.server.fastmcp.FastMCP`; it is `mcp.server.mcpserver.MCPServer`.
  * Besides the tutorial's HTTP+SSE transport (GET /sse, POST /messages/), the Streamable
    HTTP transport is served at /mcp, behind the same bearer middleware. A mounted app's
    lifespan does not run, so the outer app runs the session manager itself.
  * verify_access_token maps a refused token to mcpauth's verification error, so the
    middleware answers 401 (an uncaught requests.HTTPError would be a 500).

Environment:
  WHOAMI_ISSUER             the issuer URL (required), e.g. http://127.0.0.1:8080
  WHOAMI_HOST, WHOAMI_PORT  where to listen (127.0.0.1, 3001); port 0 lets the OS choose
  WHOAMI_VERIFY             userinfo (default, the tutorial's) or jwt: mcpauth's built-in
                            JWT check against the issuer's JWKS; then WHOAMI_AUDIENCE (the
                            token's resource) is required and WHOAMI_REQUIRED_SCOPES
                            (space-separated) is optional
  WHOAMI_STATELESS=1, WHOAMI_JSON_RESPONSE=1   Streamable HTTP options
  WHOAMI_EXIT_ON_STDIN_CLOSE=1                 exit when stdin reaches EOF

`python whoami.py` prints exactly one line on stdout once it is listening:
  WHOAMI_URL=http://127.0.0.1:<port>/mcp
Everything else goes to stderr. `uvicorn whoami:app --port 3001` works as in the tutorial.

Note: mcpauth keeps AuthInfo in a context variable. In a stateful Streamable HTTP session
(and an SSE session) the tool runs in the session's task, so it sees the AuthInfo of the
request that opened the session; with WHOAMI_STATELESS=1 it is each request's own.
"""

import contextlib
import os
import socket
import sys
import threading
from typing import Any

import pydantic
import requests
import uvicorn
from mcp.server.mcpserver import MCPServer
from mcpauth import MCPAuth
from mcpauth.config import AuthServerType
from mcpauth.exceptions import (
    MCPAuthTokenVerificationException,
    MCPAuthTokenVerificationExceptionCode,
)
from mcpauth.types import AuthInfo
from mcpauth.utils import fetch_server_config
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


auth_issuer = os.environ.get("WHOAMI_ISSUER", "").strip()
if not auth_issuer:
    sys.exit("whoami: set WHOAMI_ISSUER to the issuer URL, e.g. http://127.0.0.1:8080")

# --- The tutorial: configure MCP auth with the OIDC issuer ------------------------------
auth_server_config = fetch_server_config(auth_issuer, type=AuthServerType.OIDC)
mcp_auth = MCPAuth(server=auth_server_config)


# --- The tutorial: verify the access token at the userinfo endpoint ---------------------
def verify_access_token(token: str) -> AuthInfo:
    endpoint = auth_server_config.metadata.userinfo_endpoint
    if not endpoint:
        raise ValueError("the issuer's metadata has no userinfo_endpoint")
    try:
        response = requests.get(
            endpoint,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        response.raise_for_status()
        data = response.json()
        return AuthInfo(
            token=token,
            subject=data.get("sub"),
            issuer=auth_server_config.metadata.issuer,
            claims=data,
        )
    except (requests.HTTPError, pydantic.ValidationError) as e:
        # Refused by the issuer, or no `sub` in its answer: the token is not valid.
        raise MCPAuthTokenVerificationException(
            MCPAuthTokenVerificationExceptionCode.INVALID_TOKEN, cause=e
        )
    except Exception as e:
        raise MCPAuthTokenVerificationException(
            MCPAuthTokenVerificationExceptionCode.TOKEN_VERIFICATION_FAILED, cause=e
        )


# --- The tutorial: the whoami tool ------------------------------------------------------
mcp = MCPServer("WhoAmI")


@mcp.tool()
def whoami() -> dict[str, Any]:
    """Returns the current user's identity information."""
    return (
        mcp_auth.auth_info.claims
        if mcp_auth.auth_info
        else {"error": "Not authenticated"}
    )


if os.environ.get("WHOAMI_VERIFY", "userinfo") == "jwt":
    audience = os.environ.get("WHOAMI_AUDIENCE", "").strip()
    if not audience:
        sys.exit("whoami: WHOAMI_VERIFY=jwt needs WHOAMI_AUDIENCE (the token's resource)")
    bearer_auth = Middleware(
        mcp_auth.bearer_auth_middleware(
            "jwt",
            audience=audience,
            required_scopes=os.environ.get("WHOAMI_REQUIRED_SCOPES", "").split() or None,
        )
    )
elif os.environ.get("WHOAMI_VERIFY", "userinfo") == "userinfo":
    bearer_auth = Middleware(mcp_auth.bearer_auth_middleware(verify_access_token))
else:
    sys.exit("whoami: WHOAMI_VERIFY must be userinfo or jwt")

# Streamable HTTP (/mcp) and the tutorial's HTTP+SSE (/sse, /messages/) side by side.
_streamable = mcp.streamable_http_app(
    stateless_http=_flag("WHOAMI_STATELESS"),
    json_response=_flag("WHOAMI_JSON_RESPONSE"),
)
_sse = mcp.sse_app()
mcp_routes = Starlette(routes=[*_streamable.routes, *_sse.routes])


@contextlib.asynccontextmanager
async def lifespan(_app: Starlette):
    async with mcp.session_manager.run():
        yield


app = Starlette(
    routes=[
        # /.well-known/oauth-authorization-server: the issuer's metadata, as in the tutorial
        mcp_auth.metadata_route(),
        # everything else needs a valid bearer token
        Mount("/", app=mcp_routes, middleware=[bearer_auth]),
    ],
    lifespan=lifespan,
)


# --- Running it -------------------------------------------------------------------------
class _Server(uvicorn.Server):
    """Announces the URL on stdout once the socket is listening."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket):
        super().__init__(config)
        self._sock = sock

    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        host, port = self._sock.getsockname()[:2]
        print(f"WHOAMI_URL=http://{host}:{port}/mcp", flush=True)


def main() -> None:
    host = os.environ.get("WHOAMI_HOST", "127.0.0.1")
    port = int(os.environ.get("WHOAMI_PORT", "3001"))
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        log_level=os.environ.get("WHOAMI_LOG_LEVEL", "warning"),
        timeout_graceful_shutdown=2,
    )
    server = _Server(config, sock)
    if _flag("WHOAMI_EXIT_ON_STDIN_CLOSE"):

        def wait_for_eof() -> None:
            while sys.stdin.buffer.read(4096):
                pass
            server.should_exit = True

        threading.Thread(target=wait_for_eof, daemon=True).start()
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
