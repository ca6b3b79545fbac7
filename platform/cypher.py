"""Read-only Cypher for users: a query and its parameters, a row limit and a timeout.

Two guards, either of which alone would refuse a write:

1. The query runs in a READ-mode transaction (:meth:`GraphStore.read`): Neo4j itself refuses
   any write in it, wherever the write hides (subqueries, procedures).
2. Before that, a scan of the query's words (outside strings, comments and quoted names) refuses
   what reads can still do harm with or what is not a plain read: write clauses, ``LOAD CSV``
   (server files and URLs), ``USE`` (another database), administration commands (``SHOW``
   beyond indexes and constraints, ``TERMINATE``, ``GRANT``, ...), ``CALL ... IN TRANSACTIONS``,
   and every procedure except a few schema listings (so no ``dbms.*``, ``db.create*``, ``apoc.*``).

Results come back as JSON-ready rows.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from gradwalk import errors

if TYPE_CHECKING:
    from gradwalk.graph.store import GraphStore

DEFAULT_LIMIT = 1_000
MAX_LIMIT = 10_000
DEFAULT_TIMEOUT_S = 10.0
MAX_TIMEOUT_S = 60.0
MAX_QUERY_CHARS = 100_000
INT64 = (-(2**63), 2**63 - 1)

READ_PROCEDURES = frozenset({
    "db.labels",
    "db.relationshipTypes",
    "db.propertyKeys",
    "db.schema.visualization",
    "db.schema.nodeTypeProperties",
    "db.schema.relTypeProperties",
})

_WRITE_WORDS = frozenset({"CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "FOREACH", "INSERT"})
_ADMIN_WORDS = frozenset({
    "LOAD", "USE", "DROP", "ALTER", "GRANT", "DENY", "REVOKE", "RENAME", "START", "STOP",
    "TERMINATE", "TRANSACTION", "TRANSACTIONS", "ENABLE", "DEALLOCATE", "REALLOCATE",
    "APOC", "DBMS",
})
_CHECKED = _WRITE_WORDS | _ADMIN_WORDS | {"SHOW", "CALL"}
_SHOWABLE = frozenset({"INDEX", "INDEXES", "CONSTRAINT", "CONSTRAINTS"})
_QUOTED = "_quoted_"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LINE_BREAK = re.compile("[\n\r\v\f\x85\u2028\u2029]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\s*\.\s*[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class CypherResult:
    rows: list[dict[str, Any]]
    truncated: bool
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scrub(query: str) -> str:
    """The query with string literals emptied, comments blanked and `quoted names` replaced by a
    plain placeholder name, so keywords are only found where Cypher reads them as keywords."""
    out: list[str] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if query.startswith("//", i):
            # Neo4j ends a line comment at a lone \r too (measured: "WITH 1 AS a // x\rCALL
            # dbms.listConfig() ..." runs the call), so the comment ends at the first line break of
            # any kind: ending it early only makes the scan stricter.
            found = _LINE_BREAK.search(query, i)
            i = n if found is None else found.start()
            out.append(" ")
        elif query.startswith("/*", i):
            end = query.find("*/", i + 2)
            if end < 0:
                raise errors.InvalidInput("the query has a /* comment that is never closed")
            i = end + 2
            out.append(" ")
        elif ch in "'\"":
            j = i + 1
            while j < n and query[j] != ch:
                j += 2 if query[j] == "\\" else 1
            if j >= n:
                raise errors.InvalidInput(f"the query has a string ({ch}) that is never closed")
            i = j + 1
            out.append("''")
        elif ch == "`":
            j = i + 1
            while True:
                j = query.find("`", j)
                if j < 0:
                    raise errors.InvalidInput("the query has a `quoted name` that is never closed")
                if query.startswith("``", j):
                    j += 2
                    continue
                break
            i = j + 1
            out.append(_QUOTED)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _is_keyword(text: str, start: int, end: int) -> bool:
    """False for a word used as a property key (``n.set``), a label or type (``:Create``), a
    parameter (``$delete``) or a map key (``{set: 1}``)."""
    before = start - 1
    while before >= 0 and text[before].isspace():
        before -= 1
    if before >= 0 and text[before] in ".:$":
        return False
    after = end
    while after < len(text) and text[after].isspace():
        after += 1
    return not (after < len(text) and text[after] == ":")


def check_read_only(query: str) -> None:
    """Refuse (NotAllowed) a query that writes, administers, or calls a procedure not known to be
    a harmless read; InvalidInput for an empty, huge or unterminated query."""
    if not isinstance(query, str) or not query.strip():
        raise errors.InvalidInput("give a Cypher query")
    if len(query) > MAX_QUERY_CHARS:
        raise errors.InvalidInput(f"the query is longer than {MAX_QUERY_CHARS:,} characters")
    text = _scrub(query)
    words = list(_WORD.finditer(text))
    for index, match in enumerate(words):
        word = match.group().upper()
        if word not in _CHECKED or not _is_keyword(text, match.start(), match.end()):
            continue
        if word in _WRITE_WORDS:
            raise errors.NotAllowed(f"the Cypher endpoint is read-only: {word} writes to the graph")
        if word in _ADMIN_WORDS:
            raise errors.NotAllowed(
                f"the Cypher endpoint is read-only: {word} is not allowed (no LOAD CSV, USE, "
                "administration commands, CALL ... IN TRANSACTIONS or apoc/dbms procedures); "
                f"if {match.group()!r} is a name in your data, write it in `backticks`")
        if word == "SHOW":
            following = {w.group().upper() for w in words[index + 1:index + 4]}
            if not following & _SHOWABLE:
                raise errors.NotAllowed("the Cypher endpoint only allows SHOW INDEXES and SHOW CONSTRAINTS")
        if word == "CALL":
            rest = text[match.end():].lstrip()
            if rest.startswith(("{", "(")):
                continue  # a subquery: its clauses are checked like the rest
            name = _NAME.match(rest)
            procedure = re.sub(r"\s+", "", name.group()) if name else rest[:40]
            if procedure not in READ_PROCEDURES:
                raise errors.NotAllowed(
                    f"the Cypher endpoint does not call procedure {procedure!r}; allowed: "
                    f"{', '.join(sorted(READ_PROCEDURES))}")


def jsonable(value: Any) -> Any:
    """A Cypher value as JSON: temporal values as ISO strings, bytes as base64, NaN/inf as strings."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    iso = getattr(value, "iso_format", None)
    return iso() if callable(iso) else str(value)


