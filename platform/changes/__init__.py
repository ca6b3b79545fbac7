"""The one way in for every change: each function here is one change a user can ask for, and the
only road to it. REST routes, the web pages and (through the REST client) the CLI call these;
none of them writes a record itself.

A function takes a :class:`Context` — the process's store and settings and the *caller*, a
:class:`~gradwalk.platform.access.auth.Principal` — checks the caller's role itself (raising
:class:`gradwalk.errors.NotAllowed`), then asks the record modules below to do the change, with the
caller's token name recorded as its maker. There is no caller-less change: the bootstrap commands
(``services up``, ``demo``) act as the local admin token (:mod:`.tokens`).

One module per kind of change: :mod:`.imports` (pools and targets), :mod:`.features` (start and
extend feature runs), :mod:`.graphs` (build and extend instruction graphs), :mod:`.jobs` (submit,
submit like, cancel), :mod:`.versions` (retire), :mod:`.deletes` (pools, targets, feature runs,
graphs), :mod:`.tokens` (create, revoke, list, and the local admin token).

May import: platform.catalog, versions, work, intake, access, artifacts, shared; graph.knn,
graph.selection, graph.store.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access.auth import Principal
from gradwalk.platform.artifacts.feature_store import FeatureStore
from gradwalk.settings import Settings


@dataclass(frozen=True)
class Context:
    """Who asks for a change (``caller``), and the store and settings it is made with."""

    store: GraphStore
    settings: Settings
    caller: Principal

    @cached_property
    def features(self) -> FeatureStore:
        """The artifact store the settings name (S3 endpoint, keys and the host's cache included)."""
        return FeatureStore.from_settings(self.settings)
