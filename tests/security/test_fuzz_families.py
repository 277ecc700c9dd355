"""Issue 13, finding 14: families of hostile input the general fuzz test (tests/http) rarely
draws, each of which once answered a plain-text 500. Deep nesting (up to 100,000 levels) in
every JSON a client sends; digits of other scripts (superscripts, Arabic-Indic, full-width)
and enormous numbers (up to 10,000 digits, past int()'s 4,300-digit limit) wherever the
registry reads a number.

Every answer must be a 4xx (or a success) with the spec's JSON error body, never a 5xx.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.push import OCI_MANIFEST, SPEC_CODES, error_code, push_image, unique_repo
from tests.support.server import RunningRegistry

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Digits int() or str.isdigit() take that are not ASCII: superscripts, other scripts' decimal
# digits, full-width ones.
UNICODE_DIGITS = st.characters(categories=["Nd", "No"], exclude_characters="0123456789")
ENORMOUS = st.integers(min_value=20, max_value=10_000).map(lambda n: "9" * n)
NUMBERISH = st.one_of(
    ENORMOUS,
    st.text(UNICODE_DIGITS, min_size=1, max_size=8),
    st.tuples(st.text("0123456789", max_size=5), UNICODE_DIGITS).map("".join),
    st.integers(min_value=20, max_value=10_000).map(lambda n: "0" * n + "1"),
)


def assert_spec_answer(response: httpx.Response, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.headers["Content-Type"] == "application/json", what
        assert error_code(response) in SPEC_CODES, (what, response.text[:300])


@pytest.fixture(scope="module")
def image(registry: RunningRegistry) -> Iterator[tuple[str, str, str]]:
    """(repository, manifest digest, upload location) to aim numbers at."""
    with httpx.Client(base_url=registry.url, timeout=60.0) as http:
        repo = unique_repo("fuzzfam")
        digest, _ = push_image(http, repo, "v1")
        location = http.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        yield repo, digest, location


def nested(depth: int, kind: str) -> bytes:
    opening, closing = {"array": ("[", "]"), "object": ('{"k":', "}"), "mixed": ('[{"k":', "}]")}[
        kind
    ]
    return ('{"schemaVersion":2,"v":' + opening * depth + "0" + closing * depth + "}").encode()


@FUZZ
@given(
    depth=st.one_of(st.integers(60, 2_000), st.integers(2_000, 100_000)),
    kind=st.sampled_from(["array", "object", "mixed"]),
    unclosed=st.booleans(),
)
def test_finding_14_fuzz_deep_nesting_in_manifests(
    client: httpx.Client, depth: int, kind: str, unclosed: bool
) -> None:
    body = nested(depth, kind)
    if unclosed:  # only the openings: malformed and deep at once
        body = body[: len(body) // 2]
    response = client.put(
        f"/v2/{unique_repo('deep')}/manifests/v1",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_spec_answer(response, (depth, kind, unclosed))
    assert response.status_code == 400 and error_code(response) == "MANIFEST_INVALID"


@FUZZ
@given(
    number=st.one_of(
        ENORMOUS,
        st.integers(20, 5_000).map(lambda n: "1e" + "9" * (n // 10 + 1)),
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]),
    ),
    field=st.sampled_from(["size", "schemaVersion", "extra"]),
)
def test_finding_14_fuzz_numbers_inside_manifests(
    client: httpx.Client, number: str, field: str
) -> None:
    config = f'{{"mediaType":"application/vnd.oci.image.config.v1+json","size":{number},'
    body = (
        f'{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","{field}":{number},"config":'
        + config
        + '"digest":"sha256:'
        + "0" * 64
        + '"},"layers":[]}'
    )
    response = client.put(
        f"/v2/{unique_repo('num')}/manifests/v1",
        content=body.encode(),
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert_spec_answer(response, (field, number[:30]))
    assert response.status_code == 400  # invalid, or naming a blob the registry lacks


@FUZZ
@given(n=NUMBERISH, where=st.sampled_from(["tags", "catalog"]))
def test_finding_14_fuzz_page_sizes(
    client: httpx.Client, image: tuple[str, str, str], n: str, where: str
) -> None:
    repo = image[0]
    path = f"/v2/{repo}/tags/list" if where == "tags" else "/v2/_catalog"
    response = client.get(path, params={"n": n})
    assert_spec_answer(response, (where, n[:40]))
    assert response.status_code == 400


@FUZZ
@given(
    first=st.one_of(st.just(""), NUMBERISH, st.integers(0, 10**6).map(str)),
    last=st.one_of(st.just(""), NUMBERISH, st.integers(0, 10**6).map(str)),
    method=st.sampled_from(["GET", "HEAD"]),
)
def test_finding_14_fuzz_ranges(
    client: httpx.Client, image: tuple[str, str, str], first: str, last: str, method: str
) -> None:
    repo, digest, _ = image
    header = f"bytes={first}-{last}".encode()
    response = client.request(method, f"/v2/{repo}/blobs/{digest}", headers={"Range": header})
    assert_spec_answer(response, header[:60])


@FUZZ
@given(start=NUMBERISH, end=NUMBERISH, total=st.one_of(st.just(""), NUMBERISH))
def test_finding_14_fuzz_content_ranges(
    client: httpx.Client, image: tuple[str, str, str], start: str, end: str, total: str
) -> None:
    header = f"{start}-{end}" + (f"/{total}" if total else "")
    response = client.patch(image[2], content=b"x", headers={"Content-Range": header.encode()})
    assert_spec_answer(response, header[:60])
    assert response.status_code == 416


@FUZZ
@given(length=NUMBERISH)
def test_finding_14_fuzz_content_lengths(registry: RunningRegistry, length: str) -> None:
    request = (
        f"PUT /v2/{unique_repo('len')}/manifests/v1 HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: {OCI_MANIFEST}\r\nConnection: close\r\nContent-Length: "
    ).encode()
    with socket.create_connection(("127.0.0.1", registry.port), timeout=20) as sock:
        sock.sendall(request + length.encode() + b"\r\n\r\n{}")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    reply = b"".join(chunks)
    assert reply.startswith(b"HTTP/1.1 4"), reply[:300]


# -- protocol garbage ------------------------------------------------------------------------
RAW_REPO = "fuzzraw/img"
RAW_BLOB = b"a blob for garbage to be aimed at"
RAW_BLOB_DIGEST = "sha256:" + hashlib.sha256(RAW_BLOB).hexdigest()
TOKEN = st.text(st.characters(codec="latin-1"), min_size=0, max_size=12)
RAW_PATHS = st.one_of(
    st.sampled_from(
        [
            "/v2/",
            "/v2/_catalog",
            "/v2/fuzz/manifests/t",
            "/v2/fuzz/blobs/uploads/",
            "/token",
            "/api/v1/me",
            "*",
            "",
            "//",
            "/v2/../../etc/passwd",
            f"/v2/{RAW_REPO}/manifests/t",
            f"/v2/{RAW_REPO}/blobs/{RAW_BLOB_DIGEST}",
            f"/v2/{RAW_REPO}/tags/list?n=",
            f"/v2/{RAW_REPO}/blobs/uploads/",
            f"/v2/{RAW_REPO}/referrers/{RAW_BLOB_DIGEST}",
        ]
    ),
    st.binary(max_size=80).map(lambda b: "/v2/" + b.decode("latin-1")),
    st.lists(
        st.sampled_from(
            [
                "%",
                "%ff",
                "%00",
                "%2e%2e",
                "%2F",
                "?",
                "#",
                ";",
                "\x00",
                "\t",
                "é",
                "manifests",
                "blobs",
                "uploads",
                "n=²",
                "&",
            ]
        ),
        max_size=12,
    ).map(lambda parts: "/v2/fuzz/" + "".join(parts)),
)
RAW_HEADER = st.one_of(
    st.tuples(TOKEN, TOKEN).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.sampled_from(
        [
            "Content-Length: -1",
            "Content-Length: 1, 2",
            "Content-Length: ٣",
            "Transfer-Encoding: x",
            "Transfer-Encoding: chunked",
            "Transfer-Encoding: chunked, chunked",
            "Host:",
            "Range: bytes=" + "9" * 5000 + "-",
            "Content-Range: 0-" + "9" * 400,
            "Authorization: Bearer " + "a." * 300,
            "Authorization: Basic ====",
            "Authorization: Basic " + "QQ" * 5000,
            " folded: continuation",
            "no colon here",
            "Expect: 100-continue",
            "Connection: upgrade",
            "Upgrade: h2c",
            "Accept: " + "*/*," * 900,
        ]
    ),
)
RAW_BODY = st.one_of(
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"0\r\n\r\n",
            b"zz\r\nabc\r\n0\r\n\r\n",
            b"5\r\nab\r\n",
            b"FFFFFFFFFFFFFFFFFFFF\r\nx\r\n",
            b"\x00" * 64,
        ]
    ),
)


@st.composite
def garbage_requests(draw: st.DrawFn) -> bytes:
    """A request line and headers in HTTP's shape, each part possibly wrong; or plain bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(min_size=1, max_size=400))
    method = draw(
        st.one_of(
            st.sampled_from(
                [
                    "GET",
                    "HEAD",
                    "PUT",
                    "PATCH",
                    "POST",
                    "DELETE",
                    "OPTIONS",
                    "CONNECT",
                    "TRACE",
                    "get",
                    "",
                ]
            ),
            TOKEN,
        )
    )
    version = draw(
        st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 x", "HTTP/9", ""])
    )
    lines = [f"{method} {draw(RAW_PATHS)} {version}", "Host: fuzz"]
    lines += draw(st.lists(RAW_HEADER, max_size=6))
    head = "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n"
    return head + draw(RAW_BODY)