def _check_integers(value: Any) -> None:
    """Refuse integers Neo4j cannot hold (64-bit) before the driver fails on them."""
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        raise errors.InvalidInput(f"parameter value {value} does not fit a 64-bit integer")
    if isinstance(value, Mapping):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_integers(item)


def run(store: GraphStore, query: str, params: Mapping[str, Any] | None = None, *,
        limit: int = DEFAULT_LIMIT, timeout_s: float = DEFAULT_TIMEOUT_S) -> CypherResult:
    """Rows of a read-only query (at most ``limit``; ``truncated`` says whether more were left),
    cut off by the server after ``timeout_s``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise errors.InvalidInput(f"limit must be an integer in 1..{MAX_LIMIT}, got {limit!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= MAX_TIMEOUT_S:
        raise errors.InvalidInput(f"timeout_s must be a number in (0, {MAX_TIMEOUT_S:g}], got {timeout_s!r}")
    if params is not None and (not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params)):
        raise errors.InvalidInput("params must be an object of named parameters")
    _check_integers(params)
    check_read_only(query)
    try:
        found = store.read(query, params, timeout_s=float(timeout_s), limit=limit + 1)
    except errors.InvalidInput as e:
        code = getattr(e.__cause__, "code", "") or ""
        if "TransactionTimedOut" in code or "Terminated" in code:
            raise errors.InvalidInput(f"the query ran past its {timeout_s:g}s limit: narrow it "
                                      f"(at most {MAX_TIMEOUT_S:g}s)") from e
        raise
    return CypherResult([jsonable(row) for row in found[:limit]], len(found) > limit, limit)
