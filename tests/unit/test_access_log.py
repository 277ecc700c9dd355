"""Access lines written straight to the log stream read exactly as `logging` would write them,
and any other logging setup still gets them through `logging`."""

from __future__ import annotations

import asyncio
import io
import logging
import logging.config
import time
from collections.abc import Iterator

import pytest

from dockyard.api import access_log
from dockyard.api.access_log import LOG, PLAIN_FORMAT, AccessLog
from dockyard.cli.serve import logging_config


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, LOG.handlers[:], LOG.level, LOG.propagate)
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:], LOG.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    LOG.setLevel(saved[3])
    LOG.propagate = saved[4]


def serve_logging(stream: io.StringIO) -> None:
    config = logging_config()
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)


def test_the_server_setup_is_written_directly_and_reads_as_logging_would(
    restore_logging, monkeypatch
) -> None:
    stream = io.StringIO()
    serve_logging(stream)
    assert access_log._plain_stream_handler() is not None, "dockyard serve takes the direct path"
    now = 1_795_000_000.25
    monkeypatch.setattr(access_log.time, "time", lambda: now)
    AccessLog().write("10.0.0.1", "GET", "/v2/a/manifests/v1?x=1", 200, 512, 0.43)
    record = logging.LogRecord(
        LOG.name,
        logging.INFO,
        "",
        0,
        '%s "%s %s" %d %d %.1fms',
        ("10.0.0.1", "GET", "/v2/a/manifests/v1?x=1", 200, 512, 0.43),
        None,
    )
    record.created, record.msecs = now, 250.0
    expected = logging.Formatter(PLAIN_FORMAT).format(record) + "\n"
    assert stream.getvalue() == expected
    assert expected.endswith(
        ' INFO dockyard.access 10.0.0.1 "GET /v2/a/manifests/v1?x=1" 200 512 0.4ms\n'
    )


def test_the_timestamp_follows_the_clock(restore_logging, monkeypatch) -> None:
    stream = io.StringIO()
    serve_logging(stream)
    clock = iter([100.5, 100.75, 101.0])
    monkeypatch.setattr(access_log.time, "time", lambda: next(clock))
    log = AccessLog()
    for _ in range(3):
        log.write("c", "HEAD", "/v2/", 200, 0, 0.1)
    stamps = [line.split(" INFO ")[0] for line in stream.getvalue().splitlines()]
    day = time.strftime("%Y-%m-%d %H:%M:", time.localtime(100))
    assert stamps[0].startswith(day) and stamps[0].endswith(",500")
    assert stamps[1].endswith(",750") and stamps[2].endswith(",000")
    assert stamps[0][:-4] == stamps[1][:-4] != stamps[2][:-4]


@pytest.mark.parametrize("setup", ["other format", "two handlers", "file handler"])
def test_other_setups_get_the_line_through_logging(restore_logging, tmp_path, setup) -> None:
    stream = io.StringIO()
    serve_logging(stream)
    root = logging.getLogger()
    if setup == "other format":
        root.handlers[0].setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
    elif setup == "two handlers":
        root.addHandler(logging.StreamHandler(io.StringIO()))
    else:
        root.handlers[:] = [logging.FileHandler(tmp_path / "log")]
    log = AccessLog()
    log.write("c", "GET", "/v2/", 200, 2, 0.2)
    assert access_log._plain_stream_handler() is None
    if setup == "other format":
        assert stream.getvalue() == 'INFO|c "GET /v2/" 200 2 0.2ms\n'
    elif setup == "file handler":
        root.handlers[0].flush()
        assert '"GET /v2/" 200 2 0.2ms' in (tmp_path / "log").read_text()
    else:
        assert '"GET /v2/" 200 2 0.2ms' in stream.getvalue()


def test_nothing_is_written_below_the_level(restore_logging) -> None:
    stream = io.StringIO()
    serve_logging(stream)
    LOG.setLevel(logging.WARNING)
    AccessLog().write("c", "GET", "/v2/", 200, 2, 0.2)
    assert stream.getvalue() == ""


class CountingStream(io.StringIO):
    """A log stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


def test_the_lines_of_one_loop_turn_go_out_in_one_write(restore_logging) -> None:
    """On the server's loop a line waits for the end of the turn, and the turn's lines go out
    together: a write per line cost more than the rest of a replayed answer (bench/README.md)."""
    stream = CountingStream()
    serve_logging(stream)
    log = AccessLog()

    async def turn() -> list[str]:
        for n in range(5):
            log.write("10.0.0.1", "GET", f"/v2/a/manifests/v{n}", 200, 512, 0.4)
        assert stream.writes == []  # not yet: the turn is not over
        await asyncio.sleep(0)
        return list(stream.writes)

    writes = asyncio.run(turn())
    assert len(writes) == 1
    assert [line.split('"')[1] for line in writes[0].splitlines()] == [
        f"GET /v2/a/manifests/v{n}" for n in range(5)
    ]


def test_each_write_is_whole_lines_that_a_pipe_takes_whole(restore_logging) -> None:
    """Workers share the server's stderr, a pipe under journald or a container runtime: a write
    of at most PIPE_BUF bytes lands whole, so no worker's line is cut by another's."""
    stream = CountingStream()
    serve_logging(stream)
    log = AccessLog()
    long_path = "/v2/" + "é" * 3000 + "/manifests/latest"  # one line longer than a pipe takes

    async def burst() -> None:
        for n in range(200):
            log.write("10.0.0.1", "GET", f"/v2/a/manifests/v{n}", 200, 512, 0.4)
        log.write("10.0.0.1", "GET", long_path, 404, 0, 0.1)
        log.write("10.0.0.1", "GET", "/v2/", 200, 2, 0.1)
        await asyncio.sleep(0)

    asyncio.run(burst())
    assert len(stream.writes) > 2
    for text in stream.writes:
        assert text.endswith("\n")
        assert len(text.encode()) <= access_log.WRITE_MAX or text.count("\n") == 1
    lines = "".join(stream.writes).splitlines()
    assert len(lines) == 202 and long_path in lines[200] and lines[-1].endswith("200 2 0.1ms")


def test_off_the_loop_a_line_is_written_at_once(restore_logging) -> None:
    stream = CountingStream()
    serve_logging(stream)
    AccessLog().write("10.0.0.1", "GET", "/v2/", 200, 2, 0.1)
    assert len(stream.writes) == 1


def test_the_lifespans_end_writes_what_waits(restore_logging) -> None:
    """A worker that stops writes the lines of its last turn before it goes."""
    stream = CountingStream()
    serve_logging(stream)
    from dockyard.api.middleware import RegistryHeaders

    async def lifespan(scope: dict, receive: object, send: object) -> None:
        middleware.access.write("10.0.0.1", "GET", "/v2/", 200, 2, 0.1)  # type: ignore[union-attr]

    middleware = RegistryHeaders(lifespan, services=None, log_requests=True)  # type: ignore[arg-type]

    async def stop() -> None:
        await middleware({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
        assert len(stream.writes) == 1  # before the loop's next turn

    asyncio.run(stop())
