"""The key a manifest GET is counted under for pull events: Host and User-Agent as
`Request.headers.get` reads them, found in one pass over the raw headers (every GET pays it when
pull events are on; a missing header used to cost a KeyError raised and caught)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from starlette.requests import Request

from dockyard.api.event_origin import note_pull

MANIFEST = ("sha256:" + "cd" * 32, "application/vnd.oci.image.manifest.v1+json", 512)


def key_of(headers: list[tuple[bytes, bytes]], reference: str = "v1") -> tuple[Any, ...]:
    keys: list[tuple[Any, ...]] = []
    events = SimpleNamespace(pulled=lambda key, origin: keys.append(key))
    request = Request(
        {"type": "http", "method": "GET", "headers": headers, "client": ("10.1.2.3", 40000)}
    )
    caller = SimpleNamespace(principal=SimpleNamespace(name="alice"))
    note_pull(request, cast(Any, caller), cast(Any, events), "team/app", MANIFEST, reference)
    (key,) = keys
    return key


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"host", b"registry.example:5000")],
        [(b"user-agent", b"containerd/1.7")],
        [(b"user-agent", b"a"), (b"host", b"h1"), (b"host", b"h2"), (b"user-agent", b"b")],
        [(b"host", b""), (b"user-agent", b"")],
        [(b"host", b"x" * 300), (b"user-agent", "caf\u00e9/1 ".encode("latin-1") * 200)],
        [(b"accept", b"*/*"), (b"authorization", b"Bearer t"), (b"user-agent", b"\xff\xfe")],
    ],
)
def test_the_key_reads_the_headers_as_starlette_does(headers: list[tuple[bytes, bytes]]) -> None:
    read = Request({"type": "http", "headers": headers}).headers
    key = key_of(headers)
    assert key[:7] == ("team/app", *MANIFEST, "v1", "alice", "10.1.2.3")
    assert key[7:] == (read.get("host", "")[:255], read.get("user-agent", "")[:512])


def test_a_digest_reference_counts_without_a_tag() -> None:
    assert key_of([], reference=MANIFEST[0])[4] is None


def test_noting_a_pull_builds_no_headers_object(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(self: Request) -> None:
        raise AssertionError("Request.headers built for a pull")

    monkeypatch.setattr(Request, "headers", property(refused))
    assert key_of([(b"host", b"h")])[7] == "h"
