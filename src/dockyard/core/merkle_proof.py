"""RFC 6962 Merkle inclusion proofs, as a transparency log (Rekor) hands them out.

A leaf is hashed as SHA-256(0x00 || entry), an interior node as SHA-256(0x01 || left || right).
The audit path climbs from the leaf at `index` of a tree of `size` leaves to its root; the
algorithm is RFC 9162 section 2.1.3.2, which also works for trees that are not a power of two.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

# A tree of 2**64 leaves has a path of at most 64 hashes.
MAX_PATH = 64


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root the audit path leads to from `leaf`, or None when the path cannot belong to a
    leaf at `index` of a tree of `size` leaves (too short, too long, index out of range)."""
    if not 0 <= index < size or len(path) > MAX_PATH:
        return None
    position, last = index, size - 1
    node = leaf
    for sibling in path:
        if len(sibling) != hashlib.sha256().digest_size or last == 0:
            return None
        if position % 2 == 1 or position == last:
            node = node_hash(sibling, node)
            # A right-most node without a sibling at some levels moves up unchanged.
            while position % 2 == 0 and position != 0:
                position, last = position >> 1, last >> 1
        else:
            node = node_hash(node, sibling)
        position, last = position >> 1, last >> 1
    return node if last == 0 else None
