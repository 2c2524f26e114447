"""What the studio's server holds to whatever comes: a request body over its limit is refused
before it is read, and an unforeseen error is one line, not a traceback."""
from __future__ import annotations

import sys

from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse

from .pieces import MAX_UPLOAD_BYTES

MAX_BODY = MAX_UPLOAD_BYTES + 64 * 1024
MAX_CORPUS_BYTES, MAX_CORPUS_FILES = 64 * 1024 * 1024, 500


class BodyLimit:
    """Refuse a request body over the limit (or of unknown length) before it is read."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT"):
            headers = dict(scope["headers"])
            limit = MAX_CORPUS_BYTES if scope["path"] == "/api/corpora" else MAX_BODY
            length = headers.get(b"content-length")
            error = None
            if length is None and b"transfer-encoding" in headers:
                error = (411, "send a Content-Length")
            elif length is not None and (not length.isdigit() or int(length) > limit):
                error = (413, f"the request is larger than {limit // 1024 // 1024} MB")
            if error:
                await JSONResponse({"error": error[1]}, status_code=error[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)


class OneLineErrors:
    """An unforeseen error: a 500 with one line, and one line in the log, not a traceback
    (Starlette's own handler re-raises, so the server logs it whole). A client that left
    mid-upload is no error of the studio's and is not logged."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        started = False

        async def sending(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            return
        except Exception as exc:
            if scope["type"] != "http":
                raise
            print(f"cadenza studio: {scope['method']} {scope['path']} failed: {exc!r}"[:500], file=sys.stderr)
            if not started:
                await JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)(
                    scope, receive, send)
