"""Read-only Cypher over the instruction graph."""

from __future__ import annotations

from fastapi import APIRouter

from gradwalk.platform import cypher
from gradwalk.platform.routes.deps import StoreDep
from gradwalk.platform.schemas import CypherRequest, CypherResultPublic

router = APIRouter(tags=["cypher"])


@router.post("/cypher", response_model=CypherResultPublic, name="run_cypher")
def run_cypher(body: CypherRequest, store: StoreDep) -> dict:
    """Run a read-only query with parameters, a row limit and a timeout; writes are refused (403)."""
    return cypher.run(store, body.query, body.params, limit=body.limit, timeout_s=body.timeout_s).to_dict()
