"""The client's handles on pools, targets, feature runs and graphs: ``client.pool("alpaca").rows()``.

A handle names one record and fetches nothing until asked; each verb is one REST call with the same
name: ``show`` (GET /pools/NAME), ``rows`` (GET /pools/NAME/rows), ``delete`` (DELETE /pools/NAME),
``extend`` (POST /graphs/ID/extend), ``cancel`` (POST /feature-runs/ID/cancel). ``wait`` follows a
feature run or graph until its worker is done.

    pool = client.pool("alpaca")
    pool.show().sources                      # rows per source, imports, dependants
    for row in pool.iter_rows(): ...         # every row, a page at a time
    pool.delete(force=True)                  # versions keep their rows
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gradwalk import errors
from gradwalk.platform.shared.schemas import (
    CollectionDetail,
    DeletePublic,
    EvaluationPublic,
    FeatureRunDetail,
    FeatureRunExtension,
    FeatureRunPublic,
    GraphDetail,
    GraphExtension,
    GraphPublic,
    MemberRow,
    MembersPage,
)
from gradwalk.platform.shared.waiting import Progress, feature_progress, progress_bar, wait_until
from gradwalk.statuses import EvaluationStatus, FeatureRunStatus, GraphStatus

if TYPE_CHECKING:
    from gradwalk.platform.interfaces.client import Client

ITER_PAGE_ROWS = 1_000
FOLLOW_S = 24 * 3600.0  # how long wait() follows by default


class _Record:
    """A named record behind ``path`` on the server."""

    kind = ""

    def __init__(self, client: Client, path: str, key: str) -> None:
        self._client = client
        self._path = path
        self.name = key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _get(self, suffix: str = "", **params: Any) -> Any:
        return self._client._json("GET", self._path + suffix, params=params or None)

    def delete(self, *, force: bool = False) -> DeletePublic:
        """Delete it (its maker's token or an admin's). Without ``force`` anything that depends on
        it refuses the delete (Conflict, naming the dependants); with it, versions keep their rows
        and what a job used stays as a tombstone. A delete cut short is finished by calling again."""
        params = {"force": "true"} if force else None
        return DeletePublic.model_validate(self._client._json("DELETE", self._path, params=params))


class Collection(_Record):
    """A pool or a target."""

    def __init__(self, client: Client, kind: str, name: str) -> None:
        super().__init__(client, f"/{kind}s/{name}", name)
        self.kind = kind

    def show(self) -> CollectionDetail:
        """Size, status, rows per source, imports (with skipped lines) and dependants."""
        return CollectionDetail.model_validate(self._get())

    def page(self, offset: int = 0, limit: int = 100) -> MembersPage:
        """A page of rows (ordered by id) with the total."""
        return MembersPage.model_validate(self._get("/rows", offset=offset, limit=limit))

    def rows(self, offset: int = 0, limit: int = 100) -> list[MemberRow]:
        return self.page(offset, limit).rows

    def iter_rows(self, page_rows: int = ITER_PAGE_ROWS) -> Iterator[MemberRow]:
        """Every row, fetched a page at a time."""
        offset = 0
        while True:
            found = self.rows(offset, page_rows)
            yield from found
            if len(found) < page_rows:
                return
            offset += len(found)


class _Produced(_Record):
    """A record a worker produced (a feature run or a graph), shown as its producer recorded it and
    followed until the worker is done."""

    route = ""
    detail: type[FeatureRunDetail | GraphDetail | EvaluationPublic] = FeatureRunDetail
    public: type[FeatureRunPublic | GraphPublic | EvaluationPublic] = FeatureRunPublic  # what cancel answers
    done = ""  # the status the work ends in
    stopped: frozenset[str] = frozenset()  # the statuses its work will not end well from

    def __init__(self, client: Client, key: str) -> None:
        super().__init__(client, f"/{self.route}/{key}", key)

    @property
    def id(self) -> str:
        return self.name

    def show(self) -> Any:
        """Its record (status, settings, progress, a tombstone's deletion) and what depends on it."""
        return self.detail.model_validate(self._get())

    def cancel(self) -> Any:
        """Stop its work (its maker's token or an admin's): a feature run or an evaluation ends
        ``cancelled``, its workers stopping at their next step; a graph build ends ``failed`` naming
        who cancelled it, and building it again resumes it. Conflict when its work is not under way."""
        return self.public.model_validate(self._client._json("POST", f"{self._path}/cancel"))

    def _follow(self, read: Callable[[], Any], progress: Callable[[Progress], Callable[[Any], None]],
                shown: bool, timeout: float | None, poll_s: float) -> Any:
        """``read()`` until the work is done (returned); its failure or deletion raises with the error."""
        with progress_bar(f"{self.kind} {self.name}") if shown else contextlib.nullcontext() as update:
            return wait_until(read, done={self.done}, failed=self.stopped, what=f"{self.kind} {self.name}",
                              progress=progress(update) if update is not None else None,
                              timeout_s=timeout if timeout is not None else FOLLOW_S, poll_s=poll_s)


class FeatureRun(_Produced):
    """``show()`` answers a :class:`FeatureRunDetail`; ``wait()`` follows the run or its extension."""

    kind, route, detail, done = "feature run", "feature-runs", FeatureRunDetail, FeatureRunStatus.COMPLETE
    public = FeatureRunPublic
    stopped = frozenset({FeatureRunStatus.FAILED, FeatureRunStatus.CANCELLED, FeatureRunStatus.DELETING,
                         FeatureRunStatus.DELETED})  # will not end well

    def extend(self) -> FeatureRunExtension:
        """Queue the featurisation of the pool rows the run lacks, with its own settings; ``adding``
        says how many rows (0: nothing to do)."""
        return FeatureRunExtension.model_validate(self._client._json("POST", f"{self._path}/extend"))

    def wait(self, *, progress: bool = False, timeout: float | None = None, poll_s: float = 1.0) -> FeatureRunDetail:
        """Block until the run (or its extension) is complete; raise with its error when it failed."""
        return self._follow(self.show, feature_progress, progress, timeout, poll_s)


class Graph(_Produced):
    """``show()`` answers a :class:`GraphDetail`; ``wait()`` follows its build or extension."""

    kind, route, detail, done = "graph", "graphs", GraphDetail, GraphStatus.READY
    public = GraphPublic
    stopped = frozenset({GraphStatus.FAILED, GraphStatus.DELETING, GraphStatus.DELETED})  # will not end well

    def extend(self) -> GraphExtension:
        """Queue the addition of the rows the graph's feature run gained (after its extension);
        ``rows_after`` is the graph's node count once it is done."""
        return GraphExtension.model_validate(self._client._json("POST", f"{self._path}/extend"))

    def wait(self, *, rows: int | None = None, progress: bool = False, timeout: float | None = None,
             poll_s: float = 1.0) -> GraphDetail:
        """Block until the graph is ready (with ``rows`` nodes, for an extension just queued: the
        ``rows_after`` of :meth:`extend`); raise with its error when it failed or was deleted, or
        when a worker refused the extension (Conflict, with the worker's reason)."""

        def read() -> GraphDetail:
            info = self.show()
            if rows is None or info.nodes >= rows:
                return info
            if info.extension_refused:
                raise errors.Conflict(f"graph {self.name}: the extension to {rows} rows was refused: "
                                      f"{info.extension_refused}")
            if info.status == self.done:
                return info.model_copy(update={"status": GraphStatus.EXTENDING})  # queued, not yet claimed by a worker
            return info

        return self._follow(read, _block_progress, progress, timeout, poll_s)

    def stats(self) -> dict[str, Any]:
        """Node and edge counts, degree and weight distributions, connected components."""
        return self._get("/stats")

    def export_graphml(self, path: str | os.PathLike[str]) -> Path:
        """Write the graph as GraphML (node id = instruction id, edge weight ``w``), streamed."""
        return self._client._download(f"{self._path}/graphml", path)


class Evaluation(_Produced):
    """An evaluation of a version: ``show()`` answers an :class:`EvaluationPublic` (progress, ETA,
    then the figures), ``wait()`` follows it, ``scores()`` reads its per-example scores."""

    kind, route, detail, done = "evaluation", "evaluations", EvaluationPublic, EvaluationStatus.SUCCEEDED
    public = EvaluationPublic
    stopped = frozenset({EvaluationStatus.FAILED, EvaluationStatus.CANCELLED})

    def wait(self, *, progress: bool = False, timeout: float | None = None, poll_s: float = 1.0) -> EvaluationPublic:
        """Block until it succeeded; raise with its error when it failed or was cancelled."""
        return self._follow(self.show, _eta_progress, progress, timeout, poll_s)

    def scores(self) -> dict[str, Any]:
        """Per test example: the base model's, the version's and each random subset's scores, from
        which every summary figure is computed."""
        return self._get("/scores")


def _eta_progress(update: Progress) -> Callable[[EvaluationPublic], None]:
    def show(info: EvaluationPublic) -> None:
        eta = f", about {info.eta_s:.0f}s left" if info.eta_s else ""
        update(round(1000 * info.progress), 1000, f"{info.stage or info.status}{eta}")
    return show


def _block_progress(update: Progress) -> Callable[[GraphPublic], None]:
    def show(info: GraphPublic) -> None:
        update(info.blocks_done, info.blocks, info.status)
    return show
