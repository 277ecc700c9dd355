"""A worker's application taking new settings in place (`dockyard.api.reloading`): requests
under way finish on the application they started on, new ones meet the new settings, the
replaced application is shut down after its last request, and settings that cannot start
leave the worker as it was."""

from __future__ import annotations

import asyncio
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.api.reloading import Lifespan, Reloading, write_settings
from dockyard.config import Settings

BROKEN = "https://broken.invalid"


class Application:
    """An ASGI application that says which settings it was built from; its lifespan is
    recorded, and a request to /slow waits for `gate`."""

    def __init__(self, settings: Settings, events: list[str], gate: asyncio.Event) -> None:
        self.settings, self.events, self.gate = settings, events, gate
        self.name = f"read_only={settings.read_only}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if self.settings.public_url == BROKEN:
                        await send({"type": "lifespan.startup.failed", "message": "no store"})
                        return
                    self.events.append(f"started {self.name}")
                    await send({"type": "lifespan.startup.complete"})
                else:
                    self.events.append(f"stopped {self.name}")
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/slow":
            await self.gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": self.name.encode()})


async def get(app: Reloading, path: str = "/") -> tuple[bytes, list[tuple[bytes, bytes]]]:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)
    return sent[1]["body"], list(sent[0]["headers"])


def test_requests_under_way_finish_on_the_old_settings_and_new_ones_meet_the_new(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        events: list[str] = []
        gate = asyncio.Event()
        first = Settings(data_dir=tmp_path)
        settings_file = tmp_path / "settings.json"
        write_settings(settings_file, first)
        refreshed: list[str] = []

        def refresh(current: ASGIApp) -> None:
            assert isinstance(current, Application)
            refreshed.append(current.name)

        app = Reloading(lambda s: Application(s, events, gate), first, settings_file, refresh)
        lifespan = Lifespan(app)
        await lifespan.startup()
        assert events == ["started read_only=False"]

        slow = asyncio.create_task(get(app, "/slow"))
        await asyncio.sleep(0)  # the slow request has begun
        write_settings(settings_file, first.model_copy(update={"read_only": True}))
        assert await app.reload()
        assert (await get(app))[0] == b"read_only=True"
        assert events == ["started read_only=False", "started read_only=True"]
        gate.set()
        assert (await slow)[0] == b"read_only=False"
        for _ in range(100):  # the old application's shutdown runs in its own task
            if len(events) == 3:
                break
            await asyncio.sleep(0.01)
        assert events[2] == "stopped read_only=False"

        # The same settings again: nothing rebuilt, what is read from elsewhere looked at.
        assert not await app.reload()
        assert refreshed == ["read_only=True"]
        write_settings(settings_file, first.model_copy(update={"public_url": BROKEN}))
        assert not await app.reload()  # cannot start: the worker keeps what it has
        assert (await get(app))[0] == b"read_only=True"
        assert app.settings.read_only and app.settings.public_url is None

        await lifespan.shutdown()
        assert events[-1] == "stopped read_only=True"

    asyncio.run(scenario())


def test_a_worker_about_to_be_replaced_closes_each_kept_connection_after_its_answer(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path)
        settings_file = tmp_path / "settings.json"
        write_settings(settings_file, settings)
        app = Reloading(lambda s: Application(s, [], asyncio.Event()), settings, settings_file)
        lifespan = Lifespan(app)
        await lifespan.startup()
        assert (b"connection", b"close") not in (await get(app))[1]
        app._close_connections()  # what SIGUSR2 calls
        body, headers = await get(app)
        assert body == b"read_only=False" and headers == [(b"connection", b"close")]
        await lifespan.shutdown()

    asyncio.run(scenario())


def test_a_worker_stopping_after_a_reload_shuts_down_both_applications(tmp_path: Path) -> None:
    async def scenario() -> None:
        events: list[str] = []
        gate = asyncio.Event()
        first = Settings(data_dir=tmp_path)
        settings_file = tmp_path / "settings.json"
        write_settings(settings_file, first)
        app = Reloading(lambda s: Application(s, events, gate), first, settings_file)
        lifespan = Lifespan(app)
        await lifespan.startup()
        slow = asyncio.create_task(get(app, "/slow"))
        await asyncio.sleep(0)
        write_settings(settings_file, first.model_copy(update={"read_only": True}))
        assert await app.reload()
        # The replaced application still answers its request when the worker stops.
        await lifespan.shutdown()
        assert sorted(events) == [
            "started read_only=False",
            "started read_only=True",
            "stopped read_only=False",
            "stopped read_only=True",
        ]
        gate.set()
        assert (await slow)[0] == b"read_only=False"

    asyncio.run(scenario())
