"""The repository and image pages in a real browser, walking issue 17's story: an image pushed
with the `dockyard` client is listed; a README with a script payload renders without it (and
no dialog fires); public, a fresh anonymous context sees the page and skopeo pulls without
credentials; private again, the anonymous page is the "not found" page byte for byte; a tag
deleted in the page is gone from the registry API. And the pages offer only what the
registry API would accept, to each kind of viewer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Dialog, Page, Response

from tests.auth.helpers import AuthRegistry, basic
from tests.support.images import write_oci_image
from tests.support.peers import containers_env, require
from tests.web.conftest import add_user
from tests.web.test_browse import sign_in

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
    add_user(registry, "alice", ALICE)
    add_user(registry, "bob", BOB)
    add_user(registry, "carol", CAROL)
    registry.admin_process("org", "create", "acme", "--owner", "alice")
    registry.admin_process("org", "add-member", "acme", "carol", "--role", "maintainer")
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
    sign_in(alice, reg, "alice", ALICE)
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
    sign_in(carol, reg, "carol", CAROL)
    visit(carol, f"{reg.url}/r/acme/api")
    assert carol.get_by_role("link", name="Edit description and README").count() == 1
    assert carol.get_by_role("link", name="Delete tag v1").count() == 1
    assert carol.get_by_role("link", name="Make private").count() == 0
    visit(carol, f"{reg.url}/r/acme/api/-/visibility?to=private", status=403)
    # bob is nobody there: he reads a public repository and may change nothing.
    bob = new_context().new_page()
    sign_in(bob, reg, "bob", BOB)
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
    sign_in(alice, reg, "alice", ALICE)
    visit(alice, f"{reg.url}/r/acme/api")
    csrf = alice.evaluate("() => document.querySelector('input[name=csrf]').value")
    foreign = alice.request.post(
        f"{reg.url}/r/acme/api/-/visibility",
        form={"csrf": csrf, "visibility": "private"},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status == 403
    assert admin_api.get("/api/v1/repositories/acme/api").json()["visibility"] == "public"
