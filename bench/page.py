"""The repository page benchmark's set-up: a Dockyard with accounts, one public repository of
many tags (most naming one image, the newest some multi-arch indexes, so the first page shows
platforms), and a signed-in browser's session cookie.

The same repository goes to Distribution (no accounts there, nor any page), whose tag list is
timed beside Dockyard's as the reference a peer can give.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx

from bench.ops import (
    OCI_MANIFEST,
    BenchError,
    Client,
    SmallImage,
    push_image,
    sha256,
    small_image,
)
from bench.servers import Dockyard, Server

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ADMIN_PASSWORD = "bench-admin-password"
REPOSITORY = "bench/page"
PLATFORMS = (("linux", "amd64", ""), ("linux", "arm64", "v8"), ("linux", "arm", "v7"))
# Limits off: the benchmark times pages, not the throttles. The cap on one address's requests
# in progress too: a page's requests that wrk left in flight when its run ended are still
# counted when the next run opens its connections, and the overflow would answer 429.
QUIET = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
    "DOCKYARD_MAX_REQUESTS_PER_CLIENT": "0",
}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def new_dockyard(template: Server, workdir: Path) -> Dockyard:
    """A Dockyard like the runner's (its extra arguments and environment) with accounts on,
    on a fresh port."""
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = {}
    if isinstance(template, Dockyard):
        extra_args, extra_env = template.extra_args, dict(template.extra_env)
    return Dockyard(
        template.key,
        f"{template.title} (accounts on)",
        workdir,
        extra_args=(*extra_args, "--auth"),
        extra_env={**extra_env, **QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )


def admin_auth() -> httpx.BasicAuth:
    return httpx.BasicAuth("admin", ADMIN_PASSWORD)


def tag_names(tags: int, indexes: int) -> tuple[list[str], list[str]]:
    """The plain tags (one image) and the index tags; `tags` names in all."""
    indexes = min(indexes, max(0, tags - 1))
    return [f"tag-{i:05d}" for i in range(tags - indexes)], [
        f"multi-{i:03d}" for i in range(indexes)
    ]


def filter_for(plain: list[str]) -> str:
    """A `?q=` text a few of the plain tags contain: the first seven characters of one three
    fifths of the way down, which with five-digit numbers matches up to a hundred tags."""
    return plain[len(plain) * 3 // 5][:7]


def index_for(children: list[SmallImage]) -> bytes:
    """An OCI index naming each child manifest under one of PLATFORMS."""
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": sha256(child.manifest),
                    "size": len(child.manifest),
                    "platform": {"os": os_, "architecture": arch}
                    | ({"variant": variant} if variant else {}),
                }
                for child, (os_, arch, variant) in zip(children, PLATFORMS, strict=False)
            ],
        },
        separators=(",", ":"),
    ).encode()


def fill(
    base_url: str,
    tags: int,
    indexes: int,
    parallel: Callable[[list[Callable[[Client], object]]], None],
    auth: httpx.Auth | None = None,
) -> None:
    """Push REPOSITORY: `tags` tags in all, the plain ones first, then the indexes (each of
    len(PLATFORMS) images of their own), so the newest tags, the first page, are indexes."""
    plain, multi = tag_names(tags, indexes)
    image = small_image(label="page")
    with Client(base_url) as client:
        client.http.auth = auth
        push_image(client, REPOSITORY, plain[0], image)
    parallel(
        [(lambda c, t=tag: c.put_manifest(REPOSITORY, t, image.manifest)) for tag in plain[1:]]
    )
    with Client(base_url) as client:
        client.http.auth = auth
        for tag in multi:
            children = [small_image(label=f"{tag}-{p[1]}") for p in PLATFORMS]
            for child in children:
                push_image(client, REPOSITORY, sha256(child.manifest), child)
            client.put_manifest(REPOSITORY, tag, index_for(children), OCI_INDEX)


def make_public(base_url: str) -> None:
    response = httpx.put(
        f"{base_url}/api/v1/repositories/{REPOSITORY}/visibility",
        json={"visibility": "public"},
        auth=admin_auth(),
        timeout=60,
    )
    if response.status_code != 200:
        raise BenchError(f"making {REPOSITORY} public answered {response.status_code}")


def sign_in(base_url: str) -> str:
    """Sign in as the administrator through the form, as a browser does: the Cookie header
    its later requests carry."""
    with httpx.Client(base_url=base_url, timeout=60) as browser:
        form = browser.get("/sign-in")
        found = _CSRF.search(form.text)
        if form.status_code != 200 or not found:
            raise BenchError(f"GET /sign-in answered {form.status_code} without a form")
        answer = browser.post(
            "/sign-in",
            data={
                "csrf": found.group(1),
                "next": "/",
                "username": "admin",
                "password": ADMIN_PASSWORD,
            },
        )
        if answer.status_code != 303:
            raise BenchError(f"signing in answered {answer.status_code}")
        return "; ".join(f"{name}={value}" for name, value in browser.cookies.items())


def check_page(base_url: str, path: str, cookie: str | None, expect: list[str]) -> None:
    """The page the load generator will ask for answers 200 and shows what it must: tags,
    platforms, and whether the viewer is signed in."""
    headers = {"Cookie": cookie} if cookie else {}
    response = httpx.get(base_url + path, headers=headers, timeout=60)
    if response.status_code != 200:
        raise BenchError(f"GET {path} answered {response.status_code}")
    signed_in = "Sign out" in response.text
    if signed_in != bool(cookie):
        raise BenchError(f"GET {path}: signed in {signed_in}, expected {bool(cookie)}")
    missing = [text for text in expect if text not in response.text]
    if missing:
        raise BenchError(f"GET {path}: the page lacks {missing}")
