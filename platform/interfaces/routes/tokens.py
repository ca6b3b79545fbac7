"""API tokens: create, list, revoke (admin tokens only)."""

from __future__ import annotations

from fastapi import APIRouter

from gradwalk.platform.changes import tokens
from gradwalk.platform.interfaces.routes.deps import ChangeDep
from gradwalk.platform.shared.schemas import TokenCreate, TokenCreated, TokenPublic

router = APIRouter(prefix="/tokens", tags=["tokens"])


@router.get("", response_model=list[TokenPublic], name="list_tokens")
def list_tokens(ctx: ChangeDep) -> list[dict]:
    """Every token's name, role, creation and revocation time; never a secret."""
    return tokens.list_tokens(ctx)


@router.post("", response_model=TokenCreated, status_code=201, name="create_token")
def create_token(body: TokenCreate, ctx: ChangeDep) -> TokenCreated:
    """Create a token with a role; the answer holds its secret, the only time it is shown."""
    secret = tokens.create(ctx, body.name, body.role)
    return TokenCreated(name=body.name, role=body.role, token=secret)


@router.post("/{name}/revoke", response_model=TokenPublic, name="revoke_token")
def revoke_token(name: str, ctx: ChangeDep) -> dict:
    """Revoke a token from now on (revoking twice keeps the first time)."""
    return tokens.revoke(ctx, name)
