"""FastMCP's proxy in front of an MCP server over Streamable HTTP, with FastMCP's own JWT
check of the agent's token: the bench's FastMCP row (bench/gateway.sh).

Environment: UPSTREAM (the server's URL), PORT, and for the token: JWKS_URI, ISSUER,
AUDIENCE. Serves Streamable HTTP at http://127.0.0.1:PORT/mcp.
"""

import os

from fastmcp.server import create_proxy
from fastmcp.server.auth.providers.jwt import JWTVerifier

auth = JWTVerifier(
    jwks_uri=os.environ["JWKS_URI"],
    issuer=os.environ["ISSUER"],
    audience=os.environ["AUDIENCE"],
    algorithm="ES256",
)
proxy = create_proxy(os.environ["UPSTREAM"], name="fastmcp-proxy", auth=auth)
proxy.run(transport="http", host="127.0.0.1", port=int(os.environ["PORT"]), path="/mcp", show_banner=False)
