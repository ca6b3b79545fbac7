"""API tokens: random secrets shown once, stored only as their sha256, revoked by name, each
with a role.

A token is ``gw_`` + 32 random bytes (URL-safe base64). Only ``sha256(token)`` is stored, as
``(:ApiToken {name, hash, role, created_at, revoked_at})``; a request's bearer token is hashed and
looked up, so the database never holds a usable secret and nothing here logs one. An admin token
creates and revokes the others through the service layer (platform/changes/tokens.py, ``POST
/tokens``); the first admin token is a bootstrap, made without one: the local token ``gradwalk
services up`` keeps, or ``gradwalk token create NAME --role admin --direct``.

Roles, each including the one before: ``reader`` reads and runs read-only Cypher; ``curator``
also imports, submits jobs and publishes, and cancels and retires what its own token made;
``admin`` may touch anyone's jobs and versions. Jobs and versions record the token's name.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gradwalk import errors

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore

PREFIX = "gw_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
ROLES = ("reader", "curator", "admin")  # each may do what the ones before it may
DEFAULT_ROLE = "curator"


@dataclass(frozen=True)
class Principal:
    """Who a request comes from: its token's name and role."""

    name: str
    role: str

    def require(self, role: str, action: str) -> None:
        """:class:`errors.NotAllowed` unless this token's role is ``role`` or above."""
        if ROLES.index(self.role) < ROLES.index(role):
            raise errors.NotAllowed(f"token {self.name!r} has role {self.role!r}; {action} needs role {role!r} "
                                    "or above (an administrator can make one with `gradwalk token create NAME "
                                    f"--role {role}`)")

    def require_owner(self, owner: str | None, what: str) -> None:
        """:class:`errors.NotAllowed` unless this token made ``what`` or is an admin's."""
        self.require("curator", f"changing {what}")
        if self.role != "admin" and owner != self.name:
            made_by = f"token {owner!r}" if owner else "no recorded token"
            raise errors.NotAllowed(f"{what} was made by {made_by}, not by token {self.name!r}: only its "
                                    "maker or an admin token may change it")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(store: GraphStore, name: str, role: str = DEFAULT_ROLE) -> str:
    """Create token ``name`` with ``role`` and return the secret: the only time it is ever shown."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise errors.InvalidInput(f"token name {name!r}: use 1-100 letters, digits, '.', '_', '@' or '-', "
                                  "starting with a letter or digit")
    if role not in ROLES:
        raise errors.InvalidInput(f"token role {role!r}: use one of {', '.join(ROLES)}")
    if store.read("MATCH (t:ApiToken {name: $name}) RETURN t.name AS name", {"name": name}):
        raise errors.Conflict(f"a token named {name!r} exists already (names stay taken after revocation); "
                              "choose another name")
    token = PREFIX + secrets.token_urlsafe(32)
    store.write("CREATE (:ApiToken {name: $name, hash: $hash, role: $role, created_at: datetime()})",
                {"name": name, "hash": hash_token(token), "role": role})
    return token


def revoke(store: GraphStore, name: str) -> dict[str, Any]:
    """Revoke token ``name`` from now on (revoking twice keeps the first time), and delete the web
    sessions it signed in (platform/access/sessions.py)."""
    rows = store.write(
        "MATCH (t:ApiToken {name: $name}) SET t.revoked_at = coalesce(t.revoked_at, datetime()) "
        "WITH t OPTIONAL MATCH (s:UiSession)-[:SIGNED_IN_WITH]->(t) DETACH DELETE s "
        "WITH DISTINCT t RETURN t.name AS name, t.role AS role, toString(t.created_at) AS created_at, "
        "toString(t.revoked_at) AS revoked_at",
        {"name": name})
    if not rows:
        raise errors.NotFound(f"no token named {name!r}")
    return rows[0]


def list_tokens(store: GraphStore) -> list[dict[str, Any]]:
    """Every token's name, role and times (never its hash)."""
    return store.read("MATCH (t:ApiToken) RETURN t.name AS name, t.role AS role, toString(t.created_at) AS created_at, "
                      "toString(t.revoked_at) AS revoked_at ORDER BY t.created_at")


def authenticate(store: GraphStore, token: str | None) -> Principal:
    """The name and role of the live token ``token``; :class:`Unauthenticated` otherwise."""
    if not token:
        raise errors.Unauthenticated("this endpoint needs an API token: send 'Authorization: Bearer <token>' "
                              "(create one with `gradwalk token create NAME`)")
    rows = store.read("MATCH (t:ApiToken {hash: $hash}) WHERE t.revoked_at IS NULL "
                      "RETURN t.name AS name, t.role AS role", {"hash": hash_token(token)})
    if not rows:
        raise errors.Unauthenticated("the API token is unknown or revoked: create a new one with "
                              "`gradwalk token create NAME`")
    return principal_of(rows[0])


def principal_of(row: dict[str, Any]) -> Principal:
    """The principal of a token row (``name``, ``role``); a token without a known role counts as a reader."""
    role = row["role"]
    return Principal(row["name"], role if role in ROLES else ROLES[0])
