"""Request bodies are refused past their size before they are parsed, and while they stream.

A declared ``Content-Length`` over the limit is answered 413 before a byte is read; a body
that streams past it (chunked, or lying about its length) is cut off at the limit, so a
JSON parser or the multipart parser never sees more — the form parser's spooled files stop
growing there too. Files (uploads, verification, bulk rows) may be as large as
``max_upload_bytes``; every other body ``max_json_bytes``.
"""

from __future__ import annotations

import re

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.config import Settings

# Routes that take a file, and the slack a multipart form adds around it (boundaries, part
# headers, the CSRF field).
FILE_ROUTES = re.compile(r"^(/api/documents/[^/]+/upload|/api/verify|/api/bulk/[^/]+|"
                         r"/documents/[^/]+/upload|/verify)$")
MULTIPART_SLACK = 64 * 1024


class BodyTooLarge(HTTPException):
    """The request body is over its limit (413). An HTTPException, so FastAPI lets it through
    its body parsing instead of calling it a malformed body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is too large (limit {limit} bytes)")
        self.limit = limit


def limit_for(settings: Settings, path: str) -> int:
    """Return the largest body accepted on ``path``."""
    if FILE_ROUTES.match(path):
        return settings.max_upload_bytes + MULTIPART_SLACK
    return settings.max_json_bytes


def too_large_body(limit: int) -> dict:
    """Return the JSON error body of a 413."""
    zh = f"请求体过大（上限 {limit} 字节）"
    en = f"the request body is too large (limit {limit} bytes)"
    return {"code": "too_large", "zh": zh, "en": en, "message": f"{zh} / {en}", "problems": []}


class BodyLimit:
    """ASGI middleware enforcing ``limit_for`` on every request body."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(self.settings, scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await JSONResponse(too_large_body(limit), 413)(scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if started:
                raise
            await JSONResponse(too_large_body(limit), 413)(scope, receive, send)
