"""The repository and image pages in a real browser, walking issue 17's story: an image pushed
with the `dockyard` client is listed; a README with a script payload renders without it (and
no dialog fires); public, a fresh anonymous context sees the page and skopeo pulls without
credentials; private again, the anonymous page is the "not found" page byte for byte; a tag
deleted in the page is gone from the registry API. And the pages offer only what the
registry API would accept, to each kind of viewer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, Response

from tests.auth.helpers import (
    LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    AuthRegistry,
    basic,
    push_image,
    put_manifest,
    sha256,
    upload_blob,
)
from tests.support.images import write_oci_image
from tests.support.peers import containers_env, require
from tests.web.conftest import add_accounts

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ALICE, BOB, CAROL = "alice-Pa55word", "bob-Pa55word!", "carol-Pa55word"
SCRIPT_README = (
    "# Hello from alice/app\n\n"
    "Run it.\n\n"
    '<script>alert("readme script")</script>\n\n'
    '<img src="x" onerror="alert(\'onerror\')">\n\n'
    "[click me](javascript:alert('link'))\n\n"
    '<a href="javascript:alert(1)" onclick="alert(2)">another</a>\n\n'
    '| a | b |\n|---|---|\n| <iframe src="javascript:alert(3)"></iframe> | 2 |\n'
)


def dockyard(*args: str, home: Path, input: str | None = None) -> subprocess.CompletedProcess:
    """`python -m dockyard ARGS` with a private credentials folder."""
    env = {**os.environ, "DOCKER_CONFIG": str(home / "docker"), "HOME": str(home)}
    env.pop("REGISTRY_AUTH_FILE", None)
    env.pop("XDG_RUNTIME_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=300,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.fixture(scope="module")
def reg(web_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = web_registry()
    add_accounts(
        registry,
        {"alice": ALICE, "bob": BOB, "carol": CAROL},
        ("org", "create", "acme", "--owner", "alice"),
        ("org", "add-member", "acme", "carol", "--role", "maintainer"),
    )
    return registry


@pytest.fixture(scope="module")
def alice_home(reg: AuthRegistry, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A client home where `dockyard login` saved alice's credentials."""
    home = tmp_path_factory.mktemp("alice-home")
    dockyard("login", reg.host, "-u", "alice", "--password-stdin", input=ALICE + "\n", home=home)
    return home


def push(reg: AuthRegistry, home: Path, repository: str, tag: str, seed: str) -> str:
    layout = home / f"layout-{seed}"
    image = write_oci_image(layout, tag, seed=seed, labels={"org.example.seed": seed})
    dockyard("push", "--quiet", f"oci:{layout}:{tag}", f"{reg.host}/{repository}:{tag}", home=home)
    return image.manifest_digest


def tags_listed(page: Page) -> list[str]:
    return page.locator("table.tags tbody tr td:first-child").all_inner_texts()


