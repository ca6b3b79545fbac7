"""The reads the pages need beyond the service functions: counts, an instruction's neighbourhood,
a version's rows by text, its walk, and its mix against the pool's.

Every query is bounded (LIMIT, or a count) and starts from an indexed key (an instruction id, a
dataset name, a graph id), so a page stays fast on a 100k-row pool (benchmarks/ui_pages.py).
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

from gradwalk import errors
from gradwalk.checks import check_int, check_real
from gradwalk.graph.store.adapter import GraphStore

DEFAULT_NEIGHBOURS = 12
MAX_NEIGHBOURS = 64
LINES_PER_NEIGHBOUR = 1  # without a floor, the neighbourhood draws about this many edges per neighbour
LABEL_CHARS, HOVER_CHARS = 40, 280  # a graph node's label, and its text when hovered

_COUNTS = """
RETURN COUNT { (:Pool) } AS pools, COUNT { (:Target) } AS targets, COUNT { (:FeatureRun) } AS feature_runs,
       COUNT { (:InstructionGraph) } AS graphs, COUNT { (:SelectionJob) } AS jobs,
       COUNT { (:Dataset)-[:HAS_VERSION]->() } AS versions, COUNT { (d:Dataset) WHERE EXISTS { (d)-[:HAS_VERSION]->() } } AS datasets
"""

_INSTRUCTION = """
MATCH (i:Instruction {id: $id})
RETURN i.id AS id, i.messages AS messages, i.source AS source, i.task AS task,
       [(i)-[:IN_POOL]->(p:Pool) | p.name] AS pools,
       [(v:DatasetVersion)-[c:CONTAINS]->(i) WHERE v.version IS NOT NULL |
        {dataset: v.dataset, version: v.version, rank: c.rank, component: c.component, step: c.step,
         reached_by: c.reached_by}] AS versions,
       [(g:InstructionGraph)-[:BUILT_FROM]->(:FeatureRun)-[:OF_POOL]->(:Pool)<-[:IN_POOL]-(i) WHERE g.status = 'ready' | g.id]
         AS graphs
"""

# The row, its n strongest out-neighbours in one graph (ties by id, so a redraw is the same) and
# every edge among them, read from the rows' own lists: at most (n + 1) × k edges.
_NEIGHBOURHOOD = """
MATCH (i:Instruction {id: $id})
OPTIONAL MATCH (i)-[r:SIMILAR {graph: $graph}]->(n:Instruction)
WITH i, n, r.w AS w ORDER BY w DESC, n.id LIMIT $n
WITH i, [x IN collect({node: n, w: w}) WHERE x.node IS NOT NULL] AS near
WITH i, near, [i] + [x IN near | x.node] AS members
RETURN i.messages AS text, [x IN near | {id: x.node.id, text: x.node.messages, w: x.w}] AS near,
       COLLECT { UNWIND members AS a
                 MATCH (a)-[r:SIMILAR {graph: $graph}]->(b:Instruction) WHERE b IN members
                 RETURN {source: a.id, target: b.id, w: r.w} } AS edges
"""

_VERSION_SEARCH = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})-[c:CONTAINS]->(i)
WHERE toLower(i.messages) CONTAINS toLower($text)
WITH c, i ORDER BY c.rank
WITH collect({rank: c.rank, instruction_id: i.id, messages: i.messages, component: c.component,
              step: c.step, score: c.score, predecessor: c.predecessor, reached_by: c.reached_by}) AS found
RETURN size(found) AS total, found[$offset..$offset + $limit] AS rows
"""

_WALK = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})-[c:CONTAINS]->(i)
WHERE c.component = $component
RETURN c.step AS step, i.id AS id, i.messages AS messages, c.predecessor AS predecessor, c.reached_by AS reached_by
ORDER BY step LIMIT $limit
"""

_MIX = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})-[:CONTAINS]->(i)
RETURN coalesce(i.source, '(none)') AS source, coalesce(i.task, '(none)') AS task, count(*) AS n
"""

_POOL_MIX = """
MATCH (:Pool {name: $pool})<-[:IN_POOL]-(i:Instruction)
RETURN coalesce(i.source, '(none)') AS source, coalesce(i.task, '(none)') AS task, count(*) AS n
"""

# In the pool's stored order (no sort over 100k rows): a page or a search stops at its LIMIT.
_POOL_ROWS = """
MATCH (:Pool {name: $pool})<-[:IN_POOL]-(i:Instruction)
WHERE $text = '' OR toLower(i.messages) CONTAINS toLower($text)
RETURN i.id AS id, i.messages AS messages, i.source AS source SKIP $offset LIMIT $limit
"""

