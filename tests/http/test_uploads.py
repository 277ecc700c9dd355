"""Blob uploads over HTTP: every way a client can send a blob, and every way it can go wrong."""

from __future__ import annotations

import hashlib
import os
import time

import httpx

from tests.support.push import error_code, push_blob, sha256, unique_repo


def start(client: httpx.Client, repo: str) -> str:
    resp = client.post(f"/v2/{repo}/blobs/uploads/")
    assert resp.status_code == 202
    assert resp.headers["Range"] == "0-0"
    assert resp.headers["Docker-Upload-UUID"]
    return resp.headers["Location"]


def test_monolithic_post_then_get_head_range(client: httpx.Client) -> None:
    repo = unique_repo()
    data = os.urandom(10_000)
    digest = push_blob(client, repo, data)
    got = client.get(f"/v2/{repo}/blobs/{digest}")
    assert got.content == data
    assert got.headers["Docker-Content-Digest"] == digest
    assert got.headers["ETag"] == f'"{digest}"'
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    assert head.status_code == 200 and head.headers["Content-Length"] == "10000"
    assert head.content == b""
    for header, expected in (
        ("bytes=0-99", data[:100]),
        ("bytes=9990-", data[9990:]),
        ("bytes=-5", data[-5:]),
        ("bytes=100-100", data[100:101]),
    ):
        part = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == expected
        assert part.headers["Content-Length"] == str(len(expected))
        assert part.headers["Content-Range"].endswith("/10000")
    bad = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=10000-"})
    assert bad.status_code == 416
    assert bad.headers["Content-Range"] == "bytes */10000"


def test_post_then_put_with_body(client: httpx.Client) -> None:
    repo = unique_repo()
    data = b"single put"
    location = start(client, repo)
    resp = client.put(location, params={"digest": sha256(data)}, content=data)
    assert resp.status_code == 201
    assert resp.headers["Location"] == f"/v2/{repo}/blobs/{sha256(data)}"
    assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_streamed_patch_without_content_range(client: httpx.Client) -> None:
    repo = unique_repo()
    data = os.urandom(3 * 1024 * 1024 + 17)

    def body():
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    location = start(client, repo)
    resp = client.patch(location, content=body())
    assert resp.status_code == 202
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    done = client.put(resp.headers["Location"], params={"digest": sha256(data)})
    assert done.status_code == 201
    assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_chunked_upload_in_order_status_and_last_chunk_in_put(client: httpx.Client) -> None:
    repo = unique_repo()
    data = os.urandom(5000)
    location = start(client, repo)
    for offset in (0, 2000):
        chunk = data[offset : offset + 2000]
        resp = client.patch(
            location,
            content=chunk,
            headers={
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert resp.status_code == 202, resp.text
        location = resp.headers["Location"]
        assert resp.headers["Range"] == f"0-{offset + len(chunk) - 1}"
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-3999"
    # A chunk that does not continue where the last ended: 416, and nothing changes.
    gap = client.patch(location, content=b"x", headers={"Content-Range": "4500-4500"})
    assert gap.status_code == 416
    assert error_code(gap) == "BLOB_UPLOAD_INVALID"
    overlap = client.patch(location, content=b"xx", headers={"Content-Range": "3000-3001"})
    assert overlap.status_code == 416
    assert client.get(location).headers["Range"] == "0-3999"
    last = client.put(
        location,
        params={"digest": sha256(data)},
        content=data[4000:],
        headers={"Content-Range": "4000-4999"},
    )
    assert last.status_code == 201, last.text
    assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_sha512_and_zero_byte_blobs(client: httpx.Client) -> None:
    repo = unique_repo()
    data = b"sha512 content"
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert resp.status_code == 201
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == data
    empty = push_blob(client, repo, b"")
    got = client.get(f"/v2/{repo}/blobs/{empty}")
    assert got.status_code == 200 and got.content == b""
    assert got.headers["Content-Length"] == "0"


def test_wrong_digest_is_refused_and_never_served(client: httpx.Client) -> None:
    repo = unique_repo()
    claimed = sha256(b"what the client claims")
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": claimed}, content=b"something else"
    )
    assert resp.status_code == 400
    assert error_code(resp) == "DIGEST_INVALID"
    assert client.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404
    location = start(client, repo)
    client.patch(location, content=b"abc")
    bad = client.put(location, params={"digest": claimed})
    assert bad.status_code == 400 and error_code(bad) == "DIGEST_INVALID"
    assert client.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404
    missing = client.put(start(client, repo))
    assert missing.status_code == 400 and error_code(missing) == "DIGEST_INVALID"
    malformed = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": "sha256:zz"}, content=b"x"
    )
    assert malformed.status_code == 400 and error_code(malformed) == "DIGEST_INVALID"


def test_cancel_and_unknown_uploads(client: httpx.Client) -> None:
    repo = unique_repo()
    location = start(client, repo)
    client.patch(location, content=b"partial")
    assert client.delete(location).status_code == 204
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        resp = client.request(method, location, params={"digest": sha256(b"partial")})
        assert resp.status_code == 404, method
        assert error_code(resp) == "BLOB_UPLOAD_UNKNOWN"
    for bad_id in ("nope", "a" * 32, "%2e%2e"):
        resp = client.get(f"/v2/{repo}/blobs/uploads/{bad_id}")
        assert resp.status_code == 404
        assert error_code(resp) == "BLOB_UPLOAD_UNKNOWN"
    # Clients normalise dot segments away; whatever path results, it is a clean 404.
    for path in ("../../../etc/passwd", "..%2f..%2fmetadata.db"):
        resp = client.get(f"/v2/{repo}/blobs/uploads/{path}")
        assert resp.status_code == 404 and resp.json()["errors"]


