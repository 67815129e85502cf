"""Who may talk to the studio server: requests for the host it is served on, from its own page.

Two Starlette middlewares go onto Gradio's FastAPI app (through `launch(app_kwargs=...)`), in
front of every route (page, upload, queue join, file, API, component server):

- TrustedHostMiddleware (Starlette's): the Host header must name the studio: loopback names, the
  `--host` address and any `--allow-host` names. A DNS-rebinding page (Host: evil.example:PORT)
  gets 400 before any route runs.
- SameOriginGuard (below): the Host's port must be the port the server is bound on, and a request
  that carries an Origin must come from the studio's own origin (Origin's host:port equal to the
  Host). Browsers add Origin to every cross-origin fetch and form POST, so a foreign or "null"
  Origin gets 403 and nothing is uploaded, queued, served or deleted. Fetch metadata
  (Sec-Fetch-Site: cross-site or same-site on anything but a page navigation) is refused the same
  way: it also covers requests browsers send without an Origin (<img>, <script>).

Requests without either header come from non-browser clients (gradio_client, curl) on a machine
that can reach the port, or from the studio's own page.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from starlette.datastructures import URL, Headers
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocketClose

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_BINDS = ("0.0.0.0", "::", "")
SHARE_HOSTS = ("*.gradio.live",)  # Gradio's share tunnel; the Host it forwards has no port
CROSS_SITE = ("cross-site", "same-site")  # same-site still means another origin (another port)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(bind: str, extra: tuple[str, ...] = (), share: bool = False) -> list[str]:
    """Host names the studio answers to: loopback, the bind address (for a wildcard bind, this
    machine's name and addresses), `extra` names, and Gradio's share domain when sharing."""
    names = list(LOOPBACK_NAMES)
    if bind in WILDCARD_BINDS:
        hostname = socket.gethostname()
        names.append(hostname)
        try:
            names += sorted({info[4][0] for info in socket.getaddrinfo(hostname, None)})
        except OSError:
            pass
    else:
        names.append(bind)
    names += list(extra) + (list(SHARE_HOSTS) if share else [])
    return list(dict.fromkeys(_bracket(n.strip().lower()) for n in names if n.strip()))


class SameOriginGuard:
    """Refuse (403) requests for another port or from another origin; see the module docstring."""

    def __init__(self, app: ASGIApp, proxy_hosts: tuple[str, ...] = SHARE_HOSTS) -> None:
        self.app = app
        self.proxy_suffixes = tuple(p[1:] for p in proxy_hosts if p.startswith("*."))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            why = self.refusal(scope)
            if why is not None:
                if scope["type"] == "websocket":
                    await WebSocketClose(code=1008, reason=why)(scope, receive, send)
                else:
                    await PlainTextResponse(why, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> str | None:
        """Why the request is refused, or None to let it through."""
        headers, url = Headers(scope=scope), URL(scope=scope)
        host = (headers.get("host") or "").lower()
        server = scope.get("server")
        via_proxy = (url.hostname or "").endswith(self.proxy_suffixes) if self.proxy_suffixes else False
        if server and not via_proxy:
            port = url.port or {"https": 443, "wss": 443}.get(url.scheme, 80)
            if port != server[1]:
                return f"Host {host!r} names port {port}; this studio serves port {server[1]}"
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or parts.netloc.lower() != host:
                return f"requests from origin {origin[:100]!r} are refused: open the studio at its own address"
        site, mode = headers.get("sec-fetch-site"), headers.get("sec-fetch-mode")
        if site in CROSS_SITE and not (mode == "navigate" and scope.get("method") == "GET"):
            return f"cross-site requests ({site}) are refused: open the studio at its own address"
        return None


def guard_middleware(hosts: list[str]) -> list[Middleware]:
    """The middleware list for `launch(app_kwargs={"middleware": ...})`, outermost first."""
    return [Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False),
            Middleware(SameOriginGuard)]