_POOL_KEY = "MATCH (p:Pool {name: $pool}) RETURN p.last_import_id AS import_id, p.size AS size"

# From each walked row out along its own edges (never a scan of the graph's edges).
_WALK_EDGES = """
UNWIND $ids AS id
MATCH (a:Instruction {id: id})-[r:SIMILAR]->(b:Instruction)
WHERE r.graph = $graph AND b.id IN $ids
RETURN a.id AS source, b.id AS target, r.w AS w
"""

# One record holding the list: 5,000 records cost the driver several times more than one list.
_VERSION_IDS = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})-[c:CONTAINS]->(i)
WITH i.id AS id ORDER BY c.rank
RETURN collect(id) AS ids
"""

_SCORES = """
MATCH (:Dataset {name: $dataset})-[:HAS_VERSION]->(v:DatasetVersion {version: $version})-[c:CONTAINS]->()
WHERE c.score IS NOT NULL
RETURN collect(c.score) AS scores
"""


def messages(raw: Any) -> list[dict[str, Any]]:
    """An instruction's stored messages (JSON text) as a list; unreadable text as one message."""
    if isinstance(raw, list):
        return raw
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return [{"role": "?", "content": str(raw)}]
    return value if isinstance(value, list) else [{"role": "?", "content": str(value)}]


def preview(raw: Any, chars: int = 140) -> str:
    """The first user turn of an instruction, shortened for a list or a graph label."""
    turns = messages(raw)
    first = next((m for m in turns if m.get("role") == "user"), turns[0] if turns else {})
    text = " ".join(str(first.get("content", "")).split())
    return text if len(text) <= chars else text[: chars - 1] + "…"


def counts(store: GraphStore) -> dict[str, int]:
    return store.read(_COUNTS)[0]


def instruction(store: GraphStore, instruction_id: str) -> dict[str, Any]:
    found = store.read(_INSTRUCTION, {"id": instruction_id})
    if not found:
        raise errors.NotFound(f"no instruction {instruction_id!r}")
    row = found[0]
    row["messages"] = messages(row["messages"])
    row["versions"] = sorted(row["versions"], key=lambda v: (v["dataset"], v["version"]))
    return row


def node_text(raw: Any) -> dict[str, str]:
    """A graph node's short label and the longer text shown when it is hovered, one way for every drawing."""
    return {"label": preview(raw, LABEL_CHARS), "text": preview(raw, HOVER_CHARS)}


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _pairs(edges: list[dict[str, Any]], ids: set[str]) -> dict[tuple[str, str], float]:
    """The edges among ``ids`` as undirected pairs: an edge each way is one line (the cosine is symmetric)."""
    pairs: dict[tuple[str, str], float] = {}
    for e in edges:
        if e["source"] in ids and e["target"] in ids:
            key = _pair(e["source"], e["target"])
            pairs[key] = max(e["w"], pairs.get(key, e["w"]))
    return pairs


def _ring(ids: list[str], pairs: dict[tuple[str, str], float]) -> list[str]:
    """The neighbours in the order they sit around the row: the strongest first, then each time the
    one left most similar to the last placed (stronger first on ties), so most lines join nodes side
    by side instead of crossing the middle. From every pair, so moving the floor never moves a node."""
    left, ring = list(ids[1:]), ids[:1]
    while left:
        last = ring[-1]
        ring.append(max(left, key=lambda x: pairs.get(_pair(last, x), -2.0)))
        left.remove(ring[-1])
    return ring


