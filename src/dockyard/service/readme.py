"""A README's Markdown turned into HTML that is safe to put in a page anyone may open.

Two maintained libraries, each doing the job it is built and reviewed for, rather than code of
our own: markdown-it-py parses the Markdown (its CommonMark preset, with GitHub's tables added,
since READMEs written for Docker Hub and GitHub use them), and nh3 (Python bindings to ammonia,
the Rust sanitiser built on html5ever's spec-conformant parser) cleans what comes out.

Raw HTML in the Markdown is let through the parser on purpose (READMEs use `<details>`, `<br>`,
`<kbd>`) and everything rests on the sanitiser, which parses the HTML as a browser would and keeps
only an allow-list: formatting and structure tags, a few attributes each, and `http`, `https`
and `mailto` URLs (a relative one stays relative). So no script, no `on*` handler, no `style`,
no `id` or `name` (which could shadow the page's own elements), no form, frame or object, and no
`javascript:`, `vbscript:` or `data:` URL survives, whatever the Markdown holds. Links get
`rel="noopener nofollow ugc"`: the page never vouches for what a README links to.

Images become links to them (named by their alt text), and `<img>` is not kept: the pages'
Content-Security-Policy loads images only from the registry itself, and a README's images would
otherwise be requests to any server its author names, made by every viewer's browser.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.token import Token

from dockyard.core.bounded_cache import BoundedCache

TAGS = frozenset(
    {
        *("a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl"),
        *("dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "ins", "kbd", "li"),
        *("ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup"),
        *("table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul", "var", "wbr"),
    }
)
ATTRIBUTES = {
    "*": {"title", "lang"},  # on every allowed tag
    "a": {"href"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "details": {"open"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener nofollow ugc"
# Elements whose content goes with them: a script's text shown as text is noise at best.
DROPPED_WITH_CONTENT = frozenset({"script", "style"})


def _image_as_link(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    from markdown_it.common.utils import escapeHtml

    token = tokens[idx]
    source = str(token.attrGet("src") or "")
    text = renderer.renderInlineAsText(token.children or [], options, env) or source
    return f'<a href="{escapeHtml(source)}">{escapeHtml(text)}</a>'


@functools.cache
def _markdown() -> MarkdownIt:
    """The parser, made when the first README is rendered: a server that shows none (or runs
    without its web pages) never loads it."""
    from markdown_it import MarkdownIt

    parser = MarkdownIt("commonmark", {"html": True}).enable("table")
    parser.add_render_rule("image", _image_as_link)
    return parser


# A README is read far more often than written: rendered once per content while it is kept.
_rendered: BoundedCache[str, str] = BoundedCache(
    256, max_weight=32 * 1024 * 1024, weigh=len, max_entry_weight=8 * 1024 * 1024
)


def sanitize_html(html: str) -> str:
    """Only the allow-listed tags, attributes and URL schemes of `html`, links marked as
    not ours."""
    # Loaded with the first README rendered, not by the server's start: loaded there, its
    # library's pages were the serving process's alone, as no worker renders a README until
    # a page asks for one (peak memory, bench/README.md).
    import nh3

    return nh3.clean(
        html,
        tags=set(TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )


def render_markdown(text: str) -> str:
    """The README as sanitised HTML ("" for an empty one)."""
    if not text.strip():
        return ""
    # A lone surrogate (JSON strings may hold one) is no character, and no UTF-8: shown as "?".
    encoded = text.encode("utf-8", "replace")
    text = encoded.decode("utf-8")
    key = hashlib.sha256(encoded).hexdigest()
    html = _rendered.get(key)
    if html is None:
        html = sanitize_html(_markdown().render(text))
        _rendered.put(key, html)
    return html
