"""The REST API: ``uvicorn gradwalk.platform.interfaces.api:create_app --factory``.

One GraphStore per process (opened in the lifespan, handed to routes by a dependency); each of its
transactions carries GRADWALK_API_QUERY_TIMEOUT_S to Neo4j. Every route but ``/health`` needs an
API token (``Authorization: Bearer ...``; a version's parquet file also takes a signed link instead), and changes need a curator or admin token (access/auth.py).
Request bodies and the time to an answer are bounded (access/limits.py), and every answer carries a
content security policy and the other browser hardening headers (access/headers.py). gradwalk's
error families map wholesale to their HTTP status with a JSON body ``{"error": {"type",
"message"}}``; so do request validation errors, unknown routes, text Neo4j cannot take (unpaired
surrogates), input nested too deeply to handle and, without internals, unexpected failures.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from gradwalk import __version__, errors
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access.headers import SecurityHeaders, error_headers
from gradwalk.platform.access.limits import RequestLimits
from gradwalk.platform.interfaces import ui
from gradwalk.platform.interfaces.routes import ROUTERS, version_data
from gradwalk.platform.interfaces.routes.deps import StoreDep, require_token
from gradwalk.platform.shared.schemas import ErrorPublic, Health
from gradwalk.settings import Settings, get_settings

log = logging.getLogger(__name__)

STARTUP_WAIT_S = 60.0
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {status: {"model": ErrorPublic} for status in (401, 403, 404, 408, 409, 413, 422, 503)}


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status, headers=headers)


async def _gradwalk_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.GradwalkError)
    if exc.http_status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.Unauthenticated) else None
    return _error(exc.http_status, type(exc).__name__, str(exc), headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors())
    return _error(422, "InvalidInput", f"invalid request: {problems}")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, "HTTPError", str(exc.detail), getattr(exc, "headers", None))


async def _unencodable(request: Request, exc: Exception) -> JSONResponse:
    return _error(422, "InvalidInput", "the request holds text that is not valid Unicode (an unpaired surrogate "
                                       "such as \\ud800): send valid UTF-8")


async def _too_deep(request: Request, exc: Exception) -> JSONResponse:
    return _error(413, "LimitExceeded", "the request is nested too deeply to handle: flatten it")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return _error(500, "InternalError", "the server failed unexpectedly; the API server's log has the details",
                  error_headers())


def _operation_id(route: APIRoute) -> str:
    """Stable operation ids for generated clients: the route's name."""
    return route.name


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API application for ``settings`` (default: the process's settings)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await run_in_threadpool(lambda: GraphStore.connect(settings, wait_s=STARTUP_WAIT_S,
                                                                   timeout_s=settings.api_query_timeout_s))
        app.state.store = store
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="gradwalk",
        version=__version__,
        description="Instruction-data selection (G2IS): pools, targets, selection jobs, versioned datasets "
                    "and read-only Cypher. Send an API token as `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
    )
    app.state.settings = settings
    app.add_exception_handler(errors.GradwalkError, _gradwalk_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(UnicodeError, _unencodable)
    app.add_exception_handler(RecursionError, _too_deep)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(RequestLimits, max_body_bytes=settings.api_max_body_bytes,
                       timeout_s=settings.api_request_timeout_s)
    app.add_middleware(SecurityHeaders)  # outermost: the limits' own answers carry the headers too

    @app.get("/health", response_model=Health, tags=["health"], name="health",
             responses={503: {"model": ErrorPublic}})
    def health(store: StoreDep) -> dict:
        """Answers 200 when the API and its Neo4j database are up (no token needed)."""
        store.ping()
        return {"status": "ok", "version": __version__}

    for router in ROUTERS:
        app.include_router(router, dependencies=[Depends(require_token)], responses=_ERROR_RESPONSES)
    # A version's parquet file: each route checks its own caller (a token, or a signed link that
    # stands in for one: access/links.py).
    app.include_router(version_data.router, responses=_ERROR_RESPONSES)
    ui.mount(app)  # the web pages under /ui sign in with the same tokens (platform/interfaces/ui)
    return app
