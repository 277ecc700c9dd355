"""Byte plumbing shared by the on-disk image formats: verified blob intake, streaming reads,
atomic file replacement, and one read interface over a directory or a tarball.

Every local destination receives blobs the same way: the stream is hashed and counted while it is
written to a temporary file, a dropped stream is resumed at the byte it reached, and only a blob
whose size and digest both match is renamed into place. Sources read a folder or a tar member
the same way, so one layout reader serves `oci:` and `oci-archive:`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import posixpath
import shutil
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from dockyard.client.errors import ClientError, DigestMismatch, NotFound
from dockyard.client.image import BlobOpener, ProgressCallback
from dockyard.core.digest import Digest
from dockyard.core.manifest import Descriptor

CHUNK = 1 << 20
# How many times a stream that fails or ends early is re-opened at the offset it reached.
MAX_RESUMES = 3
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def parse_digest(text: str) -> Digest:
    """A digest we can verify; anything else is refused before it becomes a file name."""
    digest = Digest.try_parse(text)
    if digest is None:
        raise ClientError(f"invalid or unsupported digest {text[:100]!r}", code="DIGEST_INVALID")
    return digest


def blob_relpath(digest: str) -> str:
    parsed = parse_digest(digest)
    return f"blobs/{parsed.algorithm}/{parsed.hex}"


async def _aclose(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def receive_blob(
    descriptor: Descriptor,
    opener: BlobOpener,
    progress: ProgressCallback | None,
    write: Callable[[bytes], object],
) -> None:
    """Feed the blob's bytes to `write` (called in a worker thread), verifying size and digest.

    A stream that raises something other than a ClientError, or ends early after making
    progress, is re-opened at the offset reached (the hash state carries over), up to
    MAX_RESUMES times. Raises DigestMismatch when the bytes are not the ones described; the
    caller discards what `write` received.
    """
    digest = parse_digest(descriptor.digest)
    hasher = digest.hasher()
    received = 0
    resumes = 0

    def consume(chunk: bytes) -> None:
        hasher.update(chunk)
        write(chunk)

    while True:
        start = received
        failure: Exception | None = None
        stream = opener(received)
        iterator = stream.__aiter__()
        try:
            while True:
                # Only a failure of the stream itself is worth a resume; one in `write`
                # (a full disk, a corrupt gzip) is not.
                try:
                    chunk = await iterator.__anext__()
                except StopAsyncIteration:
                    break
                except ClientError:
                    raise
                except Exception as exc:
                    failure = exc
                    break
                if received + len(chunk) > descriptor.size:
                    raise DigestMismatch(
                        f"blob {descriptor.digest}: source sent more than the "
                        f"{descriptor.size} bytes described"
                    )
                if chunk:
                    await asyncio.to_thread(consume, chunk)
                    received += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
        finally:
            await _aclose(stream)
        if received >= descriptor.size or (failure is None and received == start):
            break  # complete, or a clean end that made no progress: nothing more to get
        if resumes >= MAX_RESUMES:
            if failure is not None:
                raise failure
            break
        resumes += 1
        if failure is not None:
            await asyncio.sleep(0.2 * resumes)
    if received != descriptor.size:
        raise DigestMismatch(
            f"blob {descriptor.digest}: expected {descriptor.size} bytes, received {received}"
        )
    if hasher.hexdigest() != digest.hex:
        raise DigestMismatch(
            f"blob {descriptor.digest}: content has digest {digest.algorithm}:{hasher.hexdigest()}"
        )


async def stream_range(path: Path, start: int, end: int | None) -> AsyncIterator[bytes]:
    """Bytes [start, end) of a file (to its end when `end` is None), a chunk at a time."""
    try:
        handle = await asyncio.to_thread(open, path, "rb")
    except FileNotFoundError as exc:
        raise NotFound(f"{path} is missing") from exc
    try:
        handle.seek(start)
        position = start
        while end is None or position < end:
            want = CHUNK if end is None else min(CHUNK, end - position)
            chunk = await asyncio.to_thread(handle.read, want)
            if not chunk:
                break
            position += len(chunk)
            yield chunk
    finally:
        handle.close()


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: Path, data: bytes, *, fsync: bool = True, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a mix."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def sniff_compression(head: bytes) -> str | None:
    """'gzip', 'zstd', or None for anything else (an uncompressed tar)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


