"""What routes are handed: the process's GraphStore and settings, and the caller's token and role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access import auth
from gradwalk.settings import Settings


def get_store(request: Request) -> GraphStore:
    return request.app.state.store


StoreDep = Annotated[GraphStore, Depends(get_store)]


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

_bearer = HTTPBearer(auto_error=False, description="An API token from `gradwalk token create NAME --role ROLE`.")


def require_token(store: StoreDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> auth.Principal:
    """The caller's live token (name and role); 401 otherwise. Every router depends on it."""
    return auth.authenticate(store, credentials.credentials if credentials else None)


CallerDep = Annotated[auth.Principal, Depends(require_token)]


def role(needed: str, action: str) -> Callable[[auth.Principal], auth.Principal]:
    """A dependency that lets only tokens of role ``needed`` or above through (403 otherwise)."""

    def check(caller: CallerDep) -> auth.Principal:
        caller.require(needed, action)
        return caller

    return check


CuratorDep = Annotated[auth.Principal, Depends(role("curator", "this change"))]
