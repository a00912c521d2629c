"""agentgate interop: an outside OAuth MCP agent built on the official Python SDK
(`mcp` 2.3.0: `mcp.Client` over `streamable_http_client`, with an httpx2 client whose
auth is `mcp.client.auth.OAuthClientProvider`), acting as a public client. The Python
twin of interop/tools/ts-agent.mjs. Two ways to get a client_id, both done by the SDK:

  * dynamic client registration (RFC 7591), the default: the SDK POSTs the client
    metadata below (application_type "native", token_endpoint_auth_method "none", the
    redirect URI) to the registration_endpoint;
  * a Client ID Metadata Document, with --client-metadata-url URL: the SDK uses that URL
    as client_id when the authorization server metadata says
    client_id_metadata_document_supported (else it falls back to registration).

A headless user agent (httpx2, a cookie jar, redirects followed by hand) plays the
person: it fills in agentgate's real sign-in and consent pages.

  python agent.py --url http://127.0.0.1:PORT/mcp --password PW [--username alice]
         [--client-metadata-url URL] [--redirect-uri http://127.0.0.1:PORT/callback]
         [--scope "openid profile email mcp:tools"|sdk] [--decision allow|deny]
         [--language en] [--tool whoami] [--timeout 60]

Flow: the first MCP request gets 401 (WWW-Authenticate resource_metadata) -> the SDK
reads the protected resource metadata and the authorization server metadata, registers
(or takes the CIMD URL as client_id), then calls redirect_handler(url) -> the user agent
GETs that URL, posts the sign-in form, posts the consent form (--decision) and reads
code, state and iss from the Location that points at the redirect URI (nothing listens
there) -> callback_handler hands them to the SDK, which checks state and iss (RFC 9207),
exchanges the code and retries the request with the token -> tools/list, tools/call.

Scope: mcp 2.3.0 requests the WWW-Authenticate challenge's scope (else PRM
scopes_supported, else the AS's), plus offline_access (and then prompt=consent) when the
AS supports it and the client's grant_types include refresh_token. The user agent
replaces the authorization URL's scope with --scope (default "sdk": keep the SDK's).

CIMD and plain http: OAuthClientProvider.__init__ refuses a client_metadata_url that is
not https (mcp/client/auth/oauth2.py:332, via is_valid_client_metadata_url in
mcp/client/auth/utils.py:335: `parsed.scheme == "https"`). Nothing later in the flow
looks at the scheme, so for an http URL (a document served on loopback to
`agentgate dev --allow-loopback-client-documents`) the provider is built without it and
the URL is then set on the provider's public `context.client_metadata_url`: the SDK's
own CIMD branch (should_use_client_metadata_url, create_client_info_from_metadata_url)
still decides and builds the client information. No SDK function is patched. The
output says so ("cimdHttpsCheckBypassed": true).

Always prints exactly one JSON line on stdout and exits 0 (2 only for bad usage):
  {"ok":true,"result":<structuredContent>,"registered":<DCR client_id>|null,
   "clientId":"...","consent":"allow"|null,"tools":[...],"tokenScope":"...",
   "authorization":{...},"callback":{...},"pages":[...],"exchanges":[...]}
  {"ok":false,"stage":"...","error":"...","registered":...,"clientId":...,
   "consent":...,"authorization":...,"callback":...,"pages":[...],"exchanges":[...]}
"exchanges": every HTTP request the SDK made (httpx2 event hooks on the client the SDK
uses, so the OAuth provider's own discovery, registration and token requests are there
too), as {method, path, status, bearer}. "pages": every HTML page the user agent was
shown, as {page, status, path, lang, title, h1, buttons, error}, page one of sign-in,
consent, message. --decision deny ends with ok:false, stage "authorization", error
"access_denied".
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import os
import random
import re
import sys
import time
import traceback
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp_types import Implementation
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

MAX_STEPS = 20
DEFAULT_SCOPE = "openid profile email mcp:tools"
CLIENT_NAME = "agentgate interop python agent"


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, like ts-agent
        raise UsageError(message)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="agent.py", add_help=True, allow_abbrev=False)
    p.add_argument("--url", required=True)
    p.add_argument("--username", default="alice")
    p.add_argument("--password", default=os.environ.get("AGENTGATE_DEMO_PASSWORD"))
    p.add_argument("--client-metadata-url")
    p.add_argument("--redirect-uri")
    p.add_argument("--scope", default="sdk")
    p.add_argument("--decision", default="allow", choices=["allow", "deny"])
    p.add_argument("--language", default="en")
    p.add_argument("--tool", default="whoami")
    p.add_argument("--timeout", default="60")
    opts = p.parse_args(argv)
    if opts.password is None:
        raise UsageError("--password is required (or AGENTGATE_DEMO_PASSWORD)")
    u = urlsplit(opts.url)
    if u.scheme not in ("http", "https") or not u.netloc:
        raise UsageError(f"--url is not an http(s) URL: {opts.url!r}")
    try:
        opts.timeout = float(opts.timeout)
    except ValueError:
        raise UsageError("--timeout must be a positive number of seconds") from None
    if not math.isfinite(opts.timeout) or opts.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if opts.client_metadata_url is not None:
        c = urlsplit(opts.client_metadata_url)
        if c.scheme not in ("http", "https") or not c.netloc or c.path in ("", "/"):
            raise UsageError("--client-metadata-url must be an http(s) URL with a path")
    # A loopback redirect may use any port (RFC 8252 section 7.3); nothing listens on it.
    # A client metadata document is matched exactly, so pass --redirect-uri with one.
    if opts.redirect_uri is None:
        opts.redirect_uri = f"http://127.0.0.1:{49152 + random.randrange(16000)}/callback"
    r = urlsplit(opts.redirect_uri)
    if r.scheme not in ("http", "https") or not r.netloc:
        raise UsageError(f"--redirect-uri is not a URL: {opts.redirect_uri!r}")
    return opts


class Failure(Exception):
    def __init__(self, stage: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.stage = stage
        self.extra = extra


def describe(err: BaseException) -> str:
    """An error and its causes on one line (exception groups unwrapped)."""
    while isinstance(err, BaseExceptionGroup) and len(err.exceptions) == 1:
        err = err.exceptions[0]
    parts: list[str] = []
    seen = 0
    cur: BaseException | None = err
    while cur is not None and seen < 4:
        text = str(cur) or type(cur).__name__
        if not parts or text != parts[-1]:
            parts.append(text if str(cur) else type(cur).__name__)
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return ": ".join(parts)


def find(err: BaseException, kind: type) -> BaseException | None:
    """The first exception of `kind` in err, its causes and exception groups."""
    stack = [err]
    seen: set[int] = set()
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return e
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        stack.extend([e.__cause__, e.__context__])
    return None


# ------------------------------------------------------------------ the SDK's HTTP, recorded

exchanges: list[dict[str, Any]] = []
_pending: dict[int, dict[str, Any]] = {}


async def on_request(request: httpx2.Request) -> None:
    entry = {
        "method": request.method,
        "path": request.url.path,
        "status": None,
        "bearer": request.headers.get("authorization", "").lower().startswith("bearer "),
    }
    exchanges.append(entry)
    _pending[id(request)] = entry


async def on_response(response: httpx2.Response) -> None:
    entry = _pending.pop(id(response.request), None)
    if entry is None:
        return
    entry["status"] = response.status_code
    if response.status_code in (401, 403):
        entry["wwwAuthenticate"] = response.headers.get("www-authenticate")


# ------------------------------------------------------------------ the user agent


class CookieJar:
    """A small RFC 6265-style jar for one host, as interop/tools/common.mjs has it: cookies
    keyed by name and path, sent when the request path is inside the cookie path, dropped
    when the server expires them (Domain and Secure are not looked at)."""

    def __init__(self) -> None:
        self._cookies: dict[tuple[str, str], dict[str, Any]] = {}

    def store(self, response: httpx2.Response, request_url: str) -> None:
        for line in response.headers.get_list("set-cookie"):
            self._store_one(line, request_url)

    def _store_one(self, line: str, request_url: str) -> None:
        pair, *attrs = line.split(";")
        if "=" not in pair or pair.index("=") == 0:
            return
        name, value = (s.strip() for s in pair.split("=", 1))
        path = None
        expires = None
        for attr in attrs:
            key, _, val = attr.partition("=")
            key, val = key.strip().lower(), val.strip()
            if key == "path" and val.startswith("/"):
                path = val
            elif key == "max-age":
                try:
                    expires = time.time() + float(val)
                except ValueError:
                    pass
            elif key == "expires" and expires is None:
                from email.utils import parsedate_to_datetime

                try:
                    expires = parsedate_to_datetime(val).timestamp()
                except (TypeError, ValueError):
                    pass
        if path is None:
            p = urlsplit(request_url).path
            slash = p.rfind("/")
            path = p[:slash] if slash > 0 else "/"
        if expires is not None and expires <= time.time():
            self._cookies.pop((name, path), None)
        else:
            self._cookies[(name, path)] = {"name": name, "value": value, "path": path, "expires": expires}

    def header(self, url: str) -> str:
        req_path = urlsplit(url).path or "/"
        now = time.time()
        matching = []
        for key, c in list(self._cookies.items()):
            if c["expires"] is not None and c["expires"] <= now:
                del self._cookies[key]
            elif _path_matches(req_path, c["path"]):
                matching.append(c)
        matching.sort(key=lambda c: -len(c["path"]))
        return "; ".join(f"{c['name']}={c['value']}" for c in matching)


def _path_matches(req_path: str, cookie_path: str) -> bool:
    if req_path == cookie_path:
        return True
    if not req_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or req_path[len(cookie_path)] == "/"


def _fold(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


class PageReader(HTMLParser):
    """What the person sees: the page's language, title, heading, error, the first POST form."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title: str | None = None
        self.h1: str | None = None
        self.error: str | None = None
        self.form: dict[str, Any] | None = None
        self.text: list[str] = []
        self._capture: list[tuple[str, list[str]]] = []  # (what, chunks)
        self._in_form = False
        self._form_done = False
        self._button: dict[str, Any] | None = None
        self._skip = 0

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k.lower(): (v if v is not None else "") for k, v in attrs_list}
        if tag in ("style", "script"):
            self._skip += 1
        if tag == "html" and "lang" in attrs:
            self.lang = attrs["lang"]
        elif tag == "title" and self.title is None:
            self._capture.append(("title", []))
        elif tag == "h1" and self.h1 is None:
            self._capture.append(("h1", []))
        elif tag == "p" and self.error is None and "error" in attrs.get("class", "").split():
            self._capture.append(("error", []))
        elif tag == "form" and not self._form_done and attrs.get("method", "get").lower() == "post":
            self._in_form = True
            self.form = {"action": attrs.get("action", ""), "fields": {}, "buttons": []}
        elif tag == "input" and self._in_form and attrs.get("name"):
            self.form["fields"][attrs["name"]] = attrs.get("value", "")
        elif tag == "button" and self._in_form:
            self._button = {"name": attrs.get("name"), "value": attrs.get("value"), "chunks": []}

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script") and self._skip:
            self._skip -= 1
        if self._capture and tag in ("title", "h1", "p"):
            what, chunks = self._capture[-1]
            if (what, tag) in (("title", "title"), ("h1", "h1"), ("error", "p")):
                self._capture.pop()
                setattr(self, what, _fold("".join(chunks)))
        if tag == "button" and self._button is not None:
            b = self._button
            self.form["buttons"].append({"name": b["name"], "value": b["value"], "text": _fold("".join(b["chunks"]))})
            self._button = None
        if tag == "form" and self._in_form:
            self._in_form = False
            self._form_done = True

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        for _, chunks in self._capture:
            chunks.append(data)
        if self._button is not None:
            self._button["chunks"].append(data)