class Tree(Protocol):
    """Read access to the files of an image stored on disk, by slash-separated name."""

    def read_bytes(self, name: str) -> bytes:
        """A small file's content; raises NotFound."""

    def size(self, name: str) -> int | None:
        """The file's size, None when there is no such file."""

    def open(self, name: str, offset: int = 0) -> AsyncIterator[bytes]: ...

    def close(self) -> None: ...


class DirTree:
    """Files under a directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_bytes(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise NotFound(f"{self.root / name} is missing") from exc

    def size(self, name: str) -> int | None:
        path = self.root / name
        return path.stat().st_size if path.is_file() else None

    def open(self, name: str, offset: int = 0) -> AsyncIterator[bytes]:
        return stream_range(self.root / name, offset, None)

    def close(self) -> None:
        pass


def _normalise_member(name: str) -> str:
    return posixpath.normpath(name.lstrip("/")).removeprefix("./")


class TarTree:
    """Members of a tarball, read in place by offset: no extraction, any number of readers.

    A compressed tarball (`docker save | gzip`) is first decompressed to a temporary file,
    since members cannot be reached by offset inside a gzip stream.
    """

    def __init__(self, path: Path) -> None:
        self.archive = path
        self._tmp: Path | None = None
        self.path = path
        self.members: dict[str, tarfile.TarInfo] = {}
        self._load()

    def _load(self) -> None:
        try:
            with open(self.archive, "rb") as handle:
                head = handle.read(4)
        except FileNotFoundError as exc:
            raise NotFound(f"{self.archive} does not exist") from exc
        except IsADirectoryError as exc:
            raise ClientError(f"{self.archive} is a directory, not a tar archive") from exc
        if sniff_compression(head) == "gzip":
            fd, tmp = tempfile.mkstemp(prefix="dockyard-archive-", suffix=".tar")
            self._tmp = Path(tmp)
            with os.fdopen(fd, "wb") as out, gzip.open(self.archive, "rb") as src:
                shutil.copyfileobj(src, out, CHUNK)
            self.path = self._tmp
        try:
            with tarfile.open(self.path, mode="r:") as tar:
                for member in tar:
                    self.members[_normalise_member(member.name)] = member
        except (tarfile.TarError, EOFError, gzip.BadGzipFile) as exc:
            self.close()
            raise ClientError(f"{self.archive} is not a readable tar archive: {exc}") from exc

    def resolve(self, name: str) -> tarfile.TarInfo | None:
        name = _normalise_member(name)
        for _ in range(16):
            member = self.members.get(name)
            if member is None:
                return None
            if member.issym():
                name = _normalise_member(posixpath.join(posixpath.dirname(name), member.linkname))
            elif member.islnk():
                name = _normalise_member(member.linkname)
            elif member.isfile() and not member.issparse():
                return member
            else:
                return None
        return None

    def read_bytes(self, name: str) -> bytes:
        member = self.resolve(name)
        if member is None:
            raise NotFound(f"{self.archive} has no file {name}")
        with open(self.path, "rb") as handle:
            handle.seek(member.offset_data)
            return handle.read(member.size)

    def size(self, name: str) -> int | None:
        member = self.resolve(name)
        return None if member is None else member.size

    def open(self, name: str, offset: int = 0) -> AsyncIterator[bytes]:
        member = self.resolve(name)
        if member is None:
            raise NotFound(f"{self.archive} has no file {name}")
        return stream_range(
            self.path, member.offset_data + offset, member.offset_data + member.size
        )

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
