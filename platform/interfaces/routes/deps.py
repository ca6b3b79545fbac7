"""What routes are handed: the process's GraphStore and settings, the caller's token and role, and the
context a change is made with."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gradwalk.graph.store.adapter import GraphStore
from gradwalk.platform.access import auth
from gradwalk.platform.changes import Context
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


def change_context(store: StoreDep, settings: SettingsDep, caller: CallerDep) -> Context:
    """What a change is made with: the store, the settings and the caller, whose role the service
    layer (platform/changes/) checks; routes check no role themselves."""
    return Context(store, settings, caller)


ChangeDep = Annotated[Context, Depends(change_context)]
Force = Annotated[bool, Query(description="Delete although runs, graphs, jobs or versions depend on it: versions "
                                          "keep their rows, runs and graphs a job used stay as tombstones.")]
