"""Bad input of every kind gets a spec error body and a 4xx, never a 500 or a traceback."""

from __future__ import annotations

import socket

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.push import SPEC_CODES, error_code, push_image, sha256, unique_repo
from tests.support.server import RunningRegistry


def test_version_check(client: httpx.Client) -> None:
    resp = client.get("/v2/")
    assert resp.status_code == 200
    assert resp.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_unknown_endpoint_and_method(client: httpx.Client) -> None:
    resp = client.get("/v3/whatever")
    assert resp.status_code == 404 and resp.json()["errors"]
    resp = client.post(f"/v2/{unique_repo()}/manifests/latest")
    assert resp.status_code == 405 and error_code(resp) == "UNSUPPORTED"


def test_invalid_names(client: httpx.Client) -> None:
    digest = sha256(b"x")
    for name in ("UPPER/case", "a..b", "trailing-", "a/-b", "x" * 300):
        resp = client.get(f"/v2/{name}/blobs/{digest}")
        assert resp.status_code == 400, name
        assert error_code(resp) == "NAME_INVALID"
        resp = client.post(f"/v2/{name}/blobs/uploads/")
        assert error_code(resp) == "NAME_INVALID"


def test_head_errors_have_no_body(client: httpx.Client) -> None:
    resp = client.head(f"/v2/{unique_repo()}/manifests/nope")
    assert resp.status_code == 404 and resp.content == b""


def test_unknowns(client: httpx.Client) -> None:
    repo = unique_repo()
    push_image(client, repo, "t")
    resp = client.get(f"/v2/{repo}/blobs/{sha256(b'absent')}")
    assert resp.status_code == 404 and error_code(resp) == "BLOB_UNKNOWN"
    resp = client.get(f"/v2/{repo}/blobs/sha256:bad")
    assert resp.status_code == 400 and error_code(resp) == "DIGEST_INVALID"
    resp = client.get(f"/v2/{repo}/manifests/absent")
    assert resp.status_code == 404 and error_code(resp) == "MANIFEST_UNKNOWN"
    resp = client.get(f"/v2/{repo}/manifests/sha256:bad")
    assert resp.status_code == 400 and error_code(resp) == "DIGEST_INVALID"


def raw_request(server: RunningRegistry, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_malformed_headers(registry: RunningRegistry, client: httpx.Client) -> None:
    repo = unique_repo()
    push_image(client, repo, "t")
    for headers in (
        {"Range": "bytes=abc"},
        {"Range": "garbage"},
        {"Accept": "\x7f;;,,"},
        {"If-None-Match": "*" * 5000},
    ):
        resp = client.get(f"/v2/{repo}/manifests/t", headers=headers)
        assert resp.status_code < 500
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    resp = client.patch(location, content=b"x", headers={"Content-Range": "zzz"})
    assert resp.status_code == 416 and error_code(resp) == "BLOB_UPLOAD_INVALID"
    reply = raw_request(
        registry,
        f"PUT {location}?digest={sha256(b'')} HTTP/1.1\r\n"
        "Host: x\r\nContent-Length: nonsense\r\n\r\n".encode(),
    )
    assert not reply.startswith(b"HTTP/1.1 5")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]),
    tail=st.sampled_from(["manifests/", "blobs/", "blobs/uploads/", "tags/list", "referrers/", ""]),
    segment=st.text(alphabet=st.characters(codec="ascii", exclude_characters="/?#%"), max_size=70),
    body=st.binary(max_size=200),
    query=st.sampled_from(
        [
            "",
            "?digest=sha256:00",
            "?n=x",
            "?last=%ff",
            "?mount=x&from=Y",
            "?tag=..",
            "?n=99999999999",
        ]
    ),
)
def test_fuzzed_requests_never_500(
    client: httpx.Client, method: str, tail: str, segment: str, body: bytes, query: str
) -> None:
    url = f"/v2/fuzz/{tail}{segment}{query}"
    try:
        resp = client.request(method, url, content=body if method not in ("GET", "HEAD") else None)
    except httpx.InvalidURL:
        return
    assert resp.status_code < 500, (method, url, resp.text)
    if method != "HEAD" and resp.status_code >= 400:
        assert resp.json()["errors"][0]["code"] in SPEC_CODES


def test_an_answer_before_the_body_is_read_closes_the_connection(
    registry: RunningRegistry, client: httpx.Client
) -> None:
    """A request refused before its body was read (too large, unknown upload) ends its
    connection and says `Connection: close`, so a client does not send its next request on a
    connection the server is closing (httpx then failed with 'Server disconnected')."""
    repo = unique_repo()
    too_large = 5 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        sock.sendall(
            f"PUT /v2/{repo}/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: "
            f"application/vnd.oci.image.manifest.v1+json\r\nContent-Length: "
            f"{too_large}\r\n\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                break
            head += chunk
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert b"\r\nconnection: close\r\n" in head.lower(), head[:400]
    # The same with a real client, back to back on one pool: every request gets its answer.
    unknown = f"/v2/{repo}/blobs/uploads/{'0' * 32}"
    for _ in range(30):
        refused = client.patch(unknown, content=b"x" * 300_000)
        assert refused.status_code == 404 and refused.headers["connection"] == "close"
        assert client.get("/v2/").status_code == 200
    # A request whose body was read keeps its connection.
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    kept = client.patch(location, content=b"y" * 1000)
    assert kept.status_code == 202 and "connection" not in kept.headers
