"""What one API request may cost: the size of its body and the wall time until its answer starts.

An ASGI middleware, so it holds for every route, uploads included, before any route code runs:
a body past ``max_body_bytes`` (declared or streamed) is answered 413, and a request whose
response has not started after ``timeout_s`` is answered 408; each answer names its limit and
setting. A streamed answer (a dataset export) is bounded by the time to its first byte; its pages
are bounded by the store's per-transaction limit. Work already handed to a thread cannot be
killed from here, which is why the API's Neo4j transactions carry server-side timeouts too.
"""

from __future__ import annotations

import asyncio
import html
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _BodyTooLarge(Exception):
    pass


async def _answer(send: Send, scope: Scope, status: int, kind: str, message: str) -> None:
    """The refusal as the caller reads it: a page for the web pages' addresses (a browser shows
    it after a form's upload), the API's JSON error everywhere else."""
    if scope.get("path", "").startswith("/ui"):
        body = (f"<!doctype html><html lang=\"en\"><meta charset=\"utf-8\"><title>{status} · gradwalk</title>"
                f"<h1>{status}: {html.escape(kind)}</h1><p>{html.escape(message)}</p>"
                "<p><a href=\"/ui/curate\">Back to the curation page</a></p></html>").encode()
        media = b"text/html; charset=utf-8"
    else:
        body, media = json.dumps({"error": {"type": kind, "message": message}}).encode(), b"application/json"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """Bounds every HTTP request's body size and the wall time until its response starts."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, timeout_s: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s

    def _too_large(self) -> str:
        return (f"the request body is larger than {self.max_body_bytes:,} bytes (GRADWALK_API_MAX_BODY_BYTES): "
                "split the file, or import it from the server's import folder")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _answer(send, scope, 413, "LimitExceeded", self._too_large())
            return

        state: dict[str, Any] = {"received": 0, "started": False, "answered": False}
        started = asyncio.Event()

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    if not state["started"]:
                        state["answered"] = True
                        await _answer(send, scope, 413, "LimitExceeded", self._too_large())
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            if state["answered"]:
                return  # this middleware has answered already
            if message["type"] == "http.response.start":
                state["started"] = True
                started.set()
            await send(message)

        task = asyncio.ensure_future(self.app(scope, limited_receive, tracked_send))
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved, never logged twice
        waiter = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait({task, waiter}, timeout=self.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not task.done() and not state["started"]:
            task.cancel()
            state["answered"] = True
            await _answer(send, scope, 408, "TimeLimitExceeded",
                          f"the request ran past the API's limit of {self.timeout_s:g}s "
                          "(GRADWALK_API_REQUEST_TIMEOUT_S): narrow it (a smaller query, file or page)")
            return
        try:
            await task
        except _BodyTooLarge:
            pass
