"""Web sign-in sessions: the browser holds a random id, never the API token it signed in with.

Signing in with a live token makes ``(:UiSession {hash, expires_at})-[:SIGNED_IN_WITH]->(:ApiToken)``;
the cookie holds the id, Neo4j only its sha256, so neither a stolen database nor a stolen cookie
yields a token. Every request looks the session up through its token, so revoking the token ends
its sessions at once (auth.revoke also deletes them), a session past its age is refused, and
signing out deletes it.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from gradwalk import errors
from gradwalk.platform.access import auth

if TYPE_CHECKING:
    from gradwalk.graph.store.adapter import GraphStore


def start(store: GraphStore, token: str, age_s: int) -> tuple[str, auth.Principal]:
    """A new session of the live token ``token`` for ``age_s`` seconds: (its id, who it is).
    :class:`errors.Unauthenticated` for a dead token. Sessions past their age go on the way."""
    if not token:
        raise errors.Unauthenticated("no API token given")
    session = secrets.token_urlsafe(32)
    rows = store.write(
        "MATCH (old:UiSession) WHERE old.expires_at <= datetime() DETACH DELETE old "
        "WITH count(*) AS _ "
        "MATCH (t:ApiToken {hash: $token}) WHERE t.revoked_at IS NULL "
        "CREATE (s:UiSession {hash: $session, created_at: datetime(), "
        "                     expires_at: datetime() + duration({seconds: $age})})-[:SIGNED_IN_WITH]->(t) "
        "RETURN t.name AS name, t.role AS role",
        {"token": auth.hash_token(token), "session": auth.hash_token(session), "age": age_s})
    if not rows:
        raise errors.Unauthenticated("the API token is unknown or revoked")
    return session, auth.principal_of(rows[0])


def principal(store: GraphStore, session: str | None) -> auth.Principal:
    """Who the live, unexpired session ``session`` signed in as; :class:`errors.Unauthenticated`
    otherwise."""
    rows = store.read(
        "MATCH (s:UiSession {hash: $session})-[:SIGNED_IN_WITH]->(t:ApiToken) "
        "WHERE s.expires_at > datetime() AND t.revoked_at IS NULL RETURN t.name AS name, t.role AS role",
        {"session": auth.hash_token(session)}) if session else []
    if not rows:
        raise errors.Unauthenticated("the session is unknown, expired or its token revoked: sign in again")
    return auth.principal_of(rows[0])


def end(store: GraphStore, session: str | None) -> None:
    """Delete session ``session`` (signing out); an unknown one is already gone."""
    if session:
        store.write("MATCH (s:UiSession {hash: $session}) DETACH DELETE s", {"session": auth.hash_token(session)})
