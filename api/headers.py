"""Security headers on every answer: a Content-Security-Policy that allows no inline script
(the pages' scripts and styles are files under ``/static``), no framing by anyone, no MIME
sniffing, and no referrer sent to other sites. HSTS when the service is reached over HTTPS.

The OpenAPI pages (``/docs``, ``/redoc``) are FastAPI's own, which start themselves with one
inline script: they get the same policy with that script's hash allowed, nothing more.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
# The documentation pages load their bundle from this service (api/docs.py) and start it
# with one inline script.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
               "base-uri 'none'; frame-ancestors 'none'")
COMMON = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)


def is_https(scope: Scope) -> bool:
    """Return True when the client reached the service over HTTPS (directly, or through a
    proxy uvicorn trusts for X-Forwarded-Proto)."""
    return scope.get("scheme") == "https"


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"] in DOCS_PATHS else POLICY
        extra = [*COMMON, (b"content-security-policy", policy.encode())]
        if is_https(scope):
            extra.append((b"strict-transport-security", b"max-age=31536000"))

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *((n, v) for n, v in extra if n not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)
