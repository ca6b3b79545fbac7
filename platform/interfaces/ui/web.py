"""What every page shares: templates, the signed-in caller from the cookie, CSRF, and error pages.

Signing in with an API token starts a server-side session (platform/access/sessions.py); the
browser keeps only its random id, in an HttpOnly, SameSite=Strict cookie (Secure over https), so
page scripts never see it, no other site's form can send it, and the token itself never leaves
the sign-in form. Forms that change something also carry a CSRF value derived from the session
id (sha256 of a fixed label and the id): another site cannot read the cookie, so it cannot make
the value.

Pages never show a traceback: a gradwalk error becomes a page in plain words with its HTTP status
(404 for an unknown id), a missing, expired or revoked session sends the browser to the sign-in page,
and anything unexpected is logged and shown as a short apology.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from gradwalk import __version__, errors
from gradwalk.platform.access import auth, sessions
from gradwalk.platform.changes import Context

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
COOKIE = "gradwalk_session"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
RIGHTS = {
    "reader": ["browse pools, targets, runs, graphs, jobs and datasets", "export versions",
               "run read-only Cypher"],
    "curator": ["everything a reader may", "import pools and targets, start feature runs and graph builds",
                "submit selection jobs", "cancel and retire what this token made"],
    "admin": ["everything a curator may", "cancel and retire anyone's jobs and versions"],
}


def plain(value: Any) -> Any:
    """A service result as plain data, whether it is a pydantic model or already a dict."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def csrf_for(session: str) -> str:
    return hashlib.sha256(b"gradwalk-ui-csrf\0" + session.encode("utf-8")).hexdigest()


class SignInNeeded(Exception):
    """The browser has no live session: send it to the sign-in page, back here afterwards."""


def caller(request: Request) -> auth.Principal:
    """Who the cookie's session signed in as; :class:`SignInNeeded` when there is none or it is dead."""
    try:
        principal = sessions.principal(request.app.state.store, request.cookies.get(COOKIE))
    except errors.Unauthenticated:
        raise SignInNeeded() from None
    request.state.principal = principal
    return principal


Caller = Annotated[auth.Principal, Depends(caller)]


def check_csrf(request: Request, sent: str | None) -> None:
    """:class:`errors.NotAllowed` unless ``sent`` is the value made for the cookie's session."""
    session = request.cookies.get(COOKIE) or ""
    if not session or not sent or not hmac.compare_digest(sent, csrf_for(session)):
        raise errors.NotAllowed("the form's security value is missing or stale: reload the page and try again")


def change_context(request: Request, me: auth.Principal) -> Context:
    """A change asked for by the signed-in token: the service layer checks its role."""
    return Context(request.app.state.store, request.app.state.settings, me)


def form_number(text: str, name: str) -> Any:
    """A number typed into a form (an int when it reads as one); InvalidInput naming the field."""
    try:
        return int(text) if text.strip().lstrip("-").isdigit() else float(text)
    except ValueError:
        raise errors.InvalidInput(f"{name} must be a number, got {text!r}") from None


def can(principal: auth.Principal | None, role: str) -> bool:
    return principal is not None and auth.ROLES.index(principal.role) >= auth.ROLES.index(role)


def render(request: Request, template: str, http_status: int = 200, **context: Any) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    session = request.cookies.get(COOKIE)
    return TEMPLATES.TemplateResponse(request, template, {
        "me": principal, "csrf": csrf_for(session) if session and principal else "", "version": __version__,
        "can_change": can(principal, "curator"), **context}, status_code=http_status)


def _error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", http_status=status, title=title, message=message)


def _to_sign_in(request: Request) -> RedirectResponse:
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    answer = RedirectResponse(f"/ui/signin?next={quote(back, safe='')}", status_code=303)
    if request.cookies.get(COOKIE):
        answer.delete_cookie(COOKIE, path="/ui")
    return answer


TITLES = {404: "Not found", 403: "Not allowed", 409: "Conflict", 422: "Bad input", 413: "Too large",
          408: "Too slow", 503: "A service is down"}


class PageRoute(APIRoute):
    """A route whose failures are pages: sign-in for a dead session, a plain-words page otherwise."""

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                return _to_sign_in(request)
            except errors.GradwalkError as e:
                status = e.http_status
                if status >= 500:
                    log.error("%s %s failed: %s", request.method, request.url.path, e)
                return _error_page(request, status, TITLES.get(status, "Something failed"), str(e))
            except RequestValidationError as e:
                problems = "; ".join(f"{'.'.join(str(p) for p in x.get('loc', ()))}: {x.get('msg')}" for x in e.errors())
                return _error_page(request, 422, "Bad input", problems)
            except Exception:  # a page never shows a traceback; the log keeps it
                log.exception("%s %s failed unexpectedly", request.method, request.url.path)
                return _error_page(request, 500, "Something failed",
                                   "The server failed unexpectedly; the API server's log has the details.")

        return page
