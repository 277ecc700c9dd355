"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from dockyard.api.errors import EXCEPTION_HANDLERS
from dockyard.api.hot_reads import HotReads
from dockyard.api.middleware import RegistryHeaders
from dockyard.api.routes import health, table
from dockyard.api.services import Services
from dockyard.assembly import build_registry
from dockyard.config import Settings
from dockyard.service.activity import Activity
from dockyard.service.registry import Registry

SETTINGS_ENV = "DOCKYARD_SETTINGS_JSON"


def create_app(
    settings: Settings, registry: Registry | None = None, *, hot_reads: bool = True
) -> ASGIApp:
    """`hot_reads=False` leaves every request to Starlette (`api.hot_reads`, whose tests compare
    the two)."""
    services = Services()
    activity = Activity()
    metrics = None
    if settings.metrics:  # the library is imported only then
        from dockyard.service.metrics import process_metrics

        metrics = process_metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The serving process migrated the schema before starting its workers.
        services.registry = registry or build_registry(settings, migrate=False)
        services.auth = None
        if settings.auth_enabled:  # the token code is loaded only with accounts on
            from dockyard.auth.setup import build_auth

            services.auth = await build_auth(services.registry)
        services.registry.yield_to(activity)
        flushing = None
        if metrics is not None:
            services.registry.report_to(metrics)
            flushing = asyncio.create_task(metrics.flush_every())
        await services.registry.start()
        try:
            yield
        finally:
            await services.registry.close()
            if flushing is not None:  # after the store's last transactions
                flushing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await flushing

    routes = table(settings.read_only)
    routes += [
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
    ]
    if metrics is not None:
        from dockyard.api.metrics import metrics_page

        routes.append(Route("/metrics", metrics_page, methods=["GET"]))
    if settings.ui:
        from dockyard.web.routes import routes as web_routes

        routes += web_routes()
    app = Starlette(
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    routed: ASGIApp = HotReads(app) if hot_reads else app
    # Outermost: every request counts and is logged, whoever answers it; metrics see the
    # status and bytes of every answer, the middlewares' own included.
    return RegistryHeaders(
        routed,
        services,
        activity=activity,
        metrics=metrics,
        max_requests_per_client=settings.max_requests_per_client,
        log_requests=settings.log_requests,
        tls=settings.tls_cert is not None,
        trusted_proxies=settings.trusted_proxies,
    )


def app_from_environment() -> ASGIApp:
    """Entry point for server worker processes: settings arrive serialised in the environment."""
    settings = Settings.model_validate(json.loads(os.environ[SETTINGS_ENV]))
    return create_app(settings)
