"""API tokens: create, revoke and list them (admins), and the local admin token of the machine that
runs the services.

The local admin token is the bootstrap: ``gradwalk services up`` makes one (or keeps the live one)
and writes its secret to ``<state_dir>/api-token``, readable by its owner only. The client falls
back to it when no token is configured and it talks to this machine's API, so the CLI works there
without an exported token; ``gradwalk demo`` acts as it.
"""

from __future__ import annotations

import secrets
from typing import Any

from gradwalk import errors
from gradwalk.atomic import atomic_writer
from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access import auth
from gradwalk.platform.changes import Context
from gradwalk.settings import Settings

LOCAL_ADMIN = "local-admin"  # the local admin tokens' names: local-admin-<8 hex digits>


def create(ctx: Context, name: str, role: str = auth.DEFAULT_ROLE) -> str:
    """Create token ``name`` with ``role`` and return its secret, shown this once (admins)."""
    ctx.caller.require("admin", "creating API tokens")
    return auth.create(ctx.store, name, role)


def revoke(ctx: Context, name: str) -> dict[str, Any]:
    """Revoke token ``name`` from now on (admins)."""
    ctx.caller.require("admin", "revoking API tokens")
    return auth.revoke(ctx.store, name)


def list_tokens(ctx: Context) -> list[dict[str, Any]]:
    """Every token's name, role and times, never a secret (admins)."""
    ctx.caller.require("admin", "listing API tokens")
    return auth.list_tokens(ctx.store)


def local_admin(store: GraphStore, settings: Settings) -> auth.Principal:
    """The live admin token whose secret is in ``settings.local_token_file``, made (and the file
    written, mode 0600) when there is none or it was revoked."""
    path = settings.local_token_file
    if path.is_file():
        try:
            found = auth.authenticate(store, path.read_text(encoding="utf-8").strip())
        except errors.Unauthenticated:
            found = None
        if found is not None and found.role == "admin":
            return found
    name = f"{LOCAL_ADMIN}-{secrets.token_hex(4)}"
    token = auth.create(store, name, "admin")
    with atomic_writer(path, mode=0o600) as out:
        out.write(token + "\n")
    return auth.Principal(name, "admin")
