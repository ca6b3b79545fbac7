"""The one module that holds the Neo4j driver.

Everything else asks a :class:`GraphStore`: reads and writes run as managed transactions in
READ or WRITE access mode (so a cluster routes them right and the driver retries transient
errors), batched writes go through ``UNWIND $rows``, values always travel as parameters, and
driver errors come out as gradwalk's own error families.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Self, TypeVar

import neo4j
from neo4j import exceptions as neo4j_errors

from gradwalk import errors
from gradwalk.settings import Settings, get_settings

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = Mapping[str, Any] | None

DEFAULT_BATCH_ROWS = 5_000


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Re-raise driver errors as gradwalk error families, keeping the cause."""
    try:
        yield
    except neo4j_errors.ConstraintError as e:
        raise errors.Conflict(f"Neo4j refused the write: {e.message}") from e
    except (neo4j_errors.AuthError, neo4j_errors.AuthConfigurationError) as e:
        raise errors.ServiceUnavailable(
            "Neo4j refused the credentials: check GRADWALK_NEO4J_USER / GRADWALK_NEO4J_PASSWORD"
        ) from e
    except (neo4j_errors.ServiceUnavailable, neo4j_errors.SessionExpired) as e:
        raise errors.ServiceUnavailable(f"Neo4j is not reachable: {e}") from e
    except neo4j_errors.TransientError as e:
        raise errors.ServiceUnavailable(f"Neo4j kept failing transiently: {e.message}") from e
    except neo4j_errors.Forbidden as e:
        raise errors.NotAllowed(f"Neo4j refused the query: {e.message}") from e
    except neo4j_errors.ClientError as e:
        if e.code and e.code.startswith("Neo.ClientError.Security."):
            raise errors.ServiceUnavailable(
                f"Neo4j refused the login ({e.message}): check GRADWALK_NEO4J_USER / GRADWALK_NEO4J_PASSWORD"
            ) from e
        if e.code and e.code.endswith("AccessMode"):
            raise errors.NotAllowed(f"Neo4j refused a write in a read-only transaction: {e.message}") from e
        raise errors.InvalidInput(f"Neo4j refused the query: {e.message}") from e
    except neo4j_errors.DatabaseError as e:
        raise errors.ServiceUnavailable(f"Neo4j failed running the query ({e.code}): {e.message}") from e
    except (neo4j_errors.Neo4jError, neo4j_errors.DriverError) as e:
        raise errors.ServiceUnavailable(f"Neo4j did not answer as expected ({type(e).__name__}): {e}") from e


