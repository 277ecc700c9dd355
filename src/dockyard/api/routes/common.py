"""What every handler needs: the registry behind the request and a validated name."""

from __future__ import annotations

from starlette.requests import Request

from dockyard.core.names import validate_name
from dockyard.service.registry import Registry


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def repository(request: Request) -> str:
    return validate_name(request.path_params["name"])