def _exchange(port: int, data: bytes) -> bytes:
    """Send `data`, then read whatever comes back until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server may close on the first bad byte
            pass
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


@pytest.fixture(scope="module")
def raw_target(registry: RunningRegistry) -> str:
    """Something real for garbage to hit: an image and a blob, so ranges and tags are read."""
    with httpx.Client(base_url=registry.url, timeout=60.0) as http:
        push_image(http, RAW_REPO, "t")
        pushed = http.post(
            f"/v2/{RAW_REPO}/blobs/uploads/?digest={RAW_BLOB_DIGEST}", content=RAW_BLOB
        )
        assert pushed.status_code == 201
    return RAW_REPO


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=garbage_requests())
def test_finding_14_fuzz_protocol_garbage(
    registry: RunningRegistry, raw_target: str, data: bytes
) -> None:
    """Malformed request lines, headers, framing and bodies, or plain bytes: the server answers
    4xx or closes, never a 5xx, and keeps serving."""
    reply = _exchange(registry.port, data)
    for status_line in (line for line in reply.split(b"\r\n") if line.startswith(b"HTTP/")):
        code = status_line.split(b" ", 2)[1:2]
        assert not (code and code[0].startswith(b"5")), (data[:300], reply[:500])
    assert registry.proc is not None and registry.proc.poll() is None
    assert httpx.get(registry.url + "/v2/", timeout=10).status_code == 200