def test_the_story_of_a_repository_page(
    reg: AuthRegistry,
    alice_home: Path,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
    tmp_path: Path,
) -> None:
    digest = push(reg, alice_home, "alice/app", "v1", "one")
    push(reg, alice_home, "alice/app", "v2", "two")
    alice = new_context().new_page()
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    alice.on("dialog", refuse)
    sign_in(alice, reg.url, "alice", ALICE)
    visit(alice, f"{reg.url}/r/alice/app")
    assert tags_listed(alice) == ["v2", "v1"]
    assert alice.locator(".badge").inner_text() == "Private"
    assert f"docker pull {reg.host}/alice/app:v2" in alice.locator(".pull").inner_text()

    # The image page, reached from the tag.
    alice.get_by_role("link", name="v1", exact=True).click()
    check(alice)
    assert digest in alice.locator(".facts").first.inner_text()
    assert alice.locator("h2", has_text="Layers").count() == 1
    assert "org.example.seed" in alice.locator("main").inner_text()

    # A README with a script payload: rendered, without any of it running.
    visit(alice, f"{reg.url}/r/alice/app/-/edit")
    alice.get_by_label("Description").fill("Alice's app")
    alice.get_by_label("README").fill(SCRIPT_README)
    alice.get_by_role("button", name="Save").click()
    alice.wait_for_url(f"{reg.url}/r/alice/app")
    check(alice)
    readme = alice.locator(".markdown")
    assert readme.locator("h1").inner_text() == "Hello from alice/app"
    assert readme.locator("script, iframe, [onerror], [onclick]").count() == 0
    assert readme.locator("a[href^='javascript']").count() == 0
    assert "Alice's app" in alice.locator(".description").inner_text()
    alice.reload()
    alice.wait_for_timeout(300)
    assert dialogs == []

    # Public, after a confirmation that says what it means.
    alice.get_by_role("link", name="Make public").click()
    check(alice)
    assert "Anyone can pull it" in alice.locator("main").inner_text()
    alice.get_by_role("button", name="Make it public").click()
    alice.wait_for_url(f"{reg.url}/r/alice/app")
    assert alice.locator(".badge").inner_text() == "Public"

    anonymous = new_context().new_page()
    visit(anonymous, f"{reg.url}/r/alice/app")
    assert tags_listed(anonymous) == ["v2", "v1"]
    assert anonymous.get_by_role("link", name="Edit description and README").count() == 0
    assert anonymous.get_by_role("link", name="Make private").count() == 0
    require("skopeo")
    with containers_env(tmp_path / "containers", [reg.host]) as ce:
        ce.skopeo(
            "copy",
            "--src-tls-verify=false",
            "--src-no-creds",
            f"docker://{reg.host}/alice/app:v1",
            f"oci:{tmp_path / 'pulled'}:v1",
        )
    assert (tmp_path / "pulled" / "index.json").is_file()

    # Private again: to the anonymous viewer, the page is the "not found" page, byte for byte.
    visit(alice, f"{reg.url}/r/alice/app/-/visibility?to=private")
    alice.get_by_role("button", name="Make it private").click()
    alice.wait_for_url(f"{reg.url}/r/alice/app")
    hidden = visit(anonymous, f"{reg.url}/r/alice/app", status=404)
    hidden_body = hidden.body()
    missing_body = visit(anonymous, f"{reg.url}/r/alice/nothing-here", status=404).body()
    assert hidden_body == missing_body
    for path in ("/-/image/v1", f"/-/image/{digest}", f"/-/raw/{digest}", "/-/edit"):
        answer = anonymous.goto(f"{reg.url}/r/alice/app{path}")
        assert answer is not None and answer.body() == missing_body, path
    with httpx.Client(base_url=reg.url) as fresh:
        assert fresh.get("/r/alice/app").content == fresh.get("/r/alice/nothing-here").content

    # A tag deleted in the page is gone from the registry API.
    visit(alice, f"{reg.url}/r/alice/app")
    alice.get_by_role("link", name="Delete tag v2").click()
    check(alice)
    assert "will no longer pull" in alice.locator("main").inner_text()
    alice.get_by_role("button", name="Delete tag").click()
    alice.wait_for_url(f"{reg.url}/r/alice/app")
    assert tags_listed(alice) == ["v1"]
    listed = httpx.get(
        f"{reg.url}/v2/alice/app/tags/list", headers={"Authorization": basic("alice", ALICE)}
    )
    assert listed.json()["tags"] == ["v1"]
    assert dialogs == []


