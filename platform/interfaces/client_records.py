"""The client's handles on pools, targets, feature runs and graphs: ``client.pool("alpaca").rows()``.

A handle names one record and fetches nothing until asked; each verb is one REST call with the same
name: ``show`` (GET /pools/NAME), ``rows`` (GET /pools/NAME/rows), ``delete`` (DELETE /pools/NAME).

    pool = client.pool("alpaca")
    pool.show().sources                      # rows per source, imports, dependants
    for row in pool.iter_rows(): ...         # every row, a page at a time
    pool.delete(force=True)                  # versions keep their rows
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from gradwalk.platform.shared.schemas import (
    CollectionDetail,
    DeletePublic,
    FeatureRunDetail,
    GraphDetail,
    MemberRow,
    MembersPage,
)

if TYPE_CHECKING:
    from gradwalk.platform.interfaces.client import Client

ITER_PAGE_ROWS = 1_000


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
    """A record a worker produced (a feature run or a graph), shown as its producer recorded it."""

    route = ""
    detail: type[FeatureRunDetail | GraphDetail] = FeatureRunDetail

    def __init__(self, client: Client, key: str) -> None:
        super().__init__(client, f"/{self.route}/{key}", key)

    def show(self) -> Any:
        """Its record (status, settings, progress, a tombstone's deletion) and what depends on it."""
        return self.detail.model_validate(self._get())


class FeatureRun(_Produced):
    """``show()`` answers a :class:`FeatureRunDetail`."""

    kind, route, detail = "feature run", "feature-runs", FeatureRunDetail


class Graph(_Produced):
    """``show()`` answers a :class:`GraphDetail`."""

    kind, route, detail = "graph", "graphs", GraphDetail
