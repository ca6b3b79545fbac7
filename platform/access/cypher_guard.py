"""Read-only Cypher for users: Neo4j plans the query, and only a plain read runs.

The guard is Neo4j's own plan of the query, not its text. In the READ transaction the query will
run in, it is first planned with ``EXPLAIN``; it runs only if

- Neo4j classifies it as a read (the summary's ``query_type`` is ``r``) on the session's own
  database (so no ``USE`` of another one, and no administration command, type ``s``);
- every operator of the plan is a known read operator (:data:`READ_OPERATORS`): no ``LoadCSV``,
  no ``Show*``/``Terminate*`` command, no ``CALL ... IN TRANSACTIONS``, no write;
- every ``ProcedureCall`` calls one of :data:`READ_PROCEDURES`.

Neo4j has already decoded escapes, comments, quoting and casing when it plans, so no spelling of
the text hides what the plan does; anything Neo4j cannot plan is refused with its own message.
The READ transaction stays a second guard (Neo4j refuses any write in it), and the local Neo4j
loads only :data:`READ_PROCEDURES` and reads no file or URL (services/neo4j-launcher).

Every answer is bounded: rows (``limit``), bytes (``max_bytes``), nesting depth of values (in
and out), the query's length and its time (a transaction timeout Neo4j enforces).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from gradwalk import errors
from gradwalk.checks import check_int, check_real
from gradwalk.platform.shared.schemas import DEFAULT_LIMIT, DEFAULT_TIMEOUT_S, MAX_LIMIT, MAX_QUERY_CHARS, MAX_TIMEOUT_S

if TYPE_CHECKING:
    import neo4j

    from gradwalk.graph.store.adapter import GraphStore

MAX_DEPTH = 32  # nesting of lists and maps, in parameters and returned values
DEFAULT_MAX_BYTES = 32 << 20
INT64 = (-(2**63), 2**63 - 1)

# The only procedures the endpoint calls (and the only ones the local Neo4j loads): schema listings.
READ_PROCEDURES = frozenset({
    "db.labels",
    "db.relationshipTypes",
    "db.propertyKeys",
    "db.schema.visualization",
    "db.schema.nodeTypeProperties",
    "db.schema.relTypeProperties",
})

# Operators of Neo4j 5's plans that only read the graph or shape rows, by their name without the
# ``@database`` suffix and the ``(All)``/``(Into)``-style variant. Anything else is refused.
READ_OPERATORS = frozenset({
    # scans and seeks
    "AllNodesScan", "NodeByLabelScan", "UnionNodeByLabelsScan", "IntersectionNodeByLabelsScan",
    "SubtractionNodeByLabelsScan", "NodeByIdSeek", "NodeByElementIdSeek", "NodeIndexSeek",
    "NodeUniqueIndexSeek", "NodeIndexSeekByRange", "NodeUniqueIndexSeekByRange", "NodeIndexScan",
    "NodeIndexContainsScan", "NodeIndexEndsWithScan", "MultiNodeIndexSeek", "AssertingMultiNodeIndexSeek",
    "NodeCountFromCountStore", "RelationshipCountFromCountStore",
    *(f"{side}{name}" for side in ("Directed", "Undirected") for name in (
        "RelationshipIndexSeek", "RelationshipIndexSeekByRange", "RelationshipUniqueIndexSeek",
        "RelationshipUniqueIndexSeekByRange", "RelationshipIndexScan", "RelationshipIndexContainsScan",
        "RelationshipIndexEndsWithScan", "RelationshipByIdSeek", "RelationshipByElementIdSeek",
        "AllRelationshipsScan", "RelationshipTypeScan", "UnionRelationshipTypesScan")),
    "AssertingMultiRelationshipIndexSeek", "Argument", "ArgumentTracker", "EmptyRow",
    # patterns and paths
    "Expand", "OptionalExpand", "VarLengthExpand", "BFSPruningVarLengthExpand", "ShortestPath",
    "StatefulShortestPath", "Trail", "Repeat", "ProjectEndpoints", "NullifyMetadata",
    "TriadicSelection", "TriadicBuild", "TriadicFilter",
    # rows
    "ProduceResults", "Filter", "Projection", "Limit", "ExhaustiveLimit", "Skip", "Sort", "PartialSort",
    "Top", "PartialTop", "Distinct", "OrderedDistinct", "EagerAggregation", "OrderedAggregation",
    "Unwind", "Eager", "CacheProperties", "EmptyResult", "Optional", "Anti", "Union", "OrderedUnion",
    "CartesianProduct", "NodeHashJoin", "ValueHashJoin", "NodeLeftOuterHashJoin", "NodeRightOuterHashJoin",
    "Apply", "SemiApply", "AntiSemiApply", "LetSemiApply", "LetAntiSemiApply", "SelectOrSemiApply",
    "SelectOrAntiSemiApply", "LetSelectOrSemiApply", "LetSelectOrAntiSemiApply", "ConditionalApply",
    "AntiConditionalApply", "RollUpApply", "PreserveOrder",
    # checked one by one against READ_PROCEDURES
    "ProcedureCall",
})


@dataclass(frozen=True)
class CypherResult:
    rows: list[dict[str, Any]]
    truncated: bool
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _operators(plan: Mapping[str, Any] | None) -> Iterator[tuple[str, str]]:
    """(operator, details) of every step of a plan, its ``@database`` suffix and variant dropped."""
    todo = [plan] if plan else []
    while todo:
        step = todo.pop()
        name = str(step.get("operatorType", "")).split("@", 1)[0].split("(", 1)[0]
        yield name, str((step.get("args") or {}).get("Details", ""))
        todo.extend(step.get("children") or [])


def check_plan(summary: neo4j.ResultSummary, database: str) -> None:
    """Refuse (NotAllowed) a query whose plan is not a plain read of ``database``."""
    if summary.database != database:
        raise errors.NotAllowed(f"the Cypher endpoint reads database {database!r} only; the query targets "
                                f"{summary.database!r} (no USE of another database)")
    refused = [] if summary.plan else ["no plan"]
    for operator, details in _operators(summary.plan):
        if operator == "ProcedureCall":
            procedure = details.split("(", 1)[0].strip()
            if procedure not in READ_PROCEDURES:
                refused.append(f"procedure {procedure or '?'}")
        elif operator not in READ_OPERATORS:
            refused.append(operator)
    if summary.query_type != "r" or refused:
        what = f" (Neo4j plans it with {', '.join(sorted(set(refused)))})" if refused else ""
        raise errors.NotAllowed(
            f"the Cypher endpoint is read-only: Neo4j classifies this query as "
            f"{_QUERY_TYPES.get(summary.query_type, repr(summary.query_type))}{what}. Not allowed: writes, "
            "LOAD CSV, SHOW/TERMINATE and other administration commands, CALL ... IN TRANSACTIONS, and "
            f"procedures other than {', '.join(sorted(READ_PROCEDURES))}")


_QUERY_TYPES: dict[str | None, str] = {"r": "a read", "rw": "a read and write", "w": "a write", "s": "a schema or administration command"}


def jsonable(value: Any, depth: int = 0) -> Any:
    """A Cypher value as JSON: temporal values as ISO strings, bytes as base64, NaN/inf as strings;
    :class:`errors.LimitExceeded` past :data:`MAX_DEPTH` levels of lists and maps."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (Mapping, list, tuple)) and depth >= MAX_DEPTH:
        raise errors.LimitExceeded(f"a returned value is nested deeper than {MAX_DEPTH} lists or maps: "
                                   "return its parts instead")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    iso = getattr(value, "iso_format", None)
    return iso() if callable(iso) else str(value)


