"""The pull commands' copy buttons in a real browser: on the image page, where a command
names a digest and is longer than a phone's screen, each button stays on its command's line,
to the right of the command box and inside the row, at phone and desktop widths."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, push_image

REPOSITORY = "admin/a-rather-long-repository-name/with-a-nested-path"
WIDTHS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}


@pytest.fixture(scope="module")
def reg(web_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    return web_registry()


def boxes(page: Page, row: int) -> dict[str, dict[str, float]]:
    """The bounding boxes of one command row, its command box and its copy button."""
    command = page.locator(".pull .command").nth(row)
    found = {}
    for part, locator in (
        ("row", command),
        ("code", command.locator("code")),
        ("button", command.locator("button.copy")),
    ):
        box = locator.bounding_box()
        assert box is not None, (row, part)
        found[part] = box
    return found


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_copy_buttons_stay_beside_their_long_commands(
    reg: AuthRegistry,
    width: str,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    sign_in: Callable[..., None],
) -> None:
    with httpx.Client(base_url=reg.url) as client:
        digest, _ = push_image(client, REPOSITORY, "v1")
    page = new_context(viewport=WIDTHS[width]).new_page()
    sign_in(page, reg.url, "admin", ADMIN_PASSWORD)
    visit(page, f"{reg.url}/r/{REPOSITORY}/-/image/{digest}")

    rows = page.locator(".pull .command")
    assert rows.count() == 3
    viewport = WIDTHS[width]["width"]
    for row in range(3):
        button = rows.nth(row).locator("button.copy")
        assert button.is_visible(), row  # copy.js revealed it: the clipboard is there
        b = boxes(page, row)
        code, copy, line = b["code"], b["button"], b["row"]
        # Beside the command box: to its right, not wrapped below it.
        assert copy["x"] >= code["x"] + code["width"] - 0.5, (width, row, b)
        assert copy["y"] < code["y"] + code["height"], (width, row, b)
        # Within its row, and the row within the screen (nothing scrolls sideways).
        assert copy["x"] + copy["width"] <= line["x"] + line["width"] + 0.5, (width, row, b)
        assert line["x"] + line["width"] <= viewport, (width, row, b)
        # The whole command is still there to read, wrapped inside its box.
        assert digest in rows.nth(row).locator("code").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport
