"""README rendering: whatever the Markdown holds, the HTML keeps only allow-listed tags and
attributes, no script, no event handler, no style and no script or data URL.

`data/xss_vectors.json` is a corpus of classic XSS vectors (script tags in their disguises,
event handlers, encoded and whitespace-split `javascript:` URLs, SVG and MathML tricks, CSS
expressions, meta refreshes, DOM clobbering, and the same through Markdown's own links and
images), written for this project. Each is rendered on its own and inside ordinary Markdown.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.service.readme import (
    ATTRIBUTES,
    LINK_REL,
    TAGS,
    URL_SCHEMES,
    render_markdown,
    sanitize_html,
)

VECTORS: list[str] = json.loads(
    (Path(__file__).parent / "data" / "xss_vectors.json").read_text("utf-8")
)
URL_ATTRIBUTES = {"href", "src", "cite", "action", "formaction", "background", "srcset"}
# What a browser ignores in a URL (the URL Standard's parser): C0 controls and spaces at either
# end, and tabs and newlines anywhere.
_URL_ENDS = "".join(chr(c) for c in range(0x21))
_URL_BREAKS = re.compile(r"[\t\n\r]")


class _Elements(HTMLParser):
    """Every start tag of a fragment, with its attributes as a browser would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))

    handle_startendtag = handle_starttag


def problems(html: str) -> list[str]:
    """What is wrong with `html` as the output of the sanitiser; [] when nothing is."""
    found = []
    if re.search(r"<\s*/?\s*script", html, re.IGNORECASE):
        found.append("script tag")
    parser = _Elements()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.found:
        if tag not in TAGS:
            found.append(f"tag {tag}")
        for name, value in attrs:
            if name.startswith("on"):
                found.append(f"event handler {name} on {tag}")
            elif name == "rel" and tag == "a":
                if value != LINK_REL:
                    found.append(f"rel {value!r}")
            elif name not in ATTRIBUTES.get(tag, set()) | ATTRIBUTES["*"]:
                found.append(f"attribute {name} on {tag}")
            if name in URL_ATTRIBUTES and value is not None:
                url = _URL_BREAKS.sub("", value.strip(_URL_ENDS)).lower()
                scheme = re.match(r"([a-z][a-z0-9+.\-]*):", url)
                if scheme and scheme.group(1) not in URL_SCHEMES:
                    found.append(f"{scheme.group(1)}: URL in {name} of {tag}")
        if tag == "a" and ("rel", LINK_REL) not in attrs:
            found.append("link without rel")
    return found


def test_the_corpus_is_large_and_distinct() -> None:
    assert len(VECTORS) >= 50
    assert len(set(VECTORS)) == len(VECTORS)


@pytest.mark.parametrize("vector", VECTORS)
def test_no_vector_survives(vector: str) -> None:
    for markdown in (vector, f"# Title\n\nSome *text*.\n\n{vector}\n\nMore [text](/x).\n"):
        html = render_markdown(markdown)
        assert problems(html) == [], (vector, html)
    assert problems(sanitize_html(vector)) == [], vector


def test_the_checker_sees_what_it_looks_for() -> None:
    """The test's own eyes: unsanitised vectors are caught (or the corpus tests nothing)."""
    caught = [v for v in VECTORS if problems(v)]
    assert len(caught) >= 50


def test_ordinary_markdown_keeps_its_meaning() -> None:
    html = render_markdown(
        "# App\n\nRun `docker run app`:\n\n```sh\ndocker run -p 80:80 app\n```\n\n"
        "| flag | meaning |\n|---|---|\n| -p | ports |\n\n"
        '- [docs](https://example.com/docs "Docs")\n- <mailto:ops@example.com>\n'
        "- [relative](docs/README.md)\n\n![logo](https://example.com/logo.png)\n\n"
        "<details><summary>More</summary>\n\nHidden *text*\n\n</details>\n"
    )
    assert "<h1>App</h1>" in html
    assert "<code>docker run app</code>" in html
    assert "<pre><code>docker run -p 80:80 app\n</code></pre>" in html
    assert "<th>flag</th>" in html and "<td>ports</td>" in html
    assert f'<a href="https://example.com/docs" title="Docs" rel="{LINK_REL}">docs</a>' in html
    assert 'href="mailto:ops@example.com"' in html
    assert 'href="docs/README.md"' in html
    # Images are links: no request leaves a viewer's browser for a README's image.
    assert f'<a href="https://example.com/logo.png" rel="{LINK_REL}">logo</a>' in html
    assert "<img" not in render_markdown('<img src="https://example.com/x.png" alt="x">')
    assert "<details><summary>More</summary>" in html and "<em>text</em>" in html
    assert problems(html) == []


def test_text_that_looks_like_script_is_shown_as_text() -> None:
    html = render_markdown("Use `<script>` tags with care: &lt;script&gt; <b>bold</b>")
    assert "&lt;script&gt;" in html and "<b>bold</b>" in html
    assert problems(html) == []


def test_empty_and_odd_input() -> None:
    assert render_markdown("") == ""
    assert render_markdown("  \n\t") == ""
    assert problems(render_markdown("\x00<scr\x00ipt>alert(1)</script>")) == []
    assert problems(render_markdown("lone \ud800 surrogate <a href=javascript:x>y</a>")) == []


# Pieces that make HTML and Markdown constructs, mixed with arbitrary text.
PIECES = st.sampled_from(
    [
        "<",
        ">",
        "</",
        "/>",
        '"',
        "'",
        "`",
        "=",
        " ",
        "\n",
        "\n\n",
        "\t",
        "&",
        "#",
        ";",
        "&#",
        "&#x",
        ":",
        "script",
        "SCRIPT",
        "javascript:",
        "jav&#x09;ascript:",
        "vbscript:",
        "data:",
        "on",
        "onerror=",
        "onload=",
        "href=",
        "src=",
        "style=",
        "<a ",
        "<img ",
        "<svg ",
        "<iframe ",
        "<form ",
        "<object ",
        "<math>",
        "<style>",
        "<script>",
        "</script>",
        "[",
        "](",
        ")",
        "![",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "|",
        "---",
        "```",
        "> ",
        "- ",
        "<details ",
        "ontoggle=",
        "alert(1)",
        "expression(",
    ]
)
MARKDOWN = st.lists(st.one_of(PIECES, st.text(max_size=8)), max_size=60).map("".join)


@given(MARKDOWN)
def test_arbitrary_markdown_never_yields_script(markdown: str) -> None:
    html = render_markdown(markdown)
    assert problems(html) == [], (markdown, html)
    assert "<script" not in html.lower()


@given(st.text(max_size=300))
def test_arbitrary_text_never_yields_script(text: str) -> None:
    assert problems(render_markdown(text)) == []
