"""The API's routers, one per resource, collected in :data:`ROUTERS` (all behind the token check)."""

from __future__ import annotations

from gradwalk.platform.routes import catalog, cypher, datasets, jobs

ROUTERS = (catalog.router, jobs.router, datasets.router, cypher.router)