def _batches(rows: Iterable[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    batch: list[Mapping[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class GraphStore:
    """A Neo4j database reached over Bolt. One per process; hand it to library code."""

    def __init__(self, driver: neo4j.Driver, database: str, *, timeout_s: float | None = None) -> None:
        self._driver = driver
        self.database = database
        self.timeout_s = timeout_s  # each transaction's limit, enforced by Neo4j (None: the server's own)

    @classmethod
    def connect(cls, settings: Settings | None = None, *, wait_s: float = 0.0,
                timeout_s: float | None = None) -> GraphStore:
        """Open a driver from settings; with ``wait_s`` keep trying until the server answers. With
        ``timeout_s`` every transaction of this store carries that limit to the server."""
        s = settings or get_settings()
        driver = neo4j.GraphDatabase.driver(
            s.neo4j_uri,
            auth=(s.neo4j_user, s.neo4j_password.get_secret_value()),
            max_transaction_retry_time=s.neo4j_max_retry_s,
            connection_acquisition_timeout=max(10.0, s.neo4j_max_retry_s),
            notifications_min_severity="OFF",
        )
        store = cls(driver, s.neo4j_database, timeout_s=timeout_s)
        try:
            store.wait_reachable(wait_s)
        except errors.ServiceUnavailable:
            driver.close()
            raise
        return store

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ping(self) -> None:
        """Raise :class:`errors.ServiceUnavailable` unless a query round-trips."""
        with _translated():
            self._driver.verify_connectivity()
            self.read("RETURN 1 AS ok")

    def wait_reachable(self, timeout_s: float, *, poll_s: float = 0.5) -> None:
        """Ping until Neo4j answers; past ``timeout_s`` the last :class:`errors.ServiceUnavailable`
        is raised (a timeout of 0 pings once)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.ping()
            except errors.ServiceUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(poll_s)

    def _session(self, mode: str) -> neo4j.Session:
        return self._driver.session(database=self.database, default_access_mode=mode)

    def transaction(self, work: Callable[[neo4j.ManagedTransaction], T], *, write: bool,
                    timeout_s: float | None = None) -> T:
        """Run ``work(tx)`` in one managed transaction; the driver retries it on transient errors,
        so ``work`` must be idempotent and consume its results before returning. Neo4j ends it
        after ``timeout_s`` (default: the store's limit)."""
        mode = neo4j.WRITE_ACCESS if write else neo4j.READ_ACCESS
        timed = neo4j.unit_of_work(timeout=timeout_s or self.timeout_s)(work)
        with _translated(), self._session(mode) as session:
            run = session.execute_write if write else session.execute_read
            return run(timed)

    def read_once(self, work: Callable[[neo4j.Transaction], T], *, timeout_s: float | None = None) -> T:
        """Run ``work(tx)`` in one READ transaction, never retried: for a caller's own query, whose
        cost must not multiply when it fails (and may fail again the same way)."""
        with _translated(), self._session(neo4j.READ_ACCESS) as session, \
                session.begin_transaction(timeout=timeout_s or self.timeout_s) as tx:
            return work(tx)

    def read_session(self) -> ReadSession:
        """A READ session for many small queries in a row (close it, or use it as a context manager)."""
        return ReadSession(self._session(neo4j.READ_ACCESS), self.timeout_s)

    def read(self, query: str, params: Params = None, *, timeout_s: float | None = None,
             limit: int | None = None) -> list[dict[str, Any]]:
        """Rows of a query run in a READ transaction (the server refuses writes in it)."""

        def work(tx: neo4j.ManagedTransaction) -> list[dict[str, Any]]:
            result = tx.run(query, dict(params or {}))
            if limit is None:
                return result.data()
            rows: list[dict[str, Any]] = []
            for record in result:
                if len(rows) >= limit:
                    break
                rows.append(record.data())
            result.consume()
            return rows

        return self.transaction(work, write=False, timeout_s=timeout_s)

    def write(self, query: str, params: Params = None) -> list[dict[str, Any]]:
        """Rows of a query run in one WRITE transaction."""
        return self.transaction(lambda tx: tx.run(query, dict(params or {})).data(), write=True)

    def write_rows(self, query: str, rows: Iterable[Mapping[str, Any]], *,
                   batch_size: int = DEFAULT_BATCH_ROWS, extra: Params = None,
                   on_batch: Callable[[int], None] | None = None) -> int:
        """Send ``rows`` as ``$rows`` to an ``UNWIND $rows AS row ...`` query, one transaction per
        batch. The query must be idempotent (MERGE on stable keys) so a retried batch is harmless.
        Returns the number of rows sent; ``on_batch`` is told the size of each batch written."""
        if "$rows" not in query:
            raise ValueError("a batched write must UNWIND $rows")
        sent = 0
        for batch in _batches(rows, batch_size):
            params = {**dict(extra or {}), "rows": batch}
            self.transaction(lambda tx, p=params: tx.run(query, p).consume(), write=True)
            sent += len(batch)
            if on_batch is not None:
                on_batch(len(batch))
        return sent

    def run_schema(self, statements: Sequence[str]) -> None:
        """Run schema commands, each in its own auto-commit transaction (Neo4j forbids mixing
        schema and data changes in one transaction)."""
        with _translated(), self._session(neo4j.WRITE_ACCESS) as session:
            for statement in statements:
                session.run(statement).consume()


class ReadSession:
    """One READ session kept open for many small read queries, such as a walk's neighbour lists.

    Each query is a single auto-commit round trip; :meth:`GraphStore.read` opens a session and a
    managed transaction per call (BEGIN, RUN, COMMIT), slower for the walk's reads
    (docs/measurements.md, "Neighbour reads"). The driver does not retry auto-commit queries: a failure comes out as gradwalk's error
    families, and the caller starts over (a selection job is retried whole).
    """

    def __init__(self, session: neo4j.Session, timeout_s: float | None = None) -> None:
        self._session = session
        self._timeout_s = timeout_s

    def values(self, query: str, params: Params = None) -> list[list[Any]]:
        """The rows of a read query as plain lists (cheaper than dicts when there are many)."""
        with _translated():
            timed = neo4j.Query(query, timeout=self._timeout_s)
            return [record.values() for record in self._session.run(timed, dict(params or {}))]

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
