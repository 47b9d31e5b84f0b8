"""The review app's guard, as ASGI middleware around it (also when it is mounted inside the MCP server).

- The Host header must name this machine's loopback (exactly ``localhost``, ``127.0.0.1`` or ``[::1]``) or an
  allowed name, each with an optional numeric port: a page from another site that rebinds its DNS name to 127.0.0.1
  is refused (DNS rebinding). The header is parsed by its grammar (``parse_host``), so ``[::1]evil.example`` or
  ``127.0.0.1:8766@evil.example`` is no loopback name with something after it but no Host at all.
- A state-changing request (anything but GET/HEAD) must carry the app's CSRF token (form field ``csrf`` or header
  ``X-CSRF-Token``) and, when the browser says where it comes from (``Origin``, ``Sec-Fetch-Site``), come from this
  very origin. The token is random per app and only readable by pages of this origin.
- Every response carries a strict Content-Security-Policy (scripts and styles from this app only, no inline script,
  nothing from another host), ``nosniff``, no framing and no referrer.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
MAX_FORM_BYTES = 1 << 20

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


# RFC 9110 Host = uri-host [ ":" port ]; uri-host is an IP-literal ("[" IPv6 "]"), an IPv4 address or a DNS name
# (letters, digits, hyphens and dots: no user info, no path, nothing after the port). The port is digits only.
_HOST = re.compile(r"(?P<name>\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?)(?::(?P<port>[0-9]{1,5}))?")


def parse_host(header: str) -> tuple[str, int | None] | None:
    """A Host header as ``(name, port)``, the name in lower case: ``"127.0.0.1:8766"`` -> ``("127.0.0.1", 8766)``,
    ``"[::1]"`` -> ``("[::1]", None)``; None when the header is not one host with an optional port."""
    match = _HOST.fullmatch(header.lower())
    if match is None:
        return None
    name, port = match["name"], match["port"]
    if port is not None and int(port) > 65535:
        return None
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            return None
    return name, None if port is None else int(port)


class Guard:
    """ASGI middleware: Host check, same-origin + CSRF token on state-changing requests, security headers."""

    def __init__(self, app: ASGIApp, *, csrf_token: str, allowed_hosts: Iterable[str] = ()):
        self.app = app
        self.csrf_token = csrf_token
        self.allowed_hosts = LOOPBACK_HOSTS | {h.strip().lower() for h in allowed_hosts if h.strip()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await _with_headers(PlainTextResponse(refusal[1], status_code=refusal[0]), scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        host = headers.get("host", "")
        parsed = parse_host(host)
        if parsed is None or parsed[0] not in self.allowed_hosts:
            return 421, f"Host {host[:100]!r} is not allowed: open the review app at http://127.0.0.1:<port>/\n"
        if scope["method"] in SAFE_METHODS:
            return None
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return 403, "Refused: a request from another site (Sec-Fetch-Site) may not change anything here\n"
        origin = headers.get("origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host.strip().lower()):
            return 403, "Refused: a request from another origin may not change anything here\n"
        # The token is checked in the form handler (it is in the body); a header token is checked here.
        token = headers.get(CSRF_HEADER)
        if token is not None and not token_matches(self.csrf_token, None, token):
            return 403, "Refused: the CSRF token is wrong; reload the page\n"
        return None


def token_matches(expected: str, form_token: object, header_token: str | None) -> bool:
    """The CSRF check of a state-changing handler: the header token if sent, else the form's ``csrf`` field."""
    given = header_token if header_token is not None else form_token
    return isinstance(given, str) and secrets.compare_digest(given.encode(), expected.encode())


async def _with_headers(response: PlainTextResponse, scope: Scope, receive: Receive, send: Send) -> None:
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    await response(scope, receive, send)
