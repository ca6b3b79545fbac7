"""Sign-in, overview and jobs: the pages a curator watches while work runs."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from gradwalk import errors
from gradwalk.graph.selection.registry import METHODS
from gradwalk.platform.access import sessions
from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import jobs as job_changes
from gradwalk.platform.interfaces.ui import queries
from gradwalk.platform.interfaces.ui.web import (
    COOKIE,
    RIGHTS,
    Caller,
    PageRoute,
    change_context,
    check_csrf,
    form_number,
    plain,
    render,
)
from gradwalk.platform.local.stack import local_services
from gradwalk.platform.versions import datasets
from gradwalk.platform.work import jobs
from gradwalk.statuses import JobStatus

log = logging.getLogger(__name__)
router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path on this site under /ui (no open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui/"


@router.get("/signin", response_class=HTMLResponse)
def signin_page(request: Request, next: str | None = None, failed: bool = False) -> HTMLResponse:
    return render(request, "signin.html", next=_safe_next(next), failed=failed,
                  http_status=401 if failed else 200)


@router.post("/signin")
def signin(request: Request, token: Annotated[str, Form(max_length=200)],
           next: Annotated[str, Form(max_length=2000)] = "/ui/") -> Any:
    """Start a server-side session for a live token; the cookie gets the session's id, not the token."""
    age = request.app.state.settings.ui_session_age_s
    try:
        session, principal = sessions.start(request.app.state.store, token.strip(), age)
    except errors.Unauthenticated:
        request.state.principal = None
        return render(request, "signin.html", http_status=401, next=_safe_next(next), failed=True)
    answer = RedirectResponse(_safe_next(next), status_code=303)
    answer.set_cookie(COOKIE, session, httponly=True, samesite="strict", path="/ui",
                      secure=request.url.scheme == "https", max_age=age)
    log.info("ui sign-in by token %r", principal.name)
    return answer


@router.post("/signout")
def signout(request: Request, me: Caller, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    """End the session on the server (a copied cookie stops working too) and drop the cookie."""
    check_csrf(request, csrf)
    sessions.end(request.app.state.store, request.cookies.get(COOKIE))
    answer = RedirectResponse("/ui/signin", status_code=303)
    answer.delete_cookie(COOKIE, path="/ui")
    return answer


def _service_states(request: Request) -> list[dict[str, Any]]:
    """Each local service, whether its process runs, and where (this API answers: it is up)."""
    states = []
    for service in local_services(request.app.state.settings):
        status = service.status()
        running = status.running or service.name == "api"
        states.append({"name": status.name, "state": "running" if running else "not running",
                       "address": status.address})
    return states


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, me: Caller) -> HTMLResponse:
    store = request.app.state.store
    counts = await run_in_threadpool(queries.counts, store)
    latest = [plain(j) for j in await run_in_threadpool(lambda: jobs.list_jobs(store, limit=10))]
    services = await run_in_threadpool(_service_states, request)
    return render(request, "overview.html", counts=counts, jobs=latest, services=services,
                  rights=RIGHTS[me.role])


@router.get("/jobs", response_class=HTMLResponse)
def job_list(request: Request, me: Caller, status: str | None = None) -> HTMLResponse:
    store = request.app.state.store
    found = [plain(j) for j in jobs.list_jobs(store, status=status or None, limit=200)]
    return render(request, "jobs.html", jobs=found, status=status or "",
                  pools=listings.list_pools(store), targets=listings.list_targets(store),
                  runs=[plain(r) for r in listings.list_feature_runs(store)], methods=list(METHODS.values()),
                  graphs=_ready_graphs(store))


def _ready_graphs(store) -> list[str]:
    return [r["id"] for r in store.read(
        "MATCH (g:InstructionGraph {status: 'ready'}) RETURN g.id AS id ORDER BY g.id LIMIT 500")]


@router.post("/jobs")
def submit(request: Request, me: Caller, csrf: Annotated[str, Form()], pool: Annotated[str, Form()],
           targets: Annotated[list[str], Form()], method: Annotated[str, Form()], dataset: Annotated[str, Form()],
           ratio: Annotated[str, Form()] = "0.05", graph: Annotated[str, Form()] = "",
           feature_run: Annotated[str, Form()] = "", delta: Annotated[str, Form()] = "",
           seed: Annotated[str, Form()] = "") -> RedirectResponse:
    """Submit a selection job from the form (curator or admin; the server checks, not the page)."""
    check_csrf(request, csrf)
    params: dict[str, Any] = {"ratio": form_number(ratio, "ratio")}
    if delta.strip():
        params["delta"] = form_number(delta, "delta")
    if seed.strip():
        params["seed"] = form_number(seed, "seed")
    request_ = jobs.JobRequest(pool=pool, targets=targets, method=method, dataset=dataset.strip(), params=params,
                               graph=graph or None, feature_run=feature_run or None)
    job_id = job_changes.submit(change_context(request, me), request_).id
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


def _job(store, job_id: str) -> dict[str, Any]:
    job = plain(jobs.get(store, job_id))
    if isinstance(job.get("summary"), str):
        job["summary"] = json.loads(job["summary"])
    return job


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, me: Caller, job_id: str) -> HTMLResponse:
    job = _job(request.app.state.store, job_id)
    mine = me.role == "admin" or (me.role == "curator" and job.get("created_by") == me.name)
    return render(request, "job.html", job=job, may_cancel=mine and job["status"] in (JobStatus.QUEUED, JobStatus.RUNNING),
                  error=plain_error(job.get("error")))


@router.get("/jobs/{job_id}/progress")
def job_progress(request: Request, me: Caller, job_id: str) -> JSONResponse:
    """What the job page polls: status, stage, progress (0..1), and where to go when done."""
    job = _job(request.app.state.store, job_id)
    done = job.get("dataset") and job.get("version")
    return JSONResponse({"status": job["status"], "stage": job.get("stage"), "progress": job.get("progress") or 0,
                         "error": plain_error(job.get("error")),
                         "version_url": f"/ui/datasets/{job['dataset']}/{job['version']}" if done else None})


@router.post("/jobs/{job_id}/cancel")
def cancel(request: Request, me: Caller, job_id: str, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    check_csrf(request, csrf)
    job_changes.cancel(change_context(request, me), job_id)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


PLAIN_ERRORS = (
    ("ServiceUnavailable", ("A service the job needs (Neo4j or Redis) could not be reached; it was retried "
                            "and then given up. Check `gradwalk services status` and submit again.")),
    ("MemoryError", "The worker ran out of memory: use a smaller pool or a smaller ratio."),
    ("cancel", "The job was cancelled."),
)


def plain_error(error: str | None) -> str | None:
    """A job's error in plain words: known failures explained, the recorded message kept after."""
    if not error:
        return None
    for marker, words in PLAIN_ERRORS:
        if marker in error:
            return f"{words} (recorded: {error})"
    return error


@router.get("/datasets", response_class=HTMLResponse)
def dataset_list(request: Request, me: Caller) -> HTMLResponse:
    return render(request, "datasets.html", datasets=plain(datasets.list_datasets(request.app.state.store)))


@router.get("/version-of-job")
def version_of_job(request: Request, me: Caller, job: Annotated[str, Query()]) -> RedirectResponse:
    found = _job(request.app.state.store, job)
    if not found.get("version"):
        raise errors.NotFound(f"job {job} has published no version (it is {found['status']})")
    return RedirectResponse(f"/ui/datasets/{found['dataset']}/{found['version']}", status_code=303)
