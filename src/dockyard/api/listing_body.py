"""The JSON bodies of listings (`/tags/list`, `/v2/_catalog`): the bytes `json.dumps` gives
with compact separators and `ensure_ascii=False`, joined directly when no name needs escaping.

Names the registry accepts never do (the spec's grammar has no quote, backslash or control
character), so a listing of thousands of names is one join and one scan instead of the
encoder's work per name; anything else goes through the encoder, byte for byte the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

# What JSON escapes when it keeps non-ASCII text as it is, but the quote (counted apart: the
# joined names hold the quotes that separate them).
_ESCAPED = re.compile(r"[\\\x00-\x1f]")


def _plain(text: str, quotes: int = 0) -> bool:
    """Whether `text` needs no escaping, apart from `quotes` quotes of our own."""
    return text.count('"') == quotes and _ESCAPED.search(text) is None


def listing_json(fields: dict[str, str], key: str, names: Sequence[str]) -> bytes:
    """`{...fields, key: names}` as compact JSON, UTF-8."""
    joined = '","'.join(names)
    if not _plain(joined, 2 * (len(names) - 1) if names else 0) or not all(
        _plain(part) for part in (*fields, *fields.values(), key)
    ):
        listed: dict[str, object] = {**fields, key: list(names)}
        return json.dumps(listed, ensure_ascii=False, separators=(",", ":")).encode()
    head = "".join(f'"{field}":"{value}",' for field, value in fields.items())
    items = f'"{joined}"' if names else ""
    return f'{{{head}"{key}":[{items}]}}'.encode()
