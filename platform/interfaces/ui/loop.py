"""The curation loop in the pages: upload a pool or target, start a feature run, build a graph,
follow each with progress and an ETA, cancel it, and read each import's report.

Every change goes through the same service functions as the REST API (``changes.imports``,
``.features``, ``.graphs``), so the page's upload meets the REST upload's limits and a reader's
POST is refused there (403) whatever the page showed. The run and graph pages (explore.py) carry
the live block that ``static/loop.js`` fills from the progress answers here, as the job page does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from gradwalk import errors
from gradwalk.graph.knn.build import DEFAULT_K, DEFAULT_TAU
from gradwalk.graph.knn.records import GraphInfo, get_graph, list_graphs
from gradwalk.platform.catalog import listings
from gradwalk.platform.changes import features, graphs, imports
from gradwalk.platform.interfaces.ui.web import (
    TEMPLATES,
    Caller,
    PageRoute,
    change_context,
    check_csrf,
    form_number,
    plain,
    render,
)
from gradwalk.platform.shared.schemas import FeatureRunPublic, Format, TargetPart
from gradwalk.platform.work import feature_runs
from gradwalk.statuses import FEATURE_RUN_BUSY, FeatureRunStatus, GraphStatus

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

KINDS = {"pools": "pool", "targets": "target"}
# The settings a run's form offers (blank: the worker's defaults), as the REST body names them.
ENGINE_FIELDS = ("lora_r", "lora_alpha", "max_length", "batch_size", "proj_dim")
WARMUP_FIELDS = ("fraction", "epochs", "lr", "examples_per_step")
RUN_ACTIVE = (*FEATURE_RUN_BUSY, FeatureRunStatus.EXTENDING)
GRAPH_ACTIVE = (GraphStatus.BUILDING, GraphStatus.EXTENDING)


def eta_s(since: str | None, done: float, total: float, now: datetime) -> float | None:
    """Seconds left if the rest goes at the pace since ``since`` (an ISO time); None before
    anything is done, after the end, or without a start time."""
    if not since or not 0 < done < total:
        return None
    elapsed = (now - datetime.fromisoformat(since)).total_seconds()
    return max(0.0, elapsed * (total - done) / done)


def run_progress(run: FeatureRunPublic, now: datetime) -> dict[str, Any]:
    """What a run's page shows live: warm-up steps while it warms up, rows otherwise."""
    if run.status == FeatureRunStatus.WARMING_UP:
        unit, done, total = "warm-up steps", run.warmup_steps_done or 0, run.warmup_steps_total or 0
    else:
        unit, done, total = "rows", run.rows_done + run.rows_in_flight, run.rows_total
    return {"status": run.status, "unit": unit, "done": done, "total": total, "error": run.error,
            "eta_s": eta_s(run.stage_at, done, total, now), "active": run.status in RUN_ACTIVE}


def graph_progress(info: GraphInfo, now: datetime) -> dict[str, Any]:
    """What a graph's page shows live: row blocks written of the build's blocks."""
    return {"status": info.status, "unit": "blocks", "done": info.blocks_done, "total": info.blocks,
            "error": info.error, "eta_s": eta_s(info.started_at, info.blocks_done, info.blocks, now),
            "active": info.status in GRAPH_ACTIVE}


# The run and graph pages render their live block from the same answers (templates/_live.html).
TEMPLATES.env.globals.update(
    live_run=lambda run: run_progress(FeatureRunPublic.model_validate(run), datetime.now(UTC)),
    live_graph=lambda g: graph_progress(GraphInfo(**g), datetime.now(UTC)),
    default_models=feature_runs.DEFAULT_MODELS)


@router.get("/curate", response_class=HTMLResponse)
def curate_page(request: Request, me: Caller, run: str = "") -> HTMLResponse:
    """The forms of the loop (curators) and what is being featurised or built now (everyone)."""
    store = request.app.state.store
    runs = listings.list_feature_runs(store)
    built = list_graphs(store)
    return render(request, "curate.html", pools=listings.list_pools(store), targets=listings.list_targets(store),
                  kinds=feature_runs.KINDS, engine_fields=ENGINE_FIELDS, warmup_fields=WARMUP_FIELDS,
                  complete=[r.id for r in runs if r.status == FeatureRunStatus.COMPLETE], chosen=run,
                  k=DEFAULT_K, tau=DEFAULT_TAU, formats=get_args(Format),
                  active_runs=[plain(r) for r in runs if r.status in RUN_ACTIVE],
                  active_graphs=[g.to_dict() for g in built if g.status in GRAPH_ACTIVE])


