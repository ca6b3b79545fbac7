"""What the bootstrap commands share: a Neo4j connection of their own. ``migrate`` and ``token
create --direct`` (the first admin token) work with no API to talk to; every other command goes
through the REST API (tests/platform/test_cli_routes.py checks that none but these opens Neo4j)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gradwalk.settings import get_settings

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore


def connect() -> GraphStore:
    """A connection to Neo4j (use it in a ``with``); the driver is imported only when it is called."""
    from gradwalk.graph.store.adapter import GraphStore

    return GraphStore.connect(get_settings())


def first_token(name: str, role: str) -> str:
    """Create token ``name`` in Neo4j directly: the bootstrap, before any token can call the API."""
    from gradwalk.platform.access import auth

    with connect() as store:
        return auth.create(store, name, role)