def test_upload_belongs_to_its_repository(client: httpx.Client) -> None:
    location = start(client, unique_repo())
    other = location.replace("/v2/test/", "/v2/elsewhere/")
    assert client.get(other).status_code == 404


def test_cross_repository_mount_and_automatic_mount(client: httpx.Client) -> None:
    source, target, auto = unique_repo(), unique_repo(), unique_repo()
    digest = push_blob(client, source, os.urandom(100))
    resp = client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source})
    assert resp.status_code == 201
    assert resp.headers["Location"] == f"/v2/{target}/blobs/{digest}"
    assert client.head(f"/v2/{target}/blobs/{digest}").status_code == 200
    resp = client.post(f"/v2/{auto}/blobs/uploads/", params={"mount": digest})
    assert resp.status_code == 201
    unknown = sha256(b"never pushed")
    resp = client.post(f"/v2/{auto}/blobs/uploads/", params={"mount": unknown, "from": source})
    assert resp.status_code == 202 and resp.headers["Location"]


def test_blob_delete(client: httpx.Client) -> None:
    repo, other = unique_repo(), unique_repo()
    data = os.urandom(64)
    digest = push_blob(client, repo, data)
    push_blob(client, other, data)
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
    gone = client.get(f"/v2/{repo}/blobs/{digest}")
    assert gone.status_code == 404 and error_code(gone) == "BLOB_UNKNOWN"
    assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 404
    # The other repository's link is untouched: deleting is per repository.
    assert client.get(f"/v2/{other}/blobs/{digest}").content == data


def test_abandoned_uploads_expire_with_their_data(start_registry) -> None:
    server = start_registry(
        env={"DOCKYARD_UPLOAD_TTL_SECONDS": "1", "DOCKYARD_UPLOAD_PURGE_INTERVAL_SECONDS": "1"}
    )
    repo = unique_repo()
    with httpx.Client(base_url=server.url) as c:
        location = start(c, repo)
        c.patch(location, content=b"abandoned")
        uploads = server.data_dir / "uploads"
        assert any(uploads.iterdir())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and c.get(location).status_code != 404:
            time.sleep(0.2)
        resp = c.get(location)
        assert resp.status_code == 404 and error_code(resp) == "BLOB_UPLOAD_UNKNOWN"
        assert not any(uploads.iterdir())


def test_chunks_on_fresh_connections_and_no_trailing_slash(registry) -> None:
    """Each chunk on a new connection may land on another worker: the digest is still right."""
    repo = unique_repo()
    data = os.urandom(3 * 700_000)
    with httpx.Client(base_url=registry.url) as c:
        resp = c.post(f"/v2/{repo}/blobs/uploads")
        assert resp.status_code == 202
        location = resp.headers["Location"]
    for offset in range(0, len(data), 700_000):
        with httpx.Client(base_url=registry.url) as c:
            resp = c.patch(
                location,
                content=data[offset : offset + 700_000],
                headers={"Content-Range": f"{offset}-{offset + 699_999}"},
            )
            assert resp.status_code == 202
    with httpx.Client(base_url=registry.url) as c:
        assert c.put(location, params={"digest": sha256(data)}).status_code == 201
        assert c.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data


def test_a_small_put_is_checked_before_anything_is_kept(client: httpx.Client) -> None:
    """A whole small blob in the closing PUT: a wrong digest is refused and ends the upload,
    another repository's upload is unknown, the same blob twice is one blob, and a body just
    over the in-memory bound (64 KiB) is streamed as before."""
    repo = unique_repo()
    data = os.urandom(4096)
    location = start(client, repo)
    claimed = sha256(b"not these bytes")
    bad = client.put(location, params={"digest": claimed}, content=data)
    assert bad.status_code == 400 and error_code(bad) == "DIGEST_INVALID"
    assert client.head(f"/v2/{repo}/blobs/{claimed}").status_code == 404
    assert client.head(f"/v2/{repo}/blobs/{sha256(data)}").status_code == 404
    assert client.get(location).status_code == 404, "the refused upload is gone"
    other = start(client, unique_repo()).replace("/v2/test/", "/v2/elsewhere/")
    stolen = client.put(other, params={"digest": sha256(data)}, content=data)
    assert stolen.status_code == 404 and error_code(stolen) == "BLOB_UPLOAD_UNKNOWN"
    for _ in range(2):
        done = client.put(start(client, repo), params={"digest": sha256(data)}, content=data)
        assert done.status_code == 201
    assert client.get(f"/v2/{repo}/blobs/{sha256(data)}").content == data
    large = os.urandom(64 * 1024 + 1)
    done = client.put(start(client, repo), params={"digest": sha256(large)}, content=large)
    assert done.status_code == 201
    assert client.get(f"/v2/{repo}/blobs/{sha256(large)}").content == large