def _check_text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise errors.InvalidInput(f"{what} holds an unpaired surrogate (\\u{ord(text[e.start]):04x} at "
                                  f"position {e.start}): send valid Unicode text") from None


def check_params(value: Any, depth: int = 0, where: str = "params") -> None:
    """Refuse parameters Neo4j cannot take: integers beyond 64 bits, text that is not valid
    Unicode (keys included), nesting deeper than :data:`MAX_DEPTH`."""
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        raise errors.InvalidInput(f"{where}: value {value} does not fit a 64-bit integer")
    elif isinstance(value, (Mapping, list, tuple)):
        if depth >= MAX_DEPTH:
            raise errors.LimitExceeded(f"{where} is nested deeper than {MAX_DEPTH} lists or maps")
        items = value.items() if isinstance(value, Mapping) else enumerate(value)
        for key, item in items:
            if isinstance(key, str):
                _check_text(key, f"a key of {where}")
            check_params(item, depth + 1, f"{where}.{key}" if isinstance(key, str) else f"{where}[{key}]")


def _collect(result: neo4j.Result, limit: int, max_bytes: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` JSON-ready rows and whether more were left; LimitExceeded past ``max_bytes``."""
    rows: list[dict[str, Any]] = []
    size = 0
    for record in result:
        if len(rows) >= limit:
            return rows, True
        row = jsonable(record.data())
        size += len(json.dumps(row, ensure_ascii=False).encode("utf-8", "replace"))
        if size > max_bytes:
            raise errors.LimitExceeded(
                f"the result is larger than the response limit of {max_bytes:,} bytes "
                f"(GRADWALK_API_MAX_RESPONSE_BYTES) after {len(rows)} rows: return fewer rows or columns")
        rows.append(row)
    return rows, False


def run(store: GraphStore, query: str, params: Mapping[str, Any] | None = None, *,
        limit: int = DEFAULT_LIMIT, timeout_s: float = DEFAULT_TIMEOUT_S,
        max_bytes: int = DEFAULT_MAX_BYTES) -> CypherResult:
    """Rows of a read-only query (at most ``limit``; ``truncated`` says whether more were left),
    planned and checked first, cut off by the server after ``timeout_s``."""
    check_int(limit, "limit", low=1, high=MAX_LIMIT)
    if check_real(timeout_s, "timeout_s", high=MAX_TIMEOUT_S) <= 0:
        raise errors.InvalidInput(f"timeout_s must be a number in (0, {MAX_TIMEOUT_S:g}], got {timeout_s!r}")
    if not isinstance(query, str) or not query.strip():
        raise errors.InvalidInput("give a Cypher query")
    if len(query) > MAX_QUERY_CHARS:
        raise errors.LimitExceeded(f"the query is longer than {MAX_QUERY_CHARS:,} characters")
    _check_text(query, "the query")
    if params is not None and (not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params)):
        raise errors.InvalidInput("params must be an object of named parameters")
    params = dict(params or {})
    check_params(params)

    def work(tx: neo4j.Transaction) -> tuple[list[dict[str, Any]], bool]:
        check_plan(tx.run(f"EXPLAIN {query}", params).consume(), store.database)
        return _collect(tx.run(query, params), limit, max_bytes)

    try:
        rows, truncated = store.read_once(work, timeout_s=float(timeout_s))
    except errors.InvalidInput as e:
        code = getattr(e.__cause__, "code", "") or ""
        if "TransactionTimedOut" in code or "Terminated" in code:
            raise errors.InvalidInput(f"the query ran past its {timeout_s:g}s limit: narrow it "
                                      f"(at most {MAX_TIMEOUT_S:g}s)") from e
        raise
    except errors.ServiceUnavailable as e:
        # Neo4j answers some malformed queries (a lexical error in a \u escape) with a
        # Neo.DatabaseError: the query is at fault, not the server.
        code = getattr(e.__cause__, "code", "") or ""
        if code.startswith("Neo.DatabaseError"):
            raise errors.InvalidInput(f"Neo4j could not handle the query ({code}): "
                                      f"{getattr(e.__cause__, 'message', e)}") from e
        raise
    return CypherResult(rows, truncated, limit)
