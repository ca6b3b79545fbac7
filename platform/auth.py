"""API tokens: random secrets shown once, stored only as their sha256, revoked by name.

A token is ``gw_`` + 32 random bytes (URL-safe base64). Only ``sha256(token)`` is stored, as
``(:ApiToken {name, hash, created_at, revoked_at})``; a request's bearer token is hashed and
looked up, so the database never holds a usable secret and nothing here logs one. Tokens are
created and revoked by an administrator with the CLI (which talks to Neo4j directly), never
through the API they protect.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import TYPE_CHECKING, Any

from gradwalk import errors

if TYPE_CHECKING:
    from gradwalk.graph.store import GraphStore

PREFIX = "gw_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


class Unauthenticated(errors.GradwalkError):
    """The request carries no valid API token."""

    http_status = 401
    exit_code = 7


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(store: GraphStore, name: str) -> str:
    """Create token ``name`` and return the secret: the only time it is ever shown."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise errors.InvalidInput(f"token name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-', "
                                  "starting with a letter or digit")
    if store.read("MATCH (t:ApiToken {name: $name}) RETURN t.name AS name", {"name": name}):
        raise errors.Conflict(f"a token named {name!r} exists already (names stay taken after revocation); "
                              "choose another name")
    token = PREFIX + secrets.token_urlsafe(32)
    store.write("CREATE (:ApiToken {name: $name, hash: $hash, created_at: datetime()})",
                {"name": name, "hash": hash_token(token)})
    return token


def revoke(store: GraphStore, name: str) -> dict[str, Any]:
    """Revoke token ``name`` from now on (revoking twice keeps the first time)."""
    rows = store.write(
        "MATCH (t:ApiToken {name: $name}) SET t.revoked_at = coalesce(t.revoked_at, datetime()) "
        "RETURN t.name AS name, toString(t.created_at) AS created_at, toString(t.revoked_at) AS revoked_at",
        {"name": name})
    if not rows:
        raise errors.NotFound(f"no token named {name!r}")
    return rows[0]


def list_tokens(store: GraphStore) -> list[dict[str, Any]]:
    """Every token's name and times (never its hash)."""
    return store.read("MATCH (t:ApiToken) RETURN t.name AS name, toString(t.created_at) AS created_at, "
                      "toString(t.revoked_at) AS revoked_at ORDER BY t.created_at")


def authenticate(store: GraphStore, token: str | None) -> str:
    """The name of the live token ``token``; :class:`Unauthenticated` otherwise."""
    if not token:
        raise Unauthenticated("this endpoint needs an API token: send 'Authorization: Bearer <token>' "
                              "(create one with `gradwalk token create NAME`)")
    rows = store.read("MATCH (t:ApiToken {hash: $hash}) WHERE t.revoked_at IS NULL RETURN t.name AS name",
                      {"hash": hash_token(token)})
    if not rows:
        raise Unauthenticated("the API token is unknown or revoked: create a new one with "
                              "`gradwalk token create NAME`")
    return rows[0]["name"]
