"""The Referrers Tag Schema of the distribution-spec's `main` branch, with the spec's own
examples: algorithm cut to 32 characters, encoded part to 64, other characters as `-`."""

from __future__ import annotations

from dockyard.core.digest import referrers_tag
from dockyard.core.names import is_valid_tag


def test_the_spec_examples() -> None:
    assert referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
    assert referrers_tag("sha512:" + "a" * 128) == "sha512-" + "a" * 64
    odd = (
        "test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall"
        "+truncation:alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOf"
        "CharactersToExcerciseEncodedTruncation"
    )
    assert referrers_tag(odd) == (
        "test-algorithm-using-algorithm-s-"
        "alsoSome-InTheEncodedSectionToShowHyphenReplacementAndLotsAndLot"
    )


def test_every_referrers_tag_is_a_valid_tag() -> None:
    for digest in ("sha256:" + "0" * 64, "sha512:" + "f" * 128, "a+b.c_d:x/y\\z:é" + "q" * 300):
        tag = referrers_tag(digest)
        assert is_valid_tag(tag) and len(tag) <= 97, tag