def test_each_viewer_is_offered_what_the_registry_api_would_accept(
    reg: AuthRegistry,
    alice_home: Path,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    sign_in: Callable[..., None],
) -> None:
    push(reg, alice_home, "acme/api", "v1", "acme")
    admin_api = httpx.Client(base_url=reg.url, headers={"Authorization": basic("alice", ALICE)})
    assert (
        admin_api.put(
            "/api/v1/repositories/acme/api/visibility", json={"visibility": "public"}
        ).status_code
        == 200
    )
    # carol maintains acme: edits and deletes, but visibility is for owners.
    carol = new_context().new_page()
    sign_in(carol, reg.url, "carol", CAROL)
    visit(carol, f"{reg.url}/r/acme/api")
    assert carol.get_by_role("link", name="Edit description and README").count() == 1
    assert carol.get_by_role("link", name="Delete tag v1").count() == 1
    assert carol.get_by_role("link", name="Make private").count() == 0
    visit(carol, f"{reg.url}/r/acme/api/-/visibility?to=private", status=403)
    # bob is nobody there: he reads a public repository and may change nothing.
    bob = new_context().new_page()
    sign_in(bob, reg.url, "bob", BOB)
    visit(bob, f"{reg.url}/r/acme/api")
    assert bob.get_by_role("link", name="Edit description and README").count() == 0
    assert bob.locator("a.danger-link").count() == 0
    visit(bob, f"{reg.url}/r/acme/api/-/edit", status=403)
    visit(bob, f"{reg.url}/r/acme/api/-/delete?reference=v1", status=403)
    # Even a hand-made form with bob's own CSRF token is refused.
    csrf = bob.evaluate("() => document.querySelector('input[name=csrf]').value")
    answer = bob.request.post(
        f"{reg.url}/r/acme/api/-/delete",
        form={"csrf": csrf, "reference": "v1"},
        headers={"Origin": reg.url},
    )
    assert answer.status == 403
    assert admin_api.get("/v2/acme/api/tags/list").json()["tags"] == ["v1"]
    # A form from another site is refused, whoever's session rides along.
    alice = new_context().new_page()
    sign_in(alice, reg.url, "alice", ALICE)
    visit(alice, f"{reg.url}/r/acme/api")
    csrf = alice.evaluate("() => document.querySelector('input[name=csrf]').value")
    foreign = alice.request.post(
        f"{reg.url}/r/acme/api/-/visibility",
        form={"csrf": csrf, "visibility": "private"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    assert admin_api.get("/api/v1/repositories/acme/api").json()["visibility"] == "public"


def _blob(client: httpx.Client, repository: str, data: bytes, auth: str) -> dict:
    response = upload_blob(client, repository, data, auth)
    assert response.status_code == 201, response.text
    return {"mediaType": LAYER, "digest": sha256(data), "size": len(data)}


def push_index(client: httpx.Client, repository: str, tag: str, auth: str) -> tuple[str, list]:
    """A two-platform index, each image with a layer of its own size: (digest, children)."""
    children = []
    for arch, variant, layer_size in (("amd64", None, 3000), ("arm64", "v8", 5000)):
        config = json.dumps({"os": "linux", "architecture": arch, "n": tag}).encode()
        config_descriptor = {**_blob(client, repository, config, auth), "mediaType": OCI_CONFIG}
        layer = _blob(client, repository, os.urandom(layer_size), auth)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": config_descriptor,
                "layers": [layer],
            }
        ).encode()
        digest = sha256(manifest)
        assert put_manifest(client, repository, digest, manifest, auth).status_code == 201
        platform = {
            "os": "linux",
            "architecture": arch,
            **({"variant": variant} if variant else {}),
        }
        children.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(manifest),
                "platform": platform,
                "stored": len(config) + layer_size,
            }
        )
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{k: v for k, v in c.items() if k != "stored"} for c in children],
        }
    ).encode()
    answer = client.put(
        f"/v2/{repository}/manifests/{tag}",
        content=index,
        headers={"Content-Type": OCI_INDEX, "Authorization": auth},
    )
    assert answer.status_code == 201, answer.text
    return answer.headers["Docker-Content-Digest"], children


