"""Browser fixtures for the web pages: Debian's Chromium driven by Playwright, axe-core
injected into every page a test visits, and a PNG screenshot of each under
tests/web/screenshots/ (git-ignored).

`browser` is one Chromium per test module; `new_context()` opens a fresh context (its own
cookies: one per viewer); `visit(page, url)` loads a page, screenshots it and asserts that
axe finds no serious or critical violation; `check(page)` does the same for the page a
click led to; `sign_in(page, base_url, user, password)` signs in through the form.
`web_registry(...)` starts a `dockyard serve --auth` for the module.

Chromium and axe-core come from `.ci/install-peers.sh` (never `playwright install`: the
machine's network is closed to browser downloads). A missing one fails the tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, sync_playwright

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry
from tests.support.server import RunningRegistry, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HERE = Path(__file__).parent
AXE = HERE / "node" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = HERE / "screenshots"
BLOCKING_IMPACTS = {"serious", "critical"}
# Limits off unless a test turns them on, as in tests/auth.
QUIET = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
}


@pytest.fixture(scope="session")
def axe_source() -> str:
    assert AXE.is_file(), (
        f"{AXE} is missing: run `bash .ci/install-peers.sh` (it installs axe-core)"
    )
    return AXE.read_text()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's synchronous API keeps an event loop running
    in this thread while it is open, which other tests' `asyncio.run` would trip over."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `bash .ci/install-peers.sh`"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        launched.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """`new_context(**options)`: a fresh browser context (cookies of its own), closed at the
    end of the test. `viewport={"width": 390, "height": 844}` makes a phone."""
    opened: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        context = browser.new_context(**options)
        opened.append(context)
        return context

    yield make
    for context in opened:
        context.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:80] or "root"


@pytest.fixture
def check(request: pytest.FixtureRequest, axe_source: str) -> Callable[[Page], None]:
    """Screenshot the page now shown and assert axe finds no serious or critical violation."""
    shots = {"n": 0}
    test_name = _slug(request.node.name)

    def run(page: Page) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        shots["n"] += 1
        path = page.url.split("://", 1)[-1].split("/", 1)[-1]
        name = f"{test_name}-{shots['n']:02d}-{_slug(path)}.png"
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)
        # Evaluated through the DevTools protocol: the page's Content-Security-Policy, which
        # refuses inline script, does not apply, and the page itself is left as served.
        page.evaluate(axe_source)
        result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        blocking = [
            f"{v['id']} ({v['impact']}): {v['help']} at "
            + ", ".join(str(node["target"]) for node in v["nodes"][:3])
            for v in result["violations"]
            if v["impact"] in BLOCKING_IMPACTS
        ]
        assert not blocking, f"axe on {page.url}:\n" + "\n".join(blocking)

    return run


@pytest.fixture
def visit(check: Callable[[Page], None]) -> Callable[..., Response]:
    """`visit(page, url, status=200)`: load, assert the status, screenshot, axe."""

    def go(page: Page, url: str, status: int = 200) -> Response:
        response = page.goto(url)
        assert response is not None
        assert response.status == status, (url, response.status)
        check(page)
        return response

    return go


@pytest.fixture
def sign_in(visit: Callable[..., Response], check: Callable[[Page], None]) -> Callable[..., None]:
    """`sign_in(page, base_url, user, password)`: through the sign-in form, both pages checked
    like any other; ends on the home page."""

    def run(page: Page, base_url: str, user: str, password: str) -> None:
        visit(page, f"{base_url}/sign-in")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base_url}/")
        check(page)

    return run


def add_user(registry: AuthRegistry, name: str, password: str, *extra: str) -> None:
    """`dockyard user add` in a process of its own: Playwright's loop runs in this one."""
    registry.admin_process("user", "add", name, "--password-stdin", *extra, input=password + "\n")


# Run in one process of its own by `add_accounts`: each command through the same Typer app as
# `python -m dockyard`, one after another, stopping at the first that fails.
_BATCH = """\
import json, sys
from typer.testing import CliRunner
from dockyard.cli.main import app
for args, stdin in json.load(sys.stdin):
    result = CliRunner().invoke(app, args, input=stdin)
    if result.exit_code != 0:
        sys.exit(f"{args}: exit {result.exit_code}: {result.output}{result.exception!r}")
"""


def add_accounts(registry: AuthRegistry, users: dict[str, str], *commands: tuple[str, ...]) -> None:
    """`dockyard user add` for each of `users` (name -> password), then each of `commands`
    (`("org", "create", ...)`), all in one process of its own (Playwright's loop runs in
    this one): one interpreter start for a module's accounts, not one per command."""
    data_dir = ["--data-dir", str(registry.data_dir)]
    batch: list[tuple[list[str], str | None]] = [
        (["user", "add", name, "--password-stdin", *data_dir], password + "\n")
        for name, password in users.items()
    ]
    batch += [([*command, *data_dir], None) for command in commands]
    result = subprocess.run(
        [sys.executable, "-c", _BATCH],
        input=json.dumps(batch),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (result.stdout, result.stderr)


def create_token(registry: AuthRegistry, user: str, name: str, scope: str) -> str:
    out = registry.admin_process(
        "token", "create", "--user", user, "--name", name, "--scope", scope
    ).stdout
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("dyt_"), out
    return secret


@pytest.fixture(scope="module")
def web_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AuthRegistry]]:
    """`web_registry(env={...}, args=(...))`: a `dockyard serve --auth` (admin's password
    ADMIN_PASSWORD) for this module; `args=("--no-auth",)` serves without accounts."""
    started: list[RunningRegistry] = []

    def start(
        env: dict[str, str] | None = None, args: tuple[str, ...] = ("--auth",)
    ) -> AuthRegistry:
        base = tmp_path_factory.mktemp("web-registry")
        server = RunningRegistry(
            data_dir=base / "data",
            port=free_port(),
            args=args,
            env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})},
            log_dir=base,
        ).start()
        started.append(server)
        return AuthRegistry(server)

    yield start
    for server in started:
        server.stop()
