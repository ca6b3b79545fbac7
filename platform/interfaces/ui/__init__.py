"""The web pages under ``/ui``, served by the API's own FastAPI app (no Node build step).

Server-rendered Jinja2 templates, a little vanilla JavaScript for the live parts (job, feature run
and graph build progress, graphs), and cytoscape.js vendored under ``static/vendor``
(static/vendor/VENDORED.json says which version, from where, and its SHA-256). The pages read
through the same service functions as the REST API and sign in with the same API tokens (web.py
keeps a server-side session's id, never the token, in an HttpOnly cookie).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from gradwalk.platform.interfaces.ui import explore, loop, pages, versions
from gradwalk.platform.interfaces.ui.web import HERE, PageRoute, render


def mount(app: FastAPI) -> None:
    """Add the pages, their static files and a page-shaped 404 for unknown /ui addresses."""
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    for router in (pages.router, versions.router, explore.router, loop.router):
        app.include_router(router)

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)

    async def unknown(request: Request, rest: str) -> HTMLResponse:
        return render(request, "error.html", http_status=404, title="Not found",
                      message=f"There is no page at {request.url.path}.")

    app.router.routes.append(PageRoute("/ui/{rest:path}", unknown, methods=["GET"], include_in_schema=False))
