"""`python -m bench.sink`: the least a registry must do to take and give blobs, as a server.

It answers only what the push and pull benchmarks send (open an upload, PATCH, PUT with the
digest, GET a blob) and does only the work no registry can skip: every byte hashed (sha256,
OpenSSL) and written, the digest compared, the file synced and renamed into place and its folder
synced before the 201; a download is read into one buffer and sent from it. Python only hands
buffers between system calls that release the GIL. Receiving and hashing overlap (one thread
reads the socket, another hashes and writes), and the disk starts writing each piece at once,
as Dockyard's filesystem store does.

Run against the same clients as the registries (`python -m bench.ceiling`), it measures this
machine's own limit for each transfer: what the clients, the kernel and the disk leave for any
server. It is a measuring stick, not a registry: no names checked, no metadata, no auth.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import os
import queue
import re
import socket
import threading
import uuid
from pathlib import Path
from urllib.parse import unquote

PIECE = 1024 * 1024
PIECES_IN_FLIGHT = 4
# Downloads: read into one buffer and sent from it. On the benchmark machine this beat
# `sendfile` (2.2 GB/s against 1.3 for a 512 MiB blob from the page cache, in one run of
# `python -m bench.ceiling`), as 512 KiB beat 128 KiB (1.5 GB/s).
SEND_PIECE = 512 * 1024
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<id>[0-9a-f]{32})?$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/sha256:(?P<hex>[0-9a-f]{64})$")
_SYNC_FILE_RANGE_WRITE = 2

try:
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
    _sync_file_range = _libc.sync_file_range
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
except (OSError, AttributeError):
    _sync_file_range = None


class Upload:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.hasher = hashlib.sha256()
        self.size = 0

    def close(self) -> None:
        os.close(self.fd)


class Sink:
    def __init__(self, data: Path) -> None:
        self.uploads_dir = data / "uploads"
        self.blobs_dir = data / "blobs"
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.uploads: dict[str, Upload] = {}
        self.lock = threading.Lock()

    # the connection --------------------------------------------------------------------------

    def serve(self, conn: socket.socket) -> None:
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    more = conn.recv(65536)
                    if not more:
                        return
                    buffered += more
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                path, _, query = target.partition("?")
                params = dict(p.partition("=")[::2] for p in query.split("&") if p)
                status, extra, buffered = self.answer(conn, method, path, params, length, buffered)
                if status:
                    reply = f"HTTP/1.1 {status}\r\n" + "".join(
                        f"{k}: {v}\r\n" for k, v in extra.items()
                    )
                    if "Content-Length" not in extra:
                        reply += "Content-Length: 0\r\n"
                    conn.sendall((reply + "\r\n").encode("latin-1"))
                if headers.get("connection", "").lower() == "close":
                    return

    def answer(
        self,
        conn: socket.socket,
        method: str,
        path: str,
        params: dict[str, str],
        length: int,
        buffered: bytes,
    ) -> tuple[str, dict[str, str], bytes]:
        """The status line and headers to send (an empty status: already answered), and what
        of the socket's bytes belongs to the next request."""
        if path == "/v2/" and method in ("GET", "HEAD"):
            return "200 OK", {}, buffered
        if (m := _BLOB.match(path)) and method in ("GET", "HEAD"):
            return self.download(conn, m["hex"], method == "GET"), {}, buffered
        if (m := _UPLOAD.match(path)) is None:
            return "404 Not Found", {}, self.discard(conn, length, buffered)
        name, upload_id = m["name"], m["id"]
        if method == "POST" and upload_id is None:
            upload_id = uuid.uuid4().hex
            with self.lock:
                self.uploads[upload_id] = Upload(self.uploads_dir / upload_id)
            buffered = self.discard(conn, length, buffered)
            return (
                "202 Accepted",
                {"Location": f"/v2/{name}/blobs/uploads/{upload_id}", "Range": "0-0"},
                buffered,
            )
        with self.lock:
            upload = self.uploads.get(upload_id or "")
        if upload is None or method not in ("PATCH", "PUT"):
            return "404 Not Found", {}, self.discard(conn, length, buffered)
        buffered = self.receive(conn, upload, length, buffered)
        location = f"/v2/{name}/blobs/uploads/{upload_id}"
        if method == "PATCH":
            return (
                "202 Accepted",
                {"Location": location, "Range": f"0-{max(upload.size - 1, 0)}"},
                buffered,
            )
        with self.lock:
            self.uploads.pop(upload_id or "", None)
        digest = "sha256:" + upload.hasher.hexdigest()
        try:
            if unquote(params.get("digest", "")) != digest:
                os.unlink(upload.path)
                return "400 Bad Request", {}, buffered
            os.fsync(upload.fd)
        finally:
            upload.close()
        os.rename(upload.path, self.blobs_dir / digest.removeprefix("sha256:"))
        fd = os.open(self.blobs_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return (
            "201 Created",
            {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest},
            buffered,
        )

    # bodies ----------------------------------------------------------------------------------

    def receive(self, conn: socket.socket, upload: Upload, length: int, buffered: bytes) -> bytes:
        """`length` bytes from the socket into the upload: this thread receives into a few
        buffers in turn while a second one hashes and writes the one before."""
        taken = buffered[:length]
        if taken:
            self._absorb(upload, memoryview(taken))
        rest = buffered[length:]
        remaining = length - len(taken)
        if remaining == 0:
            return rest
        free: queue.Queue[memoryview] = queue.Queue()
        for _ in range(PIECES_IN_FLIGHT):
            free.put(memoryview(bytearray(PIECE)))
        full: queue.Queue[tuple[memoryview, int] | None] = queue.Queue()
        failure: list[BaseException] = []

        def absorb() -> None:
            while (item := full.get()) is not None:
                buffer, got = item
                try:
                    if not failure:
                        self._absorb(upload, buffer[:got])
                except BaseException as exc:
                    failure.append(exc)
                free.put(buffer)

        writer = threading.Thread(target=absorb, daemon=True)
        writer.start()
        try:
            while remaining:
                buffer = free.get()
                got = conn.recv_into(buffer, min(PIECE, remaining), socket.MSG_WAITALL)
                if got == 0:
                    raise ConnectionError("client went away mid-body")
                remaining -= got
                full.put((buffer, got))
        finally:
            full.put(None)
            writer.join()
        if failure:
            raise failure[0]
        return rest

    @staticmethod
    def _absorb(upload: Upload, piece: memoryview) -> None:
        upload.hasher.update(piece)
        start = upload.size
        while piece:
            written = os.pwrite(upload.fd, piece, upload.size)
            upload.size += written
            piece = piece[written:]
        if _sync_file_range is not None:
            _sync_file_range(upload.fd, start, upload.size - start, _SYNC_FILE_RANGE_WRITE)

    @staticmethod
    def discard(conn: socket.socket, length: int, buffered: bytes) -> bytes:
        remaining = length - len(buffered[:length])
        while remaining > 0:
            got = len(conn.recv(min(remaining, PIECE)))
            if got == 0:
                raise ConnectionError("client went away mid-body")
            remaining -= got
        return buffered[length:]

    def download(self, conn: socket.socket, hex_digest: str, body: bool) -> str:
        try:
            fd = os.open(self.blobs_dir / hex_digest, os.O_RDONLY)
        except FileNotFoundError:
            return "404 Not Found"
        try:
            size = os.fstat(fd).st_size
            conn.sendall(
                f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n"
                "Content-Type: application/octet-stream\r\n"
                f"Docker-Content-Digest: sha256:{hex_digest}\r\n\r\n".encode()
            )
            view = memoryview(bytearray(SEND_PIECE))
            offset = 0
            while body and offset < size:
                got = os.preadv(fd, [view], offset)
                if got == 0:
                    raise OSError(f"blob {hex_digest} shorter than it was")
                conn.sendall(view[:got])
                offset += got
        finally:
            os.close(fd)
        return ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sink", description="the least a registry must do, as a server"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True)
    args = parser.parse_args(argv)
    sink = Sink(args.data)
    listener = socket.create_server(("127.0.0.1", args.port), backlog=256)

    def serve(conn: socket.socket) -> None:
        # a client gone or a request this sink does not speak: its connection ends
        with contextlib.suppress(OSError, ValueError):
            sink.serve(conn)

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
