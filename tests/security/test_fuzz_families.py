"""Issue 13, finding 14: families of hostile input the general fuzz test (tests/http) rarely
draws, each of which once answered a plain-text 500. Deep nesting (up to 100,000 levels) in
every JSON a client sends; digits of other scripts (superscripts, Arabic-Indic, full-width)
and enormous numbers (up to 10,000 digits, past int()'s 4,300-digit limit) wherever the
registry reads a number.

Every answer must be a 4xx (or a success) with the spec's JSON error body, never a 5xx.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.push import OCI_MANIFEST, error_code, push_image, unique_repo
from tests.support.server import RunningRegistry

SPEC_CODES = {
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
}
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
