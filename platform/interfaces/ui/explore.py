"""Instructions and their neighbourhoods, the Cypher console, and the catalog (pools, targets,
feature runs, graphs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from gradwalk import errors
from gradwalk.graph.knn.records import get_graph, list_graphs
from gradwalk.platform.access import cypher_guard
from gradwalk.platform.catalog import listings
from gradwalk.platform.interfaces.ui import queries, svg
from gradwalk.platform.interfaces.ui.web import Caller, PageRoute, check_csrf, plain, render
from gradwalk.platform.work import feature_runs

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

DOCS = Path(__file__).resolve().parents[3] / "docs" / "cypher.md"
CONSOLE_ROWS = 500
Offset = Annotated[int, Query(ge=0, le=2**40)]


@router.get("/instructions/{instruction_id}", response_class=HTMLResponse)
def instruction_page(request: Request, me: Caller, instruction_id: str, graph: str | None = None) -> HTMLResponse:
    found = queries.instruction(request.app.state.store, instruction_id)
    chosen = graph if graph in found["graphs"] else (found["graphs"][0] if found["graphs"] else None)
    return render(request, "instruction.html", i=found, graph=chosen, neighbours=queries.DEFAULT_NEIGHBOURS,
                  max_neighbours=queries.MAX_NEIGHBOURS)


@router.get("/instructions/{instruction_id}/neighbourhood")
def neighbourhood(request: Request, me: Caller, instruction_id: str, graph: Annotated[str, Query()],
                  n: int = queries.DEFAULT_NEIGHBOURS, floor: float | None = None) -> JSONResponse:
    """The row, its ``n`` (at most 64) strongest neighbours and the edges among them whose cosine is
    at least ``floor`` (in [-1, 1]): what the page draws, again whenever its controls move."""
    return JSONResponse(queries.neighbourhood(request.app.state.store, instruction_id, graph, n, floor))


# --- Cypher console -----------------------------------------------------------------------------

def documented_examples() -> list[dict[str, str]]:
    """Each query of docs/cypher.md with its leading comment as its title."""
    if not DOCS.exists():
        return []
    found = []
    for body in re.findall(r"```cypher\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL):
        first = body.strip().splitlines()[0]
        found.append({"title": first.lstrip("/ ").strip() if first.startswith("//") else first[:60],
                      "query": body.strip()})
    return found


def _param_value(text: str) -> Any:
    text = text.strip()
    if re.fullmatch(r"-?\d{1,18}", text):
        return int(text)
    return text


def parse_params(text: str) -> dict[str, Any]:
    """``name=value`` per line (integers read as integers), as `gradwalk cypher --param` takes them."""
    params = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name.strip()):
            raise errors.InvalidInput(f"parameter line {number}: write it as name=value, got {line.strip()!r}")
        params[name.strip()] = _param_value(value)
    return params


def graph_of(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Nodes (maps with an ``id``) and relationships ([start, type, end] triples) found in the rows."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[tuple[str, str, str], dict[str, Any]] = {}

    def node(value: dict[str, Any]) -> str:
        key = str(value["id"])
        if key not in nodes:
            label = value.get("name") or queries.preview(value.get("messages"), 40) if "messages" in value else key
            nodes[key] = {"id": key, "label": str(label or key)[:48]}
        return key

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if "id" in value:
                node(value)
            return
        if isinstance(value, list):
            if len(value) == 3 and isinstance(value[1], str) and all(isinstance(v, dict) and "id" in v
                                                                     for v in (value[0], value[2])):
                a, b = node(value[0]), node(value[2])
                edges[(a, value[1], b)] = {"source": a, "target": b, "type": value[1]}
                return
            for item in value:
                visit(item)

    for row in rows:
        for value in row.values():
            visit(value)
    return {"nodes": list(nodes.values()), "edges": list(edges.values())}


@router.get("/cypher", response_class=HTMLResponse)
def console(request: Request, me: Caller) -> HTMLResponse:
    return render(request, "console.html", examples=documented_examples(), query="", params="", result=None)


@router.post("/cypher", response_class=HTMLResponse)
def console_run(request: Request, me: Caller, query: Annotated[str, Form(max_length=100_000)],
                params: Annotated[str, Form(max_length=100_000)] = "", csrf: Annotated[str, Form()] = "") -> HTMLResponse:
    """Run a query through the same guard as ``POST /cypher`` (plain reads only)."""
    check_csrf(request, csrf)
    settings = request.app.state.settings
    problem, result, graph = None, None, None
    try:
        result = cypher_guard.run(request.app.state.store, query, parse_params(params), limit=CONSOLE_ROWS,
                            max_bytes=settings.api_max_response_bytes).to_dict()
        graph = graph_of(result["rows"])
    except errors.GradwalkError as e:
        if e.http_status >= 500:
            raise
        problem = str(e)
    columns = list(result["rows"][0]) if result and result["rows"] else []
    return render(request, "console.html", examples=documented_examples(), query=query, params=params,
                  result=result, columns=columns, graph=graph, problem=problem,
                  http_status=200 if problem is None else 400)


# --- catalog ------------------------------------------------------------------------------------

@router.get("/catalog", response_class=HTMLResponse)
def catalog_page(request: Request, me: Caller) -> HTMLResponse:
    store = request.app.state.store
    return render(request, "catalog.html", pools=listings.list_pools(store), targets=listings.list_targets(store),
                  runs=[plain(r) for r in listings.list_feature_runs(store)],
                  graphs=[g.to_dict() for g in list_graphs(store)])


@router.get("/catalog/pools/{name}", response_class=HTMLResponse)
def pool_page(request: Request, me: Caller, name: str, q: str = "", offset: Offset = 0) -> HTMLResponse:
    store = request.app.state.store
    pool = plain(listings.get_pool(store, name))
    mix = queries.pool_mix(store, name)
    charts = {key: svg.bars(_tally(mix, key), ("rows",), title=f"{key} mix", shares=False)
              for key in ("source", "task")}
    rows = queries.pool_rows(store, name, q[:200], offset, 50)
    return render(request, "pool.html", pool=pool, charts=charts, rows=rows, q=q, offset=offset)


def _tally(mix: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    totals: dict[str, int] = {}
    for row in mix:
        totals[row[key]] = totals.get(row[key], 0) + row["n"]
    return [{"name": k, "rows": v} for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]


@router.get("/catalog/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, me: Caller, run_id: str) -> HTMLResponse:
    run = plain(feature_runs.get(request.app.state.store, run_id))
    return render(request, "run.html", run=run)


# Degrees and weights of up to 500 of the graph's rows: enough for a histogram's shape, and
# bounded however large the pool.
_GRAPH_SAMPLE = """
MATCH (:InstructionGraph {id: $g})-[:BUILT_FROM]->(:FeatureRun)-[:OF_POOL]->(p:Pool)
MATCH (i:Instruction)-[:IN_POOL]->(p)
WITH i LIMIT 500
OPTIONAL MATCH (i)-[r:SIMILAR]->() WHERE r.graph = $g
WITH i, collect(r.w) AS ws
RETURN collect(size(ws)) AS degrees, collect(ws[..8]) AS weights
"""


@router.get("/catalog/graphs/{graph_id}", response_class=HTMLResponse)
def graph_page(request: Request, me: Caller, graph_id: str) -> HTMLResponse:
    store = request.app.state.store
    info = get_graph(store, graph_id).to_dict()
    sample = store.read(_GRAPH_SAMPLE, {"g": graph_id})
    found = sample[0] if sample else {"degrees": [], "weights": []}
    degrees = svg.histogram(found["degrees"], title="out-degree (sample of up to 500 rows)")
    weights = svg.histogram([w for ws in found["weights"] for w in ws], title="edge weight, cosine (sample)")
    return render(request, "graph.html", g=info, degrees=degrees, weights=weights)
