"""What routes are handed: the process's GraphStore and settings, and the caller's token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gradwalk.graph.store import GraphStore
from gradwalk.platform import auth
from gradwalk.settings import Settings


def get_store(request: Request) -> GraphStore:
    return request.app.state.store


StoreDep = Annotated[GraphStore, Depends(get_store)]


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]

_bearer = HTTPBearer(auto_error=False, description="An API token from `gradwalk token create NAME`.")


def require_token(store: StoreDep,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """The name of the caller's live token; 401 otherwise."""
    return auth.authenticate(store, credentials.credentials if credentials else None)
