"""The error table is complete: every answer has its own row, and no handler or service picks
a status of its own (`core/errors.py` promises it; this holds the code to it)."""

from __future__ import annotations

import ast
from pathlib import Path

from dockyard.core.errors import ErrorCode, RegistryError

SRC = Path(__file__).resolve().parents[2] / "src" / "dockyard"
# The fourteen codes of the Distribution Spec: /v2/ answers with nothing else.
SPEC_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS",
}  # fmt: skip


def test_every_row_is_a_distinct_code_and_status() -> None:
    pairs = [(row.code, row.status) for row in ErrorCode]
    assert len(pairs) == len(set(pairs)), sorted(p for p in pairs if pairs.count(p) > 1)
    assert len(list(ErrorCode)) == len(ErrorCode.__members__)  # no row is another's alias


def test_the_spec_codes_keep_the_spec_statuses() -> None:
    for name in SPEC_CODES:
        row = ErrorCode[name]
        assert row.code == name
    assert ErrorCode.UNSUPPORTED.status == 405 and ErrorCode.DENIED.status == 403


def test_rows_are_well_formed() -> None:
    for row in ErrorCode:
        assert row.code.isupper() and 400 <= row.status <= 599 and row.message, row


def test_the_body_names_the_code_and_the_status_is_the_rows() -> None:
    error = RegistryError(ErrorCode.MANIFEST_TOO_LARGE, detail={"size": 5})
    assert error.status == 413
    assert error.to_json() == {
        "errors": [
            {"code": "MANIFEST_INVALID", "message": "manifest exceeds 4 MiB", "detail": {"size": 5}}
        ]
    }


def _status_overrides(source: str) -> list[int]:
    """Lines where a `...Error(...)` call passes `status=`."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        name = callee.attr if isinstance(callee, ast.Attribute) else getattr(callee, "id", "")
        if name.endswith("Error") and any(k.arg == "status" for k in node.keywords):
            lines.append(node.lineno)
    return lines


def test_the_scan_sees_an_override() -> None:
    source = "x = 1\nraise errors.RegistryError(ErrorCode.DENIED, 'in use',\n    status=409)\n"
    assert _status_overrides(source) == [2]
    assert _status_overrides("Response(status=200)\nRegistryError(ErrorCode.DENIED)\n") == []


def test_no_handler_or_service_chooses_a_status() -> None:
    modules = [
        path
        for folder in ("api", "auth", "core", "proxy", "service")
        for path in sorted((SRC / folder).rglob("*.py"))
    ]
    assert any(p.parent.name == "routes" for p in modules)
    overrides = [
        f"{path.relative_to(SRC)}:{line}"
        for path in modules
        for line in _status_overrides(path.read_text())
    ]
    assert overrides == []
