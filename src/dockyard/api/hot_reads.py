"""The hot reads answered without Starlette's own layers: the pulls' `GET|HEAD
/v2/<name>/manifests/<reference>` and `HEAD /v2/<name>/blobs/<digest>`, and the listings'
`GET|HEAD /v2/_catalog` and `/v2/<name>/tags/list`.

Nearly every request a registry serves is a pull, and Starlette spends on each a quarter of
the application's time before and after the handler (its two exception layers, the route
table, the per-route request wrapper); a listing's route comes late in the table, after every
`/api/v1` route, and a client walking a catalog page by page asks for one after another. This
layer sits between our middlewares and Starlette, recognises those requests with the app's own
`Route` objects (same patterns, same parameter conversion, same precedence: a route listed
earlier that would take the path takes it), and then does what Starlette would: the same
handler on a `Request`, the app's exception handlers (`api.errors.EXCEPTION_HANDLERS`) for
what it raises, and a bug answered in the spec's shape and raised again for the middleware to
log. Everything else goes to Starlette unchanged.

Nothing about access, visibility, rate limits, signatures, negotiation, paging or errors is
decided here: the handlers in `api/routes/` decide it for both ways in, and
`tests/http/test_hot_reads.py` holds the two ways to byte-identical answers.

A 200 answer its handler marked replayable (`routes.common.REPLAYABLE_KEY`: no caller to
count, limit or filter for, as on a registry without accounts; a local repository; no
signature policy judging it; nothing to warn of) is remembered by method, path, query and
Accept header, and given again, with no `Request`, route match or lookup, for as long as the
metadata store's version (`Registry.version`: on SQLite the wal-index header every commit of
any process rewrites, `metadata.wal_index`, read for every request) has not moved since it was
made; a replayed manifest GET notes its pull event as the handler would. A pull with a query
(`?ns=` renames the repository), and any request with a Range or an If-None-Match header,
always goes to the handler; a listing's query (`n`, `last`) is part of its key. The outermost
middleware (`api.middleware`) asks `recall` before anything else and sends a remembered answer
itself: no layer below it, no wrapper of `send`.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from dockyard.api.errors import EXCEPTION_HANDLERS
from dockyard.api.event_origin import note_pull
from dockyard.api.responses import Prebuilt
from dockyard.api.routes import BLOBS, CATALOG, MANIFESTS, TAGS
from dockyard.api.routes.common import REPLAYABLE_KEY
from dockyard.api.services import SERVICES_KEY

Handlers = dict[Any, Any]
_READS = frozenset({"GET", "HEAD"})
_TAGS = "/tags/list"
_V2 = "/v2/"
_STARTED = "Caught handled exception, but response already started."  # Starlette's words
# Answers remembered at most, and their bodies' bytes: keyed by paths clients choose, so
# bounded whatever they ask (a body is most often the manifest service's own cached bytes).
REMEMBERED_ANSWERS = 10_000
REMEMBERED_BYTES = 16 * 1024 * 1024
_NOT_MARKED = object()
_NO_VERSION = object()  # the store's version before anything was remembered
_KEY = "dockyard.replay_key"  # the replay key `recall` worked out, for `__call__`
_NOT_ASKED: Any = object()


class Answer:
    """A remembered 200: its route (for the metrics' label), headers and body, and for a
    manifest GET what its pull event needs."""

    __slots__ = ("body", "headers", "pull", "route")

    def __init__(self, route: Route, headers: Any, body: bytes, pull: Any) -> None:
        self.route, self.headers, self.body, self.pull = route, headers, body, pull


class HotReads:
    """In front of a Starlette app built from `api.routes.table()`."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.router = app.router
        routes = self.router.routes
        paths = [route.path if isinstance(route, Route) else None for route in routes]
        manifests, blobs = paths.index(MANIFESTS), paths.index(BLOBS)
        catalog, tags = paths.index(CATALOG), paths.index(TAGS)
        self.manifests: Route = routes[manifests]  # type: ignore[assignment]
        self.blobs: Route = routes[blobs]  # type: ignore[assignment]
        self.catalog: Route = routes[catalog]  # type: ignore[assignment]
        self.tags: Route = routes[tags]  # type: ignore[assignment]
        # The routes Starlette would try first that could take a GET or HEAD of a `/v2/` path:
        # a full match there wins over ours (a method-only match does not, as in Starlette's
        # router).
        self.before_manifests = _reads(routes[:manifests])
        self.before_blobs = _reads(routes[:blobs])
        self.before_catalog = _reads(routes[:catalog])
        self.before_tags = _reads(routes[:tags])
        # Only plain routes, each with its methods, come first: their patterns alone decide.
        self.exact = all(
            isinstance(route, Route) and route.methods is not None
            for route in (
                self.manifests,
                self.blobs,
                self.catalog,
                self.tags,
                *self.before_manifests,
                *self.before_blobs,
                *self.before_catalog,
                *self.before_tags,
            )
        )
        handlers: Handlers = dict(EXCEPTION_HANDLERS)
        # Starlette gives the handler of Exception to its outermost layer, which answers with
        # it and raises the error again; the others answer in place.
        self.unexpected = handlers.pop(Exception)
        self.handlers = handlers
        self.answers: dict[tuple[str, str, bytes, bytes], Answer] = {}
        self.answers_version: object = _NO_VERSION
        self.answers_bytes = 0

    def recall(self, scope: Scope, registry: Any) -> Answer | None:
        """The answer remembered for this request while the store has not moved since it was
        made, else None (and, when the store moved, every answer is forgotten). The outermost
        middleware asks this first, and gives a found answer itself (`pulled`, then its
        status, headers and body); what `__call__` is then handed was asked already."""
        key = _replay_key(scope)
        scope[_KEY] = key
        answer = self.answers.get(key) if key is not None else None
        if answer is None:
            return None
        if registry.version() == self.answers_version:
            return answer
        self.answers.clear()  # the store changed: every answer may be stale
        self.answers_bytes = 0
        return None

    def pulled(self, answer: Answer, registry: Any, scope: Scope, receive: Receive) -> None:
        """What a remembered answer leaves in the scope and notes before it is sent, as its
        handler would have."""
        scope["app"] = self.app
        scope["router"] = self.router
        scope["route"] = answer.route
        pull = answer.pull
        if pull is not None and registry.settings.event_pulls:
            name, reference, manifest = pull
            note_pull(
                Request(scope, receive, _no_send), None, registry.events, name, manifest, reference
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key: tuple[str, str, bytes, bytes] | None = scope.pop(_KEY, _NOT_ASKED)
        if key is _NOT_ASKED:
            key = None
            if self.answers:
                registry = scope[SERVICES_KEY].registry
                answer = self.recall(scope, registry)
                key = scope.pop(_KEY)
                if answer is not None:
                    await self._replay(answer, registry, scope, receive, send)
                    return
        route = self._route(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        if key is None:
            key = _replay_key(scope)
        # What Starlette's application and router leave in the scope for the layers around.
        scope["app"] = self.app
        scope["router"] = self.router
        scope["route"] = route
        services = scope[SERVICES_KEY]
        # The version the handler's lookups will stand on, read before the first of them.
        version = services.registry.version() if key is not None and not services.auth else None
        request = Request(scope, receive, send)
        try:
            response = await scope["endpoint"](request)
        except Exception as exc:
            await self._failed(request, exc, send)
            return
        try:
            await response(scope, receive, send)
        except Exception as exc:
            # Only sending fails here, once the answer started: Starlette raises it as this.
            if _handler(self.handlers, exc) is not None:
                raise RuntimeError(_STARTED) from exc
            raise
        if version is None:
            return
        pull = scope.pop(REPLAYABLE_KEY, _NOT_MARKED)
        if pull is _NOT_MARKED or not isinstance(response, Prebuilt) or response.status != 200:
            return
        # Remembered only if no commit came between the handler's first lookup and now: its
        # answer then stands on that one version of the store.
        if services.registry.version() != version:
            return
        size = len(response.body)
        if size > REMEMBERED_BYTES // 4:
            return
        answers = self.answers
        if (
            version != self.answers_version
            or len(answers) >= REMEMBERED_ANSWERS
            or self.answers_bytes + size > REMEMBERED_BYTES
        ):
            answers.clear()
            self.answers_version = version
            self.answers_bytes = 0
        answers[key] = Answer(route, response.headers, response.body, pull)  # type: ignore[index]
        self.answers_bytes += size

    async def _replay(
        self, answer: Answer, registry: Any, scope: Scope, receive: Receive, send: Send
    ) -> None:
        self.pulled(answer, registry, scope, receive)
        await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
        await send({"type": "http.response.body", "body": answer.body})

    def _route(self, scope: Scope) -> Route | None:
        method = scope["method"]
        if method != "GET" and method != "HEAD":
            return None
        path: str = scope["path"]
        # A mounted app's routes see a path shortened by its root: left to Starlette.
        if not path.startswith(_V2) or scope.get("root_path"):
            return None
        if path.endswith(_TAGS):  # before the others: a repository may be named `x/manifests`
            route, before = self.tags, self.before_tags
        elif "/manifests/" in path:
            route, before = self.manifests, self.before_manifests
        elif method == "HEAD" and "/blobs/" in path:
            route, before = self.blobs, self.before_blobs
        elif path == CATALOG:
            route, before = self.catalog, self.before_catalog
        else:
            return None
        if self.exact:
            # Starlette's own test, without its copies: the route's pattern on the path, its
            # methods, then its converters on what matched.
            matched = route.path_regex.match(path)
            if matched is None or (route.methods is not None and method not in route.methods):
                return None
            for earlier in before:
                if earlier.path_regex.match(path) and method in earlier.methods:
                    return None
            params = matched.groupdict()
            convertors = route.param_convertors
            for key, value in params.items():
                params[key] = convertors[key].convert(value)
            scope["endpoint"] = route.endpoint
            scope["path_params"] = params
            return route
        match, child = route.matches(scope)
        if match is not Match.FULL:
            return None
        for earlier in before:
            if earlier.matches(scope)[0] is Match.FULL:
                return None
        scope.update(child)
        return route

    async def _failed(self, request: Request, exc: Exception, send: Send) -> None:
        scope = request.scope
        handler = _handler(self.handlers, exc)
        if handler is None:  # a bug: answered in the spec's shape, then raised for the log
            response = await self.unexpected(request, exc)
            await response(scope, request.receive, send)
            raise exc
        response = await handler(request, exc)
        await response(scope, request.receive, send)
        # A shared error instance would otherwise grow a traceback per request (as Starlette).
        exc.__traceback__ = None


def _replay_key(scope: Scope) -> tuple[str, str, bytes, bytes] | None:
    """What a remembered answer of this request would be kept under, or None when it may not
    be given one: not a read, a query on a pull's path (`?ns=` renames the repository), a
    mounted app, or a header the handler answers differently (a Range, an If-None-Match). A
    listing's query (`n`, `last`) is part of its key: its handler marks what may be kept."""
    method = scope["method"]
    if (method != "GET" and method != "HEAD") or scope.get("root_path"):
        return None
    path: str = scope["path"]
    query: bytes = scope["query_string"]
    if query and path != CATALOG and not path.endswith(_TAGS):
        return None
    accept = []
    for name, value in scope["headers"]:
        if name == b"accept":
            accept.append(value)
        elif name == b"range" or name == b"if-none-match":
            return None
    return method, path, query, b",".join(accept)


async def _no_send(message: Any) -> None:
    raise RuntimeError("a pull event's request sends nothing")


def _reads(routes: list[Any]) -> list[Any]:
    """Those of `routes` that could take a GET or HEAD of a `/v2/` path (a route's pattern
    starts with its path's text up to the first parameter, as written: `/api/...` never
    matches a `/v2/` path, and is not tried for one)."""
    found = []
    for route in routes:
        if not isinstance(route, Route):
            found.append(route)
            continue
        if route.methods is not None and not _READS & route.methods:
            continue
        literal = route.path.split("{", 1)[0]
        if literal.startswith(_V2) or _V2.startswith(literal):
            found.append(route)
    return found


def _handler(handlers: Handlers, exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
