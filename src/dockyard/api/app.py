"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import weakref
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp

from dockyard.api.errors import EXCEPTION_HANDLERS
from dockyard.api.hot_reads import HotReads
from dockyard.api.middleware import RegistryHeaders
from dockyard.api.reloading import Reloading, settings_file_from_environment
from dockyard.api.routes import health, table
from dockyard.api.services import Services
from dockyard.assembly import build_registry
from dockyard.config import Settings
from dockyard.service.activity import Activity
from dockyard.service.registry import Registry

SETTINGS_ENV = "DOCKYARD_SETTINGS_JSON"

# What each application made by create_app runs on, for `look_at_webhooks`.
SERVICES: weakref.WeakKeyDictionary[ASGIApp, Services] = weakref.WeakKeyDictionary()


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

    app = Starlette(
        routes=routes_for(settings),
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    routed: ASGIApp = HotReads(app) if hot_reads else app
    # Outermost: every request counts and is logged, whoever answers it; metrics see the
    # status and bytes of every answer, the middlewares' own included.
    headed = RegistryHeaders(
        routed,
        services,
        activity=activity,
        metrics=metrics,
        max_requests_per_client=settings.max_requests_per_client,
        log_requests=settings.log_requests,
        tls=settings.tls_cert is not None,
        trusted_proxies=settings.trusted_proxies,
    )
    SERVICES[headed] = services
    return headed


def routes_for(settings: Settings) -> list[Route]:
    """The application's route table for these settings. Starlette compiles a pattern for
    each route (60-odd, most of a worker's own work before its first answer): the serving
    process builds the table once before it forks (`cli.serve.load_for_workers`), so that each
    worker finds the patterns in `re`'s cache it inherits instead of compiling them again."""
    routes = table(settings.read_only)
    routes += [
        Route("/healthz", health.healthz, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
    ]
    if settings.metrics:
        from dockyard.api.metrics import metrics_page

        routes.append(Route("/metrics", metrics_page, methods=["GET"]))
    if settings.ui:
        from dockyard.web.routes import routes as web_routes

        routes += web_routes()
    return routes


def app_from_environment() -> ASGIApp:
    """Entry point for server worker processes: settings arrive serialised in the environment;
    when the serving process names a settings file, SIGHUP reloads them in place
    (`api.reloading`)."""
    settings = Settings.model_validate(json.loads(os.environ[SETTINGS_ENV]))
    settings_file = settings_file_from_environment()
    if settings_file is None:
        return create_app(settings)
    return Reloading(create_app, settings, settings_file, refresh=look_at_webhooks)


def look_at_webhooks(app: ASGIApp) -> None:
    """A SIGHUP with unchanged settings: the event sender looks at the webhooks now rather
    than at its next round."""
    services = SERVICES.get(app)
    if services is not None and services.registry is not None:
        services.registry.events.reload()
