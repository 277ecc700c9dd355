"""The JSON bodies of listings (`/tags/list`, `/v2/_catalog`): the bytes `json.dumps` gives
with compact separators and `ensure_ascii=False`, joined directly when no name needs escaping.

Names the registry accepts never do (the spec's grammar has no quote, backslash or control
character), so a listing of thousands of names is one join and one scan instead of the
encoder's work per name; anything else goes through the encoder, byte for byte the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

# The bytes JSON escapes when it keeps non-ASCII text as it is, but the quote (counted apart:
# the joined names hold the quotes that separate them). In UTF-8 every byte of a character
# beyond ASCII is 0x80 or more, so such a byte in the encoded names is that character itself.
_ESCAPED = bytes(range(0x20)) + b"\\"


def _plain(data: bytes, quotes: int = 0) -> bool:
    """Whether the UTF-8 `data` needs no escaping, apart from `quotes` quotes of our own.
    One pass of `bytes.translate` (a regular expression's scan of a 5,000-tag list was most
    of its body's CPU: bench/README.md)."""
    return data.count(b'"') == quotes and len(data.translate(None, _ESCAPED)) == len(data)


def listing_json(fields: dict[str, str], key: str, names: Sequence[str]) -> bytes:
    """`{...fields, key: names}` as compact JSON, UTF-8."""
    joined = '","'.join(names).encode()
    if not _plain(joined, 2 * (len(names) - 1) if names else 0) or not all(
        _plain(part.encode()) for part in (*fields, *fields.values(), key)
    ):
        listed: dict[str, object] = {**fields, key: list(names)}
        return json.dumps(listed, ensure_ascii=False, separators=(",", ":")).encode()
    head = "".join(f'"{field}":"{value}",' for field, value in fields.items())
    items = b'"' + joined + b'"' if names else b""
    return f'{{{head}"{key}":['.encode() + items + b"]}"
