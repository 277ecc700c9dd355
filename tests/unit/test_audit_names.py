"""What a client sends as a name reaches the audit log as printable text of a bounded length:
PostgreSQL refuses NUL in text, and a failed login records the username as sent
(tests/security/test_redteam_auth.py::test_attack_odd_names_get_the_specs_errors_on_postgresql
answered 500 on /token before)."""

from __future__ import annotations

from dockyard.service.audit import OBJECT_LENGTH, RECORDED_LENGTH, Actor, AuditService, as_recorded


def test_control_characters_are_kept_as_escapes_and_names_cut_to_their_column() -> None:
    assert as_recorded("a\x00b") == "a\\x00b"
    assert as_recorded("line\nforged") == "line\\nforged"
    assert as_recorded("ok-name") == "ok-name"
    assert as_recorded(None) is None
    assert as_recorded("n" * 300) == "n" * RECORDED_LENGTH
    assert as_recorded("x\x00" * 400, OBJECT_LENGTH) is not None
    assert len(as_recorded("x\x00" * 400, OBJECT_LENGTH) or "") == OBJECT_LENGTH


def test_an_entry_holds_no_control_character_whoever_sent_it() -> None:
    service = AuditService(meta=None)  # type: ignore[arg-type]  # entry() reads no store
    entry = service.entry(
        "login.failed",
        "nul\x00",
        repository="r\x00",
        actor=Actor("a\x00", "t\x00", "127.0.0.1"),
    )
    for text in (entry.object, entry.account, entry.token, entry.repository):
        assert text is not None and text.isprintable() and "\x00" not in text
