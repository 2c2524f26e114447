"""Who may use the studio: only its own page, as Jupyter and similar local servers do.

- **Host**: bound to this machine (loopback), the studio answers only the names of this
  machine (``localhost``, ``127.0.0.1``, ``::1``), so a foreign page cannot rebind its own
  name to the studio's address and read the answers (DNS rebinding).
- **Origin**: a request that names another site as its origin is refused.
- **Content type**: a request with a body must be ``application/json`` or a multipart form;
  a ``text/plain`` or URL-encoded "simple" request (no CORS preflight) is refused.
- **Token**: a secret made at launch. The page receives it inside ``index.html`` and sends it
  as ``X-Cadenza-Token`` with every request that changes something. Bound to any other
  address (``--host 0.0.0.0``), the studio is on the network: then every request needs the
  token (the launch URL carries it once, ``?token=...``, and the page keeps it in a cookie
  for its audio and MIDI links), and any Host name is accepted.

Refusals are 403 (415 for a content type) with ``{"error": "one line"}``, before the request
reaches the app, so nothing is started or read.
"""
from __future__ import annotations

import ipaddress
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.responses import JSONResponse

HEADER, COOKIE = "x-cadenza-token", "cadenza_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
BODY_TYPES = ("application/json", "multipart/form-data")
READ_ONLY = ("GET", "HEAD")


def is_loopback(host: str) -> bool:
    """Whether a ``--host`` value listens on this machine only."""
    if host.strip("[]").lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """``localhost:8765`` -> ``localhost``; ``[::1]:8765`` -> ``::1``."""
    if host_header.startswith("["):
        return host_header[1:].partition("]")[0].lower()
    return host_header.rpartition(":")[0].lower() if host_header.count(":") == 1 else host_header.lower()


class Access:
    """This launch's rule: its token, whether it is on the network, the names it answers to."""

    def __init__(self, token: str, network: bool, bound: str = "127.0.0.1") -> None:
        self.token, self.network = token, network
        self.hosts = LOOPBACK_NAMES | {bound.strip("[]").lower()}

    def has_token(self, headers: Headers, query: str) -> bool:
        given = headers.get(HEADER) or parse_qs(query).get("token", [""])[0]
        if not given and headers.get("cookie"):
            morsel = SimpleCookie(headers["cookie"]).get(COOKIE)
            given = morsel.value if morsel else ""
        return secrets.compare_digest(given.encode(), self.token.encode())

    def refusal(self, scope) -> tuple[int, str] | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.network and host_name(host) not in self.hosts:
            return 403, "this studio answers only at its own address (127.0.0.1 or localhost)"
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scope.get('scheme', 'http')}://{host}".lower():
            return 403, "requests from other sites are refused"
        method, path = scope["method"], scope["path"]
        if method not in READ_ONLY:
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind not in BODY_TYPES:
                return 415, "send application/json or a multipart form"
        needs_token = method not in READ_ONLY or (self.network and path != "/" and not path.startswith("/static/"))
        if needs_token and not self.has_token(headers, scope.get("query_string", b"").decode("latin-1")):
            return 403, ("this studio needs the token printed when it started: open the URL it printed"
                         if self.network else "missing or wrong studio token: reload the page")
        return None



class Guard:
    """ASGI middleware: refuse what the studio's own page would never send (module docstring)."""

    def __init__(self, app, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (refused := self.access.refusal(scope)) is not None:
            await JSONResponse({"error": refused[1]}, status_code=refused[0])(scope, receive, send)
            return
        await self.app(scope, receive, send)