@router.post("/curate/import")
def upload(request: Request, me: Caller, csrf: Annotated[str, Form()], kind: Annotated[str, Form()],
           name: Annotated[str, Form(max_length=200)], file: Annotated[UploadFile, File()],
           format: Annotated[Format, Form()] = "auto", skip_invalid: Annotated[bool, Form()] = False,
           part: Annotated[TargetPart, Form()] = "validation", test_fraction: Annotated[str, Form()] = "",
           source_label: Annotated[str, Form(max_length=200)] = "") -> RedirectResponse:
    """Import an uploaded file into a pool or target, then show its report."""
    check_csrf(request, csrf)
    fraction = form_number(test_fraction, "test fraction") if test_fraction.strip() else None
    report = imports.import_upload(change_context(request, me), kind, name.strip(), file.file, file.filename, fmt=format,
                                   skip_invalid=skip_invalid, part=part, test_fraction=fraction,
                                   source_label=source_label.strip() or None)
    return RedirectResponse(f"/ui/catalog/{kind}s/{quote(report.name)}/imports#import-{report.import_id}",
                            status_code=303)


@router.get("/catalog/{kinds}/{name}/imports", response_class=HTMLResponse)
def imports_page(request: Request, me: Caller, kinds: str, name: str) -> HTMLResponse:
    """A pool's or target's imports, newest first, each with the lines it skipped and why."""
    if kinds not in KINDS:
        raise errors.NotFound(f"imports are kept for pools and targets, not {kinds!r}")
    found = listings.show_collection(request.app.state.store, KINDS[kinds], name)
    return render(request, "imports.html", c=plain(found), imports=plain(found.imports)[::-1])


def _settings(form: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: form_number(str(form[f]), f) for f in fields if str(form.get(f, "")).strip()}


@router.post("/curate/feature-run")
async def start_run(request: Request, me: Caller) -> RedirectResponse:
    """Start a feature run with the form's main settings; its page follows it."""
    form = await request.form()
    check_csrf(request, str(form.get("csrf", "")))
    engine = _settings(form, ENGINE_FIELDS)
    targets = [str(t) for t in form.getlist("targets")]
    if str(form.get("lora_targets", "")).strip():
        engine["lora_targets"] = [t.strip() for t in str(form["lora_targets"]).split(",") if t.strip()]
    run = await run_in_threadpool(features.start, change_context(request, me), str(form.get("pool", "")), targets,
                                  kind=str(form.get("kind", "gradient")), engine=engine,
                                  warmup=_settings(form, WARMUP_FIELDS))
    return RedirectResponse(f"/ui/catalog/runs/{run.id}", status_code=303)


@router.post("/curate/graph")
def build_graph(request: Request, me: Caller, csrf: Annotated[str, Form()], feature_run: Annotated[str, Form()],
                k: Annotated[str, Form()] = str(DEFAULT_K),
                tau: Annotated[str, Form()] = str(DEFAULT_TAU)) -> RedirectResponse:
    """Queue a graph build of a complete run; its page follows it."""
    check_csrf(request, csrf)
    graph = graphs.build(change_context(request, me), feature_run, form_number(k, "k"), form_number(tau, "tau"))
    return RedirectResponse(f"/ui/catalog/graphs/{graph.id}", status_code=303)


@router.get("/catalog/runs/{run_id}/progress")
def run_progress_page(request: Request, me: Caller, run_id: str) -> JSONResponse:
    return JSONResponse(run_progress(feature_runs.get(request.app.state.store, run_id), datetime.now(UTC)))


@router.get("/catalog/graphs/{graph_id}/progress")
def graph_progress_page(request: Request, me: Caller, graph_id: str) -> JSONResponse:
    return JSONResponse(graph_progress(get_graph(request.app.state.store, graph_id), datetime.now(UTC)))


@router.post("/catalog/runs/{run_id}/cancel")
def cancel_run(request: Request, me: Caller, run_id: str, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    check_csrf(request, csrf)
    features.cancel(change_context(request, me), run_id)
    return RedirectResponse(f"/ui/catalog/runs/{run_id}", status_code=303)


@router.post("/catalog/graphs/{graph_id}/cancel")
def cancel_graph(request: Request, me: Caller, graph_id: str, csrf: Annotated[str, Form()] = "") -> RedirectResponse:
    check_csrf(request, csrf)
    graphs.cancel(change_context(request, me), graph_id)
    return RedirectResponse(f"/ui/catalog/graphs/{graph_id}", status_code=303)
