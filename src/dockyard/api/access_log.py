"""The access log: one line per request, in the server log's own format.

Through `logging` a line costs a record, the handler chain and `time.strftime`, a large share
of a manifest GET's Python time (figures in bench/README.md). When the lines would reach a
single plain stream handler with the server's format, which is what `dockyard serve` sets up,
they are written straight to its stream instead: an f-string, a timestamp made once per
second, and the lines of one turn of the event loop in one write. A write per line cost more
than the rest of the answer's Python: the write lets go of the GIL, granian's threads (which
hand requests and answers over) take it, and the loop waits to have it back. Each write holds
whole lines and at most `PIPE_BUF` bytes, so on a pipe shared by the workers (journald's, a
container's) no other worker's line lands inside one. Any other logging setup gets the lines
through `logging`, unchanged, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time

from dockyard.core.logs import PLAIN_FORMAT, TextFormatter, has_secret_query, redact

LOG = logging.getLogger("dockyard.access")


def printable(path: str) -> str:
    """A request path fit for a log line: paths are logged decoded, and a %0A in one would
    otherwise start a line of the client's making (a forged record, say)."""
    return path if path.isprintable() else path.encode("unicode_escape").decode("ascii")


_LEVEL_AND_NAME = f" INFO {LOG.name} "
# The most bytes one write may carry for a pipe to take it whole (POSIX's PIPE_BUF on Linux).
WRITE_MAX = 4096


class AccessLog:
    def __init__(self) -> None:
        self._seen: list[logging.Handler] | None = None
        self._handler: logging.StreamHandler | None = None
        self._second = -1
        self._stamp = ""
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._pending_to: logging.StreamHandler | None = None  # the handler they were made for

    def write(
        self,
        client: str,
        method: str,
        path: str,
        status: int,
        sent: int,
        ms: float,
        account: str | None = None,
        token: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """`account` and `token` (an access token's name) say who asked, when known: who
        pushed or deleted something is what an operator reads the log for. `request_id`
        ties the line to the others written while serving the request."""
        if not LOG.isEnabledFor(logging.INFO):
            return
        handler = self._direct()
        if has_secret_query(path):  # a client's own signed URL or token: never logged
            path = redact(path)
        message = f'{client} "{method} {printable(path)}" {status} {sent} {ms:.1f}ms'
        if request_id is not None:
            message += f" request_id={request_id}"
        if account:
            message += f" account={account}" + (f" token={printable(token)}" if token else "")
        if handler is None:
            fields = {
                "client": client,
                "method": method,
                "path": path,
                "status": status,
                "bytes": sent,
                "ms": round(ms, 1),
            }
            if account:
                fields["account"] = account
                if token:
                    fields["token"] = token
            LOG.info("%s", message, extra={"http": fields, "request_logged": True})
            return
        now = time.time()
        second = int(now)
        if second != self._second:  # logging.Formatter's default time format, made once
            self._second = second
            self._stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now))
        line = f"{self._stamp},{int((now - second) * 1000):03d}{_LEVEL_AND_NAME}{message}\n"
        # Bytes: a line is almost always ASCII, which `isascii` tells without a scan.
        size = len(line) if line.isascii() else len(line.encode())
        pending = self._pending
        if pending and (handler is not self._pending_to or self._pending_bytes + size > WRITE_MAX):
            self.flush()
            pending = self._pending
        pending.append(line)
        self._pending_bytes += size
        self._pending_to = handler
        if len(pending) == 1:  # the first line since the last write: the write to come
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on the server's loop: nothing would write it later
                self.flush()

    def flush(self) -> None:
        """Write the lines waiting, in the order they came, in one write: `write` keeps them
        within `WRITE_MAX` bytes, or to one line longer than that."""
        pending, handler = self._pending, self._pending_to
        if not pending or handler is None:
            return
        self._pending, self._pending_bytes = [], 0
        with handler.lock:  # type: ignore[union-attr]
            stream = handler.stream
            try:
                stream.write("".join(pending))
                stream.flush()
            except Exception:  # a full disk, a closed stream: as `logging` does, say so
                handler.handleError(logging.makeLogRecord({"msg": "access log lines lost"}))

    def _direct(self) -> logging.StreamHandler | None:
        """The one plain stream handler the line would reach, or None; worked out again
        whenever the root logger's handlers change (a new logging configuration)."""
        handlers = logging.getLogger().handlers
        if handlers != self._seen:  # compares the handler objects themselves
            self._seen = list(handlers)
            self._handler = _plain_stream_handler()
        return self._handler


def _plain_stream_handler() -> logging.StreamHandler | None:
    reached: list[logging.Handler] = []
    logger: logging.Logger | None = LOG
    while logger is not None:
        if logger.filters:
            return None
        reached.extend(h for h in logger.handlers if h.level <= logging.INFO)
        logger = logger.parent if logger.propagate else None
    if len(reached) != 1:
        return None
    handler = reached[0]
    formatter = handler.formatter
    if (
        type(handler) is not logging.StreamHandler  # not a file, socket or capturing handler
        or handler.filters
        or formatter is None
        or type(formatter) is not TextFormatter
        or formatter._fmt != PLAIN_FORMAT
        or formatter.datefmt is not None
        or formatter.converter is not time.localtime
    ):
        return None
    return handler