def read_page(body: str, page_url: str, status: int) -> dict[str, Any]:
    r = PageReader()
    r.feed(body)
    r.close()
    form = r.form
    if form is not None:
        form["action"] = urljoin(page_url, html.unescape(form["action"]) or page_url)
    page = "message"
    if form and "password" in form["fields"]:
        page = "sign-in"
    elif form and any(b["name"] == "decision" for b in form["buttons"]):
        page = "consent"
    return {
        "summary": {
            "page": page,
            "status": status,
            "path": urlsplit(page_url).path,
            "lang": r.lang,
            "title": r.title,
            "h1": r.h1,
            "buttons": [b["text"] for b in form["buttons"]] if form else [],
            "error": r.error,
        },
        "form": form,
        "text": _fold(" ".join(r.text)),
    }


class UserAgent:
    """Plays the person from the authorization URL to the redirect back."""

    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.pages: list[dict[str, Any]] = []
        # The button pressed on the consent page; None when none was shown.
        self.consent: str | None = None

    def _is_redirect_uri(self, target: str) -> bool:
        t, want = urlsplit(target), urlsplit(self.opts.redirect_uri)
        return (t.scheme, t.netloc, t.path) == (want.scheme, want.netloc, want.path)

    async def run(self, authorization_url: str) -> str:
        jar = CookieJar()
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30.0) as http:

            async def request(target: str, method: str = "GET", form: dict[str, str] | None = None):
                headers = {"accept": "text/html,application/xhtml+xml", "accept-language": self.opts.language}
                cookie = jar.header(target)
                if cookie:
                    headers["cookie"] = cookie
                content = None
                if form is not None:
                    headers["content-type"] = "application/x-www-form-urlencoded"
                    content = urlencode(form).encode()
                try:
                    response = await http.request(method, target, headers=headers, content=content)
                except httpx2.HTTPError as err:
                    raise Failure("authorization", f"{method} {target}: {describe(err)}") from err
                jar.store(response, target)
                return response

            current = authorization_url
            response = await request(current)
            signed_in = decided = False
            for _ in range(MAX_STEPS):
                if 300 <= response.status_code < 400:
                    location = response.headers.get("location")
                    if not location:
                        raise Failure("authorization", f"HTTP {response.status_code} from {current} without Location")
                    target = urljoin(current, location)
                    if self._is_redirect_uri(target):
                        return target
                    current = target
                    response = await request(current)
                    continue
                seen = read_page(response.text, current, response.status_code)
                self.pages.append(seen["summary"])
                page = seen["summary"]["page"]
                if page == "sign-in" and not signed_in:
                    signed_in = True
                    fields = {**seen["form"]["fields"], "login": self.opts.username, "password": self.opts.password}
                    current = seen["form"]["action"]
                    response = await request(current, "POST", fields)
                    continue
                if page == "consent" and not decided:
                    decided = True
                    self.consent = self.opts.decision
                    fields = {**seen["form"]["fields"], "decision": self.opts.decision}
                    current = seen["form"]["action"]
                    response = await request(current, "POST", fields)
                    continue
                why = seen["summary"]["error"] or seen["text"][:300]
                raise Failure(
                    "authorization",
                    f"stuck on the {page} page (HTTP {response.status_code}) at {current}: {why}",
                )
        raise Failure("authorization", f"no redirect to {self.opts.redirect_uri} after {MAX_STEPS} steps (last: {current})")


