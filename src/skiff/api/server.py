"""The Engine API server: the route table of every resource, bound to listeners."""

from __future__ import annotations

from typing import Any

from skiff.api import build as build_api
from skiff.api import containers, images, networks, system, volumes
from skiff.api.http import RequestHandler, Router
from skiff.engine.containers import Engine
from skiff.engine.events import EventBus


def build_router(
    engine: Engine, events: EventBus, info_extra: dict[str, Any] | None = None
) -> Router:
    router = Router()
    system.register(router, engine, events, info_extra or {})
    containers.register(router, engine)
    images.register(router, engine, events)
    networks.register(router, engine)
    volumes.register(router, engine)
    build_api.register(router, engine)
    return router


def handler_class(router: Router) -> type[RequestHandler]:
    return type("BoundRequestHandler", (RequestHandler,), {"router": router})
