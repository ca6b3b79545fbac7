"""The API's routers, one per resource, collected in :data:`ROUTERS` (all behind the token check);
``version_data`` apart, whose file route also takes a signed link instead of a token."""

from __future__ import annotations

from gradwalk.platform.interfaces.routes import (
    collections,
    cypher,
    datasets,
    evaluations,
    feature_runs,
    graphs,
    jobs,
    tokens,
)

ROUTERS = (collections.router, feature_runs.router, graphs.router, jobs.router, datasets.router, evaluations.router,
           cypher.router, tokens.router)
