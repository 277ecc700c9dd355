"""The registry operations that the benchmarks time, spoken in plain HTTP (httpx, curl, wrk)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.payload import Blob, MiB

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
STREAM_CHUNK = 1 * MiB


class BenchError(RuntimeError):
    """A server answered something other than what the protocol promises."""


def _check(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        raise BenchError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {expected}: {response.text[:300]}"
        )
    return response


# Untimed set-up writes that a server answered 503 with Retry-After ("nothing was changed, try
# again") and that were sent again, by server URL: a figure to report, never hidden.
RETRIED: Counter[str] = Counter()
_RETRIED_LOCK = threading.Lock()
RETRIES = 10


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Client:
    """One HTTP/1.1 keep-alive connection's worth of registry client (not thread-safe)."""

    def __init__(self, base_url: str, timeout: float = 600.0):
        self.base_url = base_url
        self.http = httpx.Client(
            base_url=base_url, timeout=timeout, limits=httpx.Limits(max_connections=1)
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, location: str, **params: str) -> httpx.URL:
        url = httpx.URL(self.base_url).join(location)
        return url.copy_merge_params(params) if params else url

    def _again_on_503(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        """`send()`, sent again (at most RETRIES times) while the server answers 503 with a
        Retry-After, as the protocol lets a client do; each retry is counted in RETRIED."""
        for _ in range(RETRIES):
            response = send()
            wait = response.headers.get("retry-after", "")
            if response.status_code != 503 or not wait.isdigit():
                return response
            with _RETRIED_LOCK:
                RETRIED[self.base_url] += 1
            time.sleep(min(int(wait), 5))
        return send()

    def ping(self) -> None:
        _check(self.http.get("/v2/"), 200)

    # blobs ------------------------------------------------------------------------------------

    def start_upload(self, repo: str) -> str:
        response = _check(self.http.post(f"/v2/{repo}/blobs/uploads/"), 202)
        return response.headers["location"]

    def push_monolithic(self, repo: str, blob: Blob) -> None:
        """POST to open an upload, then one PUT carrying the whole body and the digest."""
        location = self.start_upload(repo)
        response = self.http.put(
            self._url(location, digest=blob.digest),
            content=blob.segments(chunk=STREAM_CHUNK),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
        )
        _check(response, 201)

    def push_chunked(self, repo: str, blob: Blob, chunk: int) -> int:
        """POST, then PATCH after PATCH of `chunk` bytes with Content-Range, then PUT ?digest."""
        location = self.start_upload(repo)
        patches = 0
        for start in range(0, blob.size, chunk):
            end = min(blob.size, start + chunk)
            response = _check(
                self.http.patch(
                    self._url(location),
                    content=blob.segments(start, end, chunk=STREAM_CHUNK),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{end - 1}",
                        "Content-Length": str(end - start),
                    },
                ),
                202,
            )
            location = response.headers["location"]
            patches += 1
        _check(
            self.http.put(self._url(location, digest=blob.digest), headers={"Content-Length": "0"}),
            201,
        )
        return patches

    def push_small(self, repo: str, data: bytes, digest: str) -> None:
        location = self.start_upload(repo)
        _check(
            self.http.put(
                self._url(location, digest=digest),
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            ),
            201,
        )

    def mount(self, repo: str, source: str, digest: str) -> None:
        _check(
            self._again_on_503(
                lambda: self.http.post(
                    f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source}
                )
            ),
            201,
        )

    def blob_size(self, repo: str, digest: str) -> int:
        response = _check(self.http.head(f"/v2/{repo}/blobs/{digest}"), 200)
        return int(response.headers["content-length"])

    # manifests --------------------------------------------------------------------------------

    def put_manifest(
        self, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> None:
        _check(
            self._again_on_503(
                lambda: self.http.put(
                    f"/v2/{repo}/manifests/{reference}",
                    content=body,
                    headers={"Content-Type": media_type},
                )
            ),
            201,
        )

    # listings ---------------------------------------------------------------------------------

    def list_pages(
        self, path: str, params: dict[str, str], max_pages: int, times: list[float] | None = None
    ) -> list[bytes]:
        """GET `path`, then every `Link: <...>; rel="next"` after it: the bodies, unparsed.
        With `times`, each request's seconds are appended to it."""
        bodies = []
        started = time.perf_counter()
        response = _check(self.http.get(path, params=params), 200)
        if times is not None:
            times.append(time.perf_counter() - started)
        bodies.append(response.content)
        for _ in range(max_pages):
            link = next_link(response.headers.get("link"))
            if link is None:
                return bodies
            started = time.perf_counter()
            response = _check(self.http.get(self._url(link)), 200)
            if times is not None:
                times.append(time.perf_counter() - started)
            bodies.append(response.content)
        raise BenchError(f"{path}: still a Link after {max_pages} pages")


_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def next_link(header: str | None) -> str | None:
    if not header:
        return None
    match = _LINK.search(header)
    return match.group(1) if match else None


def entries(bodies: list[bytes], key: str) -> list[str]:
    names: list[str] = []
    for body in bodies:
        names.extend(json.loads(body).get(key) or [])
    return names


# images -----------------------------------------------------------------------------------------


@dataclass
class SmallImage:
    """A config, one small layer and the OCI manifest naming them, as bytes ready to send."""

    config: bytes
    layer: bytes
    manifest: bytes

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def layer_digest(self) -> str:
        return sha256(self.layer)


def small_image(layer_size: int = 4096, label: str = "") -> SmallImage:
    layer = os.urandom(layer_size)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"bench": label or os.urandom(8).hex()}},
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = manifest_for(config, layer)
    return SmallImage(config, layer, manifest)


def manifest_for(config: bytes, layer: bytes) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
        },
        separators=(",", ":"),
    ).encode()


def push_image(client: Client, repo: str, tag: str, image: SmallImage) -> None:
    client.push_small(repo, image.config, image.config_digest)
    client.push_small(repo, image.layer, image.layer_digest)
    client.put_manifest(repo, tag, image.manifest)


# curl for downloads -----------------------------------------------------------------------------


def curl_download(url: str, expected_size: int) -> float:
    """GET `url` with curl into /dev/null; the wall time in seconds (process start included)."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    fields = result.stdout.split()
    if (
        result.returncode != 0
        or len(fields) != 2
        or fields[0] != "200"
        or int(fields[1]) != expected_size
    ):
        raise BenchError(
            f"curl {url}: exit {result.returncode}, {result.stdout!r} "
            f"{result.stderr.strip()!r}; expected 200 and {expected_size} bytes"
        )
    return elapsed


def curl_upload(url: str, path: Path) -> None:
    """PUT the file at `path` to `url` with curl (the blob's last and only chunk): 201 expected."""
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            "-X",
            "PUT",
            "-T",
            str(path),
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            "-w",
            "%{http_code}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0 or result.stdout.strip() != "201":
        raise BenchError(
            f"curl PUT {url}: exit {result.returncode}, {result.stdout!r} "
            f"{result.stderr.strip()!r}; expected 201"
        )
