"""A worker's application that takes new settings in place, on SIGHUP, without a new worker.

A worker that is replaced closes its listening socket and its idle keep-alive connections,
and whatever a client sends at that moment is lost (`dockyard.cli.reload`). Settings that
need no new certificate are therefore reloaded inside the running worker: the serving
process writes them to a memory file (`SETTINGS_FILE_ENV` names it; nothing on disk holds
the settings' secrets) and sends the worker SIGHUP;
the worker builds an application from them, starts it (its lifespan: a new registry, new
store connections), and hands it the requests that arrive from then on. The application it
replaces answers the requests it already has, and is shut down when the last one is done.
Connections are never touched: a kept connection's next request simply meets the new
application.

A configuration the worker cannot start (a database it cannot reach, say) is logged and the
worker goes on with the application it has.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.config import Settings

log = logging.getLogger("dockyard")

# The file the serving process writes the settings in force to, for its workers.
SETTINGS_FILE_ENV = "DOCKYARD_SETTINGS_FILE"


class Lifespan:
    """Runs an ASGI application's lifespan protocol by hand: `startup()`, later `shutdown()`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        """Raises RuntimeError with the application's message when its startup failed."""
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.3"}, "state": {}}
        self._task = asyncio.create_task(self._run(scope))
        await self._to_app.put({"type": "lifespan.startup"})
        answer = await self._from_app.get()
        if answer["type"] != "lifespan.startup.complete":
            raise RuntimeError(answer.get("message") or "the application did not start")

    async def shutdown(self) -> None:
        if self._task is None or self._task.done():
            return
        await self._to_app.put({"type": "lifespan.shutdown"})
        await self._from_app.get()
        await self._task

    async def _run(self, scope: Scope) -> None:
        try:
            await self.app(scope, self._to_app.get, self._from_app.put)
        except BaseException as exc:
            # An application that raises instead of answering still gets an answer read.
            await self._from_app.put({"type": "lifespan.startup.failed", "message": repr(exc)})
            if not isinstance(exc, Exception):
                raise


class Generation:
    """One application built from one set of settings, and the requests it is answering."""

    def __init__(self, settings: Settings, app: ASGIApp) -> None:
        self.settings = settings
        self.app = app
        self.lifespan = Lifespan(app)
        self.in_flight = 0
        self.retired = False
        self.idle = asyncio.Event()


class Reloading:
    """The ASGI application a worker serves: the application built by `build` from the
    settings in force, replaced when SIGHUP brings new ones (read from `settings_file`)."""

    def __init__(
        self,
        build: Callable[[Settings], ASGIApp],
        settings: Settings,
        settings_file: Path,
        refresh: Callable[[ASGIApp], None] | None = None,
    ) -> None:
        """`refresh(app)` is called on a SIGHUP that brings the same settings: what the
        application reads from elsewhere (the webhooks, from the metadata store) is looked
        at again."""
        self._build = build
        self._refresh = refresh
        self._file = settings_file
        self._current = Generation(settings, build(settings))
        self._lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task[Any]] = set()  # reloads
        self._retirements: set[asyncio.Task[None]] = set()
        self._retiring: set[Generation] = set()
        # Set when this worker is about to be replaced (`dockyard.cli.handover`).
        self.closing = False

    @property
    def settings(self) -> Settings:
        return self._current.settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self.closing and scope["type"] == "http":
            send = closing_connection(send)
        generation = self._current
        generation.in_flight += 1
        try:
            await generation.app(scope, receive, send)
        finally:
            generation.in_flight -= 1
            if generation.retired and generation.in_flight == 0:
                generation.idle.set()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        try:
            await self._current.lifespan.startup()
        except RuntimeError as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        self._lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._signalled)
        loop.add_signal_handler(signal.SIGUSR2, self._close_connections)
        # Settings written between this worker's fork and the handler above came with a
        # signal that found no handler: look once.
        self._signalled(refresh=False)
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        loop.remove_signal_handler(signal.SIGHUP)
        loop.remove_signal_handler(signal.SIGUSR2)
        async with self._lock:  # a reload under way ends first; one still waiting is dropped
            for task in list(self._tasks):
                task.cancel()
            # The worker stops: a replaced application is shut down now, whatever it still
            # answers (as the current one is).
            for generation in self._retiring:
                generation.idle.set()
            for retirement in list(self._retirements):
                await retirement
            await self._current.lifespan.shutdown()
        await send({"type": "lifespan.shutdown.complete"})

    def _close_connections(self) -> None:
        """No new connection comes to this worker any more: each kept one is closed after
        its next answer, which says so (`Connection: close`), so that the client does not
        send on it again."""
        self.closing = True

    def _signalled(self, refresh: bool = True) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(refresh))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self, refresh: bool = True) -> bool:
        """Take the settings in the file if they differ from the ones in force; True when
        the application was replaced. The same settings are a `refresh` (when asked)."""
        assert self._lock is not None, "reload before the lifespan started"
        async with self._lock:
            try:
                settings = read_settings(self._file)
            except (OSError, ValueError) as exc:
                log.error("SIGHUP: worker %d cannot read the new settings: %s", os.getpid(), exc)
                return False
            if settings == self._current.settings:
                if refresh and self._refresh is not None:
                    self._refresh(self._current.app)
                return False
            try:
                fresh = Generation(settings, self._build(settings))
                await fresh.lifespan.startup()
            except Exception as exc:
                log.error(
                    "SIGHUP: worker %d keeps its settings, the new ones did not start: %s",
                    os.getpid(),
                    exc,
                )
                return False
            old, self._current = self._current, fresh
            log.info("SIGHUP: worker %d reloaded its settings in place", os.getpid())
        old.retired = True
        self._retiring.add(old)
        if old.in_flight == 0:
            old.idle.set()
        retire = asyncio.get_running_loop().create_task(self._retire(old))
        self._retirements.add(retire)
        retire.add_done_callback(self._retirements.discard)
        return True

    async def _retire(self, old: Generation) -> None:
        """Once its last request is answered, the replaced application's lifespan ends (its
        registry closed, its background work stopped)."""
        await old.idle.wait()
        try:
            await old.lifespan.shutdown()
        except Exception:
            log.exception("SIGHUP: the replaced application did not shut down cleanly")
        finally:
            self._retiring.discard(old)


def closing_connection(send: Send) -> Send:
    """`send`, with `Connection: close` in the answer's head (HTTP/1.1; an HTTP/2 server
    leaves the header out, and its connections end with GOAWAY)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (name, value)
                for name, value in message.get("headers", ())
                if name.lower() != b"connection"
            ]
            headers.append((b"connection", b"close"))
            message = {**message, "headers": headers}
        await send(message)

    return sending


def read_settings(path: Path) -> Settings:
    """The settings the serving process wrote (`write_settings`), read under a shared lock
    so that a write is never seen half done."""
    with open(path, "rb") as source:
        fcntl.lockf(source, fcntl.LOCK_SH)
        try:
            text = source.read()
        finally:
            fcntl.lockf(source, fcntl.LOCK_UN)
    return Settings.model_validate(json.loads(text))


def write_settings(path: Path, settings: Settings) -> None:
    """Write the settings over the file's content, under an exclusive lock (the serving
    process names a memory file that lives as long as it does: `/proc/PID/fd/N`, which a
    rename cannot replace)."""
    data = json.dumps(settings.model_dump(mode="json")).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "wb") as target:
        fcntl.lockf(target, fcntl.LOCK_EX)
        try:
            target.truncate(0)
            target.write(data)
            target.flush()
        finally:
            fcntl.lockf(target, fcntl.LOCK_UN)


def settings_file_from_environment() -> Path | None:
    value = os.environ.get(SETTINGS_FILE_ENV)
    return Path(value) if value else None
