"""The API's routers, one per resource, collected in :data:`ROUTERS` (all behind the token check)."""

from __future__ import annotations

from gradwalk.platform.interfaces.routes import collections, cypher, datasets, jobs

ROUTERS = (collections.router, jobs.router, datasets.router, cypher.router)
