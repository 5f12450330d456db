"""Every route an app serves, found by walking it (routers included in routers too), so that
tests over "every route" cover a route added tomorrow without being edited."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts


@dataclass(frozen=True)
class AppRoute:
    path: str  # as the OpenAPI document writes it: `{parameters}` without their converters
    methods: frozenset[str]  # empty for a WebSocket route
    in_schema: bool

    @property
    def websocket(self) -> bool:
        return not self.methods


def app_routes(app: FastAPI) -> list[AppRoute]:
    routes = []
    for context in iter_route_contexts(app.routes):
        path = context.path_format or context.path
        if path is None:
            continue  # a mount or a host route: nothing of ours today
        methods = frozenset(context.methods or ()) - {"HEAD", "OPTIONS"}
        routes.append(AppRoute(path, methods, bool(getattr(context, "include_in_schema", False))))
    return routes
