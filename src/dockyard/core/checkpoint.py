"""A transparency log's checkpoint: a signed note (golang.org/x/mod/sumdb/note format).

The note is text, a blank line, then signature lines `— <name> <base64(key hint || sig)>`.
The text is the origin line, the tree size and the base64 root hash, each ending in a newline,
and what the signature covers is exactly that text. The key hint is the first four bytes of
SHA-256 over the log key's DER, i.e. of the log ID, so a note names which key signed it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from dockyard.core import keys

MAX_NOTE_BYTES = 64 * 1024
MAX_SIGNATURE_LINES = 16
SIGNATURE_PREFIX = "\u2014 "


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    text: bytes
    # (signer name, key hint, signature)
    signatures: tuple[tuple[str, bytes, bytes], ...]


def parse(note: str) -> Checkpoint | None:
    """The checkpoint a note holds, or None when it is not a signed note with one."""
    if len(note) > MAX_NOTE_BYTES or "\n\n" not in note or not note.endswith("\n"):
        return None
    text, _, signature_block = note.partition("\n\n")
    lines = text.split("\n")
    if len(lines) < 3:
        return None
    origin, size_line, root_line = lines[:3]
    if (
        not origin
        or not (size_line.isascii() and size_line.isdigit())
        or (len(size_line) > 1 and size_line[0] == "0")
    ):
        return None
    try:
        root_hash = base64.b64decode(root_line, validate=True)
    except (binascii.Error, ValueError):
        return None
    signatures = []
    for line in signature_block.removesuffix("\n").split("\n")[:MAX_SIGNATURE_LINES]:
        if not line.startswith(SIGNATURE_PREFIX):
            return None
        name, _, encoded = line.removeprefix(SIGNATURE_PREFIX).rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not name or len(raw) <= 4:
            return None
        signatures.append((name, raw[:4], raw[4:]))
    if not signatures:
        return None
    return Checkpoint(origin, int(size_line), root_hash, (text + "\n").encode(), tuple(signatures))


def key_hint(key: keys.PublicKey) -> bytes:
    """The four bytes by which a note names the log key that signed it."""
    return bytes.fromhex(keys.fingerprint(key).removeprefix("sha256:"))[:4]


def signed_by(checkpoint: Checkpoint, key: keys.PublicKey) -> bool:
    """Whether one of the note's signatures, hinted for `key`, verifies with it."""
    hint = key_hint(key)
    return any(
        found == hint and keys.verify(key, signature, checkpoint.text)
        for _, found, signature in checkpoint.signatures
    )
