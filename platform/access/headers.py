"""What every answer lets a browser do with it: run only this site's own scripts, never be framed,
never be sniffed into another type, and tell other sites no more than that a visit came from here.

An ASGI middleware, so the headers go on every response (pages, REST, static files, the limits'
own 413 and 408) without a route having to remember them. The pages hold no inline script,
handler or style: the policy allows this origin's files only, and the one rule cytoscape.js
(``static/vendor``) injects as a ``<style>``, by its hash. FastAPI's API docs (``/docs``,
``/redoc``) are its own pages, drawn from a CDN by an inline script: their answer is read whole (a
few kB) and the policy names exactly those inline scripts by hash, and the CDN, nothing more.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def source_hash(source: bytes) -> str:
    """A CSP source that allows exactly the inline script or style ``source``."""
    return f"'sha256-{base64.b64encode(hashlib.sha256(source).digest()).decode()}'"


_CYTOSCAPE_RULE = b".__________cytoscape_container { position: relative; }"
POLICY = (f"default-src 'self'; script-src 'self'; style-src 'self' {source_hash(_CYTOSCAPE_RULE)}; "
          "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
          "frame-ancestors 'none'")
_CDN = "https://cdn.jsdelivr.net"
_DOCS_POLICY = (f"default-src 'self'; script-src 'self' {_CDN} {{scripts}}; style-src 'self' {_CDN} "
                "https://fonts.googleapis.com 'unsafe-inline'; font-src 'self' https://fonts.gstatic.com; "
                "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; worker-src 'self' blob:; "
                "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)
HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


def error_headers() -> dict[str, str]:
    """The headers, for the one answer this middleware never sees: the outermost 500, which
    Starlette's server-error handler sends itself after the app (and so this layer) has raised."""
    return {name.decode(): value.decode() for name, value in _with([], POLICY)}


def docs_policy(body: bytes) -> str:
    """The policy of one docs page: its own inline scripts by SHA-256, the CDN, nothing else inline."""
    return _DOCS_POLICY.format(scripts=" ".join(source_hash(s) for s in _INLINE_SCRIPT.findall(body)))


class SecurityHeaders:
    """Adds the content security policy, no framing, nosniff and same-origin referrers to every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] in DOCS_PATHS:
            await self._docs(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = _with(message.get("headers", []), POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _docs(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        body = b""

        async def hold(message: Message) -> None:
            nonlocal start, body
            if message["type"] == "http.response.start":
                start = message
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                start["headers"] = _with(start.get("headers", []), docs_policy(body))
                await send(start)
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, hold)


def _with(headers: list[tuple[bytes, bytes]], policy: str) -> list[tuple[bytes, bytes]]:
    ours = {name for name, _ in HEADERS} | {b"content-security-policy"}
    kept = [(name, value) for name, value in headers if name.lower() not in ours]
    return [*kept, (b"content-security-policy", policy.encode()), *HEADERS]
