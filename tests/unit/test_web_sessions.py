"""The web session cookie and CSRF tokens, and where `next=` may send a browser: in-process."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.web import sessions
from dockyard.web.navigation import local_path

KEY = b"k" * 64


def test_a_session_survives_its_cookie() -> None:
    session = sessions.start("alice", 1234.5678901234)
    assert sessions.decode(sessions.encode(session, KEY), KEY) == session


def test_another_key_or_any_change_is_refused() -> None:
    value = sessions.encode(sessions.start("alice", 1.0), KEY)
    assert sessions.decode(value, b"x" * 64) is None
    body, _, mac = value.partition(".")
    assert sessions.decode(body[:-1] + ("A" if body[-1] != "A" else "B") + "." + mac, KEY) is None
    assert sessions.decode(body + "." + mac[:-1], KEY) is None
    assert sessions.decode(body, KEY) is None
    assert sessions.decode("", KEY) is None
    assert sessions.decode("." * 2000, KEY) is None


def test_an_expired_session_is_refused() -> None:
    old = sessions.start("alice", 1.0, now=time.time() - sessions.SESSION_SECONDS - 1)
    assert sessions.decode(sessions.encode(old, KEY), KEY) is None
    future = sessions.start("alice", 1.0, now=time.time() + 3600)
    assert sessions.decode(sessions.encode(future, KEY), KEY) is None


def test_csrf_tokens_are_bound_to_their_session() -> None:
    one, two = sessions.start(), sessions.start()
    assert sessions.csrf_token(one, KEY) == sessions.csrf_token(one, KEY)
    assert sessions.csrf_token(one, KEY) != sessions.csrf_token(two, KEY)
    assert sessions.csrf_token(one, KEY) != sessions.csrf_token(one, b"x" * 64)


@given(st.binary(max_size=300))
def test_no_cookie_value_breaks_decoding(raw: bytes) -> None:
    assert sessions.decode(raw.decode("latin-1"), KEY) is None


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example",
        "///evil.example",
        "https://evil.example",
        "https:evil.example",
        "HTTPS://evil.example",
        "javascript:alert(1)",
        "/\\evil.example",
        "\\/evil.example",
        "/%2f%2fevil.example",
        "/%2F/evil.example",
        "/%5cevil.example",
        "/%25%32%66%25%32%66evil.example",
        "/\r\n/evil.example",
        "/\x00",
        "evil.example",
        "",
        "/" + "a" * 3000,
    ],
)
def test_next_refuses_anything_but_a_local_path(target: str) -> None:
    assert local_path(target) == "/"


@pytest.mark.parametrize("target", ["/", "/u/alice", "/r/alice/app?tab=tags", "/a%20b"])
def test_next_keeps_local_paths(target: str) -> None:
    assert local_path(target) == target


@given(st.text(max_size=60))
def test_whatever_next_is_kept_stays_on_this_site(target: str) -> None:
    kept = local_path(target)
    assert kept.startswith("/") and not kept.startswith("//") and "\\" not in kept