def neighbourhood(store: GraphStore, instruction_id: str, graph: str, n: int = DEFAULT_NEIGHBOURS,
                  floor: float | None = None) -> dict[str, Any]:
    """The row, its ``n`` strongest neighbours (each with its cosine to the row), and one edge per pair
    of neighbours whose cosine is at least ``floor``. Without a floor, about the strongest
    ``LINES_PER_NEIGHBOUR × n`` pairs: all of a k = 64 graph's edges among 65 rows draw a grey disc."""
    n = check_int(n, "n", low=1, high=MAX_NEIGHBOURS)
    if floor is not None:
        floor = check_real(floor, "floor", low=-1.0, high=1.0)
    found = store.read(_NEIGHBOURHOOD, {"id": instruction_id, "graph": graph, "n": n})
    if not found:
        raise errors.NotFound(f"no instruction {instruction_id!r}")
    row = found[0]
    near = [{"id": x["id"], "w": x["w"], **node_text(x["text"])} for x in row["near"]]
    pairs = _pairs(row["edges"], {x["id"] for x in near})
    strongest = sorted(pairs.values(), reverse=True)
    if floor is None:
        weakest_kept = strongest[min(len(strongest), LINES_PER_NEIGHBOUR * n) - 1] if strongest else -1.0
        floor = math.floor(weakest_kept * 1000) / 1000  # a step of the page's slider
    return {"center": instruction_id, "graph": graph, "n": n, "floor": floor,
            "nodes": [{"id": instruction_id, "w": None, **node_text(row["text"])}, *near],
            "edges": [{"source": a, "target": b, "w": w} for (a, b), w in sorted(pairs.items()) if w >= floor],
            "ring": _ring([x["id"] for x in near], pairs), "pairs": len(pairs),
            "range": [strongest[-1], strongest[0]] if strongest else None}


def search_version(store: GraphStore, dataset: str, version: int, text: str, offset: int,
                   limit: int) -> tuple[int, list[dict[str, Any]]]:
    found = store.read(_VERSION_SEARCH, {"dataset": dataset, "version": version, "text": text,
                                         "offset": offset, "limit": limit})[0]
    return found["total"], found["rows"]


def walk(store: GraphStore, dataset: str, version: int, component: int, graph: str | None,
         limit: int = 200) -> dict[str, Any]:
    """One component's walk in step order, with the graph's edges among its rows (one per pair)."""
    steps = store.read(_WALK, {"dataset": dataset, "version": version, "component": component, "limit": limit})
    ids = [s["id"] for s in steps]
    edges = _pairs(store.read(_WALK_EDGES, {"graph": graph, "ids": ids}), set(ids)) if graph and ids else {}
    return {"steps": [{**s, **node_text(s.pop("messages"))} for s in steps],
            "edges": [{"source": a, "target": b, "w": w} for (a, b), w in sorted(edges.items())]}


# A published version never changes its rows, and a pool's rows change only with an import, so
# their tallies are kept per (version, content hash) and per (pool, last import, size).
@functools.lru_cache(maxsize=64)
def _version_mix(store: GraphStore, dataset: str, version: int, content_hash: str | None) -> tuple:
    return tuple(tuple(sorted(r.items())) for r in store.read(_MIX, {"dataset": dataset, "version": version}))


@functools.lru_cache(maxsize=32)
def _pool_mix(store: GraphStore, pool: str, import_id: str | None, size: int | None) -> tuple:
    return tuple(tuple(sorted(r.items())) for r in store.read(_POOL_MIX, {"pool": pool}))


def pool_mix(store: GraphStore, pool: str) -> list[dict[str, Any]]:
    """Rows per (source, task) of the pool, from the cache while the pool has had no new import."""
    key = store.read(_POOL_KEY, {"pool": pool})
    if not key:
        return []
    return [dict(r) for r in _pool_mix(store, pool, key[0]["import_id"], key[0]["size"])]


def version_ids(store: GraphStore, dataset: str, version: int) -> list[str]:
    return store.read(_VERSION_IDS, {"dataset": dataset, "version": version})[0]["ids"]


def scores(store: GraphStore, dataset: str, version: int) -> list[float]:
    return store.read(_SCORES, {"dataset": dataset, "version": version})[0]["scores"]


def mix(store: GraphStore, dataset: str, version: int, content_hash: str | None,
        pool: str | None) -> dict[str, list[dict[str, Any]]]:
    """Source and task shares of the version against its pool's, largest first."""
    mine = [dict(r) for r in _version_mix(store, dataset, version, content_hash)]
    theirs = pool_mix(store, pool) if pool else []
    out = {}
    for key in ("source", "task"):
        rows = []
        for name in {r[key] for r in mine} | {r[key] for r in theirs}:
            rows.append({"name": name, "selected": sum(r["n"] for r in mine if r[key] == name),
                         "pool": sum(r["n"] for r in theirs if r[key] == name)})
        out[key] = sorted(rows, key=lambda r: (-r["selected"], -r["pool"], r["name"]))
    return out


def pool_rows(store: GraphStore, pool: str, text: str, offset: int, limit: int) -> list[dict[str, Any]]:
    rows = store.read(_POOL_ROWS, {"pool": pool, "text": text, "offset": offset, "limit": limit})
    return [{**r, "messages": messages(r["messages"])} for r in rows]

