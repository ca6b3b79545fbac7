"""Read-only Cypher over the instruction graph."""

from __future__ import annotations

from fastapi import APIRouter

from gradwalk.platform.access import cypher_guard
from gradwalk.platform.interfaces.routes.deps import SettingsDep, StoreDep
from gradwalk.platform.shared.schemas import CypherRequest, CypherResultPublic

router = APIRouter(tags=["cypher"])


@router.post("/cypher", response_model=CypherResultPublic, name="run_cypher")
def run_cypher(body: CypherRequest, store: StoreDep, settings: SettingsDep) -> dict:
    """Run a read-only query with parameters, a row limit and a timeout: Neo4j plans it first, and
    anything but a plain read is refused (403); results past the response limit answer 413."""
    return cypher_guard.run(store, body.query, body.params, limit=body.limit, timeout_s=body.timeout_s,
                      max_bytes=settings.api_max_response_bytes).to_dict()