def test_platforms_manifest_deletion_and_refused_forms(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
) -> None:
    auth = basic("alice", ALICE)
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        index, children = push_index(client, "alice/multi", "latest", auth)
        for tag in ("one", "two"):
            push_image(client, "alice/multi", tag, auth)
    alice = new_context().new_page()
    sign_in(alice, reg.url, "alice", ALICE)
    visit(alice, f"{reg.url}/r/alice/multi")
    row = alice.locator("table.tags tbody tr", has_text="latest")
    assert "multi-platform" in row.inner_text()
    platforms = row.locator(".platforms li").all_inner_texts()
    assert [p.split(" ")[0] for p in platforms] == ["linux/amd64", "linux/arm64/v8"]
    for shown, child in zip(platforms, children, strict=True):
        assert f"{child['stored'] / 1024:.1f} KiB" in shown
    alice.get_by_role("link", name="latest", exact=True).click()
    check(alice)
    assert alice.locator("h2", has_text="Platforms").count() == 1
    assert index in alice.locator(".facts").first.inner_text()
    # Raw, byte for byte what the registry serves, as text a browser only shows.
    raw = alice.request.get(f"{reg.url}/r/alice/multi/-/raw/{index}")
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        served = client.get(
            f"/v2/alice/multi/manifests/{index}",
            headers={"Authorization": auth, "Accept": OCI_INDEX},
        )
        config_digest = json.loads(
            client.get(
                "/v2/alice/multi/manifests/one",
                headers={"Authorization": auth, "Accept": OCI_MANIFEST},
            ).content
        )["config"]["digest"]
        config = client.get(
            f"/v2/alice/multi/blobs/{config_digest}", headers={"Authorization": auth}
        ).content
    assert raw.status == 200 and raw.body() == served.content
    assert raw.headers["content-type"].startswith("text/plain")
    assert raw.headers["x-content-type-options"] == "nosniff"
    assert raw.headers["x-media-type"] == OCI_INDEX
    raw_config = alice.request.get(f"{reg.url}/r/alice/multi/-/raw/one/config")
    assert raw_config.status == 200 and raw_config.body() == config
    assert alice.request.get(f"{reg.url}/r/alice/multi/-/raw/{index}/config").status == 404

    # The manifest of tag "two", deleted from its image page: the manifest and its tag go.
    visit(alice, f"{reg.url}/r/alice/multi/-/image/two")
    digest = alice.locator(".facts dd code").first.inner_text()
    alice.get_by_role("link", name="Delete this manifest").click()
    check(alice)
    assert "every tag naming it: two" in alice.locator("main").inner_text()
    alice.get_by_role("button", name="Delete manifest").click()
    alice.wait_for_url(f"{reg.url}/r/alice/multi")
    with httpx.Client(base_url=reg.url, timeout=30) as client:
        gone = client.get(
            f"/v2/alice/multi/manifests/{digest}",
            headers={"Authorization": auth, "Accept": OCI_MANIFEST},
        )
        assert gone.status_code == 404
        assert client.get("/v2/alice/multi/tags/list", headers={"Authorization": auth}).json()[
            "tags"
        ] == ["latest", "one"]

    # A form the service refuses comes back with what was typed and why.
    visit(alice, f"{reg.url}/r/alice/multi/-/edit")
    alice.get_by_label("Description").evaluate("e => e.removeAttribute('maxlength')")
    alice.get_by_label("Description").fill("x" * 300)
    alice.get_by_label("README").fill("# Kept\n")
    alice.get_by_role("button", name="Save").click()
    check(alice)
    assert "at most 200 characters" in alice.locator(".notice").inner_text()
    assert alice.get_by_label("README").input_value() == "# Kept\n"

    # Too large a README, and concurrent deletions of one tag, through alice's own session.
    csrf = alice.evaluate("() => document.querySelector('input[name=csrf]').value")
    cookies = {c["name"]: c["value"] for c in alice.context.cookies()}
    with httpx.Client(base_url=reg.url, timeout=60, cookies=cookies) as client:
        too_large = client.post(
            "/r/alice/multi/-/edit",
            data={"csrf": csrf, "description": "", "readme": "x" * (1024 * 1024 + 1)},
            headers={"Origin": reg.url},
        )
        assert too_large.status_code == 413
        assert "at most 1048576 bytes" in too_large.text

        def delete_one(_: int) -> int:
            return client.post(
                "/r/alice/multi/-/delete",
                data={"csrf": csrf, "reference": "one"},
                headers={"Origin": reg.url},
            ).status_code

        with ThreadPoolExecutor(6) as pool:
            answers = sorted(pool.map(delete_one, range(6)))
        assert answers.count(303) == 1 and set(answers) <= {303, 404}, answers
        assert client.get("/v2/alice/multi/tags/list", headers={"Authorization": auth}).json()[
            "tags"
        ] == ["latest"]


def test_without_accounts_anyone_edits_and_no_visibility_is_offered(
    web_registry: Callable[..., AuthRegistry],
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
) -> None:
    """As `/v2/` and `/api/v1` without accounts: everything is everyone's, and there is no
    visibility to switch (the API has no such call there)."""
    open_registry = web_registry(args=("--no-auth",))
    with httpx.Client(base_url=open_registry.url, timeout=30) as client:
        push_image(client, "team/app", "v1")  # credentials sent are ignored without accounts
    page = new_context().new_page()
    visit(page, f"{open_registry.url}/r/team/app")
    assert tags_listed(page) == ["v1"]
    assert page.get_by_role("link", name="Make public").count() == 0
    assert page.get_by_role("link", name="Make private").count() == 0
    visit(page, f"{open_registry.url}/r/team/app/-/visibility?to=public", status=403)
    visit(page, f"{open_registry.url}/r/team/app/-/edit")
    page.get_by_label("README").fill("## Team app\n\n**bold**")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(f"{open_registry.url}/r/team/app")
    check(page)
    assert page.locator(".markdown h2").inner_text() == "Team app"
    assert page.locator(".markdown strong").inner_text() == "bold"
