"""A dataset's versions: rows (ranked, paged, searchable), exports, lineage, diff, and "why these rows"."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from gradwalk import errors
from gradwalk.platform.interfaces.ui import queries, svg
from gradwalk.platform.interfaces.ui.web import Caller, PageRoute, plain, render
from gradwalk.platform.versions import datasets, evaluations, exports

router = APIRouter(prefix="/ui/datasets", route_class=PageRoute, include_in_schema=False)

PAGE_ROWS = 50
DIFF_ROWS = 100
Offset = Annotated[int, Query(ge=0, le=2**40)]


def _version(store, name: str, version: int) -> dict[str, Any]:
    return plain(datasets.describe(store, name, version))


@router.get("/{name}", response_class=HTMLResponse)
def dataset_page(request: Request, me: Caller, name: str) -> HTMLResponse:
    store = request.app.state.store
    found = plain(datasets.versions(store, name))
    compared = [{"version": v["version"], **e} for v in found
                for e in plain(evaluations.list_for(store, name, v["version"])) if e.get("summary")]
    return render(request, "dataset.html", name=name, versions=found,
                  evaluations=sorted(compared, key=lambda e: (e["target"], e["version"])))


def _texts(store, ids: list[str]) -> dict[str, str]:
    rows = store.read("MATCH (i:Instruction) WHERE i.id IN $ids RETURN i.id AS id, i.messages AS m", {"ids": ids})
    return {r["id"]: queries.preview(r["m"], 400) for r in rows}


# Before the version routes: /{name}/diff/... must not be read as version "diff".
@router.get("/{name}/diff/{a}/{b}", response_class=HTMLResponse)
def diff_page(request: Request, me: Caller, name: str, a: int, b: int) -> HTMLResponse:
    """Rows removed from ``a`` and added in ``b``, side by side, by their text (in rank order; the
    id sets are compared here, which is faster than per-row existence checks on 5k-row versions)."""
    store = request.app.state.store
    first, second = _version(store, name, a), _version(store, name, b)
    old, new = queries.version_ids(store, name, a), queries.version_ids(store, name, b)
    kept_old, kept_new = set(old), set(new)
    added_ids = [i for i in new if i not in kept_old]
    removed_ids = [i for i in old if i not in kept_new]
    found = {"a": first["version"], "b": second["version"], "added": len(added_ids), "removed": len(removed_ids),
             "kept": len(new) - len(added_ids)}
    texts = _texts(store, added_ids[:DIFF_ROWS] + removed_ids[:DIFF_ROWS])
    removed = [{"id": i, "text": texts.get(i, "")} for i in removed_ids[:DIFF_ROWS]]
    added = [{"id": i, "text": texts.get(i, "")} for i in added_ids[:DIFF_ROWS]]
    pairs = [(removed[i] if i < len(removed) else None, added[i] if i < len(added) else None)
             for i in range(max(len(removed), len(added)))]
    return render(request, "diff.html", name=name, d=found, pairs=pairs, shown=DIFF_ROWS)


def _lineage(version: dict[str, Any]) -> list[dict[str, str | None]]:
    """version → job → feature run → graph → targets → pool, each with its page where there is
    one, then the evaluations made of the version (this page's section)."""
    steps = [
        ("version", f"{version['dataset']} v{version['version']}", None),
        ("job", version.get("job_id"), f"/ui/jobs/{version.get('job_id')}"),
        ("feature run", version.get("feature_run"), f"/ui/catalog/runs/{version.get('feature_run')}"),
        ("graph", version.get("graph"), f"/ui/catalog/graphs/{version.get('graph')}"),
        ("targets", ", ".join(version.get("targets") or []) or None, None),
        ("pool", version.get("pool"), f"/ui/catalog/pools/{version.get('pool')}"),
        ("evaluations", ", ".join(e["id"] for e in version["lineage"].get("evaluations", [])) or None, "#evaluations"),
    ]
    return [{"kind": kind, "name": value, "url": url if value else None} for kind, value, url in steps]


@router.get("/{name}/{version}", response_class=HTMLResponse)
def version_page(request: Request, me: Caller, name: str, version: int, q: str = "", offset: Offset = 0) -> HTMLResponse:
    store = request.app.state.store
    info = _version(store, name, version)
    if q:
        total, rows = queries.search_version(store, name, version, q[:200], offset, PAGE_ROWS)
    else:
        total, rows = info["size"], datasets.rows(store, name, version, offset=offset, limit=PAGE_ROWS)
    for row in rows:
        row["messages"] = queries.messages(row["messages"])
    others = [v["version"] for v in plain(datasets.versions(store, name)) if v["version"] != version]
    evaluated = plain(evaluations.list_for(store, name, version))
    for e in evaluated:
        figures = (e.get("summary") or {}).get("figures") or {}
        e["charts"] = [svg.evaluation(f, title=f"{svg.key_label(key)} on {e['target']}'s test part")
                       for key, f in figures.items()]
        e["figures"] = figures
    return render(request, "version.html", v=info, rows=rows, total=total, q=q, offset=offset, page=PAGE_ROWS,
                  lineage=_lineage(info), others=others, formats=exports.FORMATS, evaluations=evaluated)


@router.get("/{name}/{version}/export/{fmt}")
def export(request: Request, me: Caller, name: str, version: int, fmt: str) -> Response:
    """A download: JSONL streamed, LLaMA-Factory's JSON file, or the HF save_to_disk folder zipped."""
    store = request.app.state.store
    _version(store, name, version)
    stem = f"{name}-v{version}"
    if fmt == "jsonl":
        lines: Iterator[str] = exports.jsonl_lines(datasets.iter_rows(store, name, version))
        return StreamingResponse(lines, media_type="application/x-ndjson",
                                 headers={"Content-Disposition": f'attachment; filename="{stem}.jsonl"'})
    if fmt not in exports.FORMATS:
        raise errors.NotFound(f"no export format {fmt!r}: choose one of {', '.join(exports.FORMATS)}")
    folder = Path(tempfile.mkdtemp(prefix="gradwalk-ui-export-"))
    try:
        written = datasets.export(store, name, version, fmt, folder / stem if fmt == "hf" else folder)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                archive.write(path, path.relative_to(folder))
        del written
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return Response(buffer.getvalue(), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{stem}-{fmt}.zip"'})


@router.get("/{name}/{version}/why", response_class=HTMLResponse)
def why_page(request: Request, me: Caller, name: str, version: int) -> HTMLResponse:
    """Mix against the pool, budget against selected, similarity to the target, and the walk."""
    store = request.app.state.store
    info = _version(store, name, version)
    job = store.read("MATCH (j:SelectionJob {id: $id}) RETURN j.summary AS s", {"id": info.get("job_id")})
    summary = json.loads(job[0]["s"]) if job and job[0]["s"] else {}
    components = summary.get("components") or []
    mix = queries.mix(store, name, version, info.get("content_hash"), info.get("pool"))
    charts = {key: svg.bars(rows, ("selected", "pool"), title=f"{key} share")
              for key, rows in mix.items()}
    budget = svg.bars([{"name": f"c{c['component']}", "budget": c["budget"], "selected": c["selected"]}
                              for c in components], ("budget", "selected"), title="budget vs selected",
                             shares=False)
    scores = queries.scores(store, name, version)
    similarity = svg.histogram(scores, title="score of each row (similarity to the target's features)") if scores else ""
    return render(request, "why.html", v=info, components=components, charts=charts, budget=budget,
                  similarity=similarity, walked=any(c.get("anchor") is not None for c in components))


@router.get("/{name}/{version}/walk/{component}")
def walk_data(request: Request, me: Caller, name: str, version: int, component: int) -> JSONResponse:
    """One component's walk (steps and the graph's edges among them) for the page's drawing."""
    store = request.app.state.store
    info = _version(store, name, version)
    return JSONResponse(queries.walk(store, name, version, component, info.get("graph")))
