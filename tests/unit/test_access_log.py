"""Access lines written straight to the log stream read exactly as `logging` would write them,
and any other logging setup still gets them through `logging`."""

from __future__ import annotations

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