# ------------------------------------------------------------------ the OAuth client provider's storage and handlers


class MemoryStorage:
    """The SDK's TokenStorage, in memory for one run. Starts empty: the SDK registers
    (or uses the CIMD URL) and saves the result through set_client_info."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


class Agent:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.storage = MemoryStorage()
        self.user_agent = UserAgent(opts)
        self.authorization: dict[str, Any] | None = None
        self.callback: dict[str, Any] | None = None
        self.result: AuthorizationCodeResult | None = None
        # An error from redirect_handler, kept here: the transport reports it to the
        # session as a generic failure of the request that needed the token.
        self.failure: Failure | None = None
        self.registration_request: dict[str, Any] | None = None
        self.cimd_bypass = False

    def client_metadata(self) -> OAuthClientMetadata:
        return OAuthClientMetadata(
            client_name=CLIENT_NAME,
            redirect_uris=[self.opts.redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
            application_type="native",
            scope=None if self.opts.scope == "sdk" else self.opts.scope,
        )

    def provider(self) -> OAuthClientProvider:
        url = self.opts.client_metadata_url
        https = url is not None and urlsplit(url).scheme == "https"
        provider = OAuthClientProvider(
            server_url=self.opts.url,
            client_metadata=self.client_metadata(),
            storage=self.storage,
            redirect_handler=self.redirect_handler,
            callback_handler=self.callback_handler,
            client_metadata_url=url if https else None,
        )
        if url is not None and not https:
            # The constructor accepts only https (mcp/client/auth/oauth2.py:332); the flow
            # itself does not check the scheme. See the module docstring.
            provider.context.client_metadata_url = url
            self.cimd_bypass = True
        return provider

    async def redirect_handler(self, authorization_url: str) -> None:
        try:
            await self._authorize(authorization_url)
        except Failure as err:
            self.failure = err
            raise

    async def _authorize(self, authorization_url: str) -> None:
        parts = urlsplit(authorization_url)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        sdk_scope = query.get("scope")
        if self.opts.scope != "sdk":
            query["scope"] = self.opts.scope
        target = urlunsplit(parts._replace(query=urlencode(query)))
        self.authorization = {
            "endpoint": urlunsplit(parts._replace(query="", fragment="")),
            "clientId": query.get("client_id"),
            "sdkScope": sdk_scope,
            "requestedScope": query.get("scope"),
            "resource": query.get("resource"),
            "redirectUri": query.get("redirect_uri"),
            "codeChallengeMethod": query.get("code_challenge_method"),
            "prompt": query.get("prompt"),
            "state": "state" in query,
        }
        back = await self.user_agent.run(target)
        q = {k: v[-1] for k, v in parse_qs(urlsplit(back).query, keep_blank_values=True).items()}
        self.callback = {
            "code": "code" in q,
            "iss": q.get("iss"),
            "error": q.get("error"),
            "errorDescription": q.get("error_description"),
        }
        if q.get("error"):
            raise Failure("authorization", q["error"], errorDescription=q.get("error_description"))
        if not q.get("code"):
            raise Failure("authorization", f"no code in {back}")
        # The SDK checks state and iss itself (RFC 9207) once callback_handler returns.
        self.result = AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    async def callback_handler(self) -> AuthorizationCodeResult:
        if self.result is None:
            raise Failure("authorization", "no authorization response")
        return self.result

    async def run(self) -> dict[str, Any]:
        provider = self.provider()
        http = httpx2.AsyncClient(
            auth=provider,
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"request": [on_request], "response": [on_response]},
        )
        async with http:
            # One connection: the SDK's auth flow runs inside the first request that
            # gets 401 (discovery, registration, authorization, token) and retries it.
            transport = streamable_http_client(self.opts.url, http_client=http)
            client = Client(transport, client_info=Implementation(name="agentgate-interop-python-agent", version="0.1.0"))
            stage = "connect"
            try:
                async with client:
                    stage = "list"
                    if self.storage.tokens is None:
                        raise Failure("connect", "the MCP server answered without asking for a token")
                    tools: list[str] = []
                    cursor = None
                    while True:
                        page = await client.list_tools(cursor=cursor)
                        tools.extend(t.name for t in page.tools)
                        cursor = page.next_cursor
                        if not cursor:
                            break
                    stage = "call"
                    result = await client.call_tool(self.opts.tool, {})
                    if result.is_error:
                        text = " ".join(getattr(c, "text", "") for c in result.content)
                        raise Failure("call", _fold(text) or "isError")
            except Exception as err:
                found = find(err, Failure) or self.failure
                if found is not None:
                    raise found from None
                raise Failure(stage, describe(err)) from None
        tokens = self.storage.tokens
        return {
            "ok": True,
            "result": result.structured_content,
            "tools": tools,
            "tokenScope": tokens.scope if tokens else None,
            "token": {
                "type": tokens.token_type if tokens else None,
                "expiresIn": tokens.expires_in if tokens else None,
                "refreshToken": bool(tokens and tokens.refresh_token),
            },
            **self.common(),
        }

    def registered(self) -> str | None:
        info = self.storage.client_info
        if info is None or info.client_id == self.opts.client_metadata_url:
            return None
        return info.client_id

    def common(self) -> dict[str, Any]:
        info = self.storage.client_info
        return {
            "registered": self.registered(),
            "clientId": info.client_id if info else None,
            "cimdHttpsCheckBypassed": self.cimd_bypass,
            "consent": self.user_agent.consent,
            "authorization": self.authorization,
            "callback": self.callback,
            "pages": self.user_agent.pages,
            "exchanges": exchanges,
        }


async def amain(opts: argparse.Namespace) -> dict[str, Any]:
    agent = Agent(opts)
    try:
        with anyio.fail_after(opts.timeout):
            return await agent.run()
    except TimeoutError:
        return {"ok": False, "stage": "timeout", "error": f"timeout after {opts.timeout} s", **agent.common()}
    except BaseException as err:  # noqa: BLE001 - one JSON line whatever happens
        failure = find(err, Failure)
        if failure is None and agent.failure is not None:
            failure = agent.failure
        if isinstance(failure, Failure):
            out = {"ok": False, "stage": failure.stage, "error": str(failure), **failure.extra}
        else:
            out = {"ok": False, "stage": "internal", "error": describe(err), "trace": traceback.format_exc(limit=8)}
        return {**out, **agent.common()}


def main() -> None:
    try:
        opts = parse_args(sys.argv[1:])
    except UsageError as err:
        sys.stderr.write(f"python agent: {err}\n")
        sys.exit(2)
    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)  # the JSON line says what failed
    out = anyio.run(amain, opts)
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
