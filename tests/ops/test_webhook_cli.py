"""`dockyard webhook add|list|remove|deliveries` on a data folder: the secret printed once and
never listed, the refusals with their exit codes, nothing made without --init."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli.exits import USAGE
from dockyard.cli.main import app

runner = CliRunner()


def dockyard(*args: str):
    return runner.invoke(app, list(args))


def test_the_webhook_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = str(tmp_path / "data")
    missing = dockyard("webhook", "list", "--data-dir", folder)
    assert missing.exit_code == USAGE and not (tmp_path / "data").exists()
    refused = dockyard("webhook", "add", "http://127.0.0.1:9/hook", "--data-dir", folder, "--init")
    assert refused.exit_code == USAGE and "loopback or link-local" in refused.output
    monkeypatch.setenv("DOCKYARD_WEBHOOK_ALLOW_LOOPBACK", "true")
    for bad in (["--format", "xml"], ["--actions", "push,jump"], ["--repositories", ""]):
        answer = dockyard("webhook", "add", "http://127.0.0.1:9/", *bad, "--data-dir", folder)
        assert answer.exit_code == USAGE, bad
    added = dockyard(
        "webhook",
        "add",
        "http://127.0.0.1:9/hook",
        "--format",
        "cloudevents",
        "--repositories",
        "acme/*",
        "--actions",
        "push",
        "--data-dir",
        folder,
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.split("secret (shown once): ", 1)[1].split()[0]
    assert len(secret) >= 32
    listed = dockyard("webhook", "list", "--data-dir", folder)
    assert "http://127.0.0.1:9/hook\tcloudevents\tacme/*\tpush\tpending 0" in listed.stdout
    as_json = json.loads(dockyard("webhook", "list", "--json", "--data-dir", folder).stdout)
    assert [h["id"] for h in as_json] == [1] and secret not in json.dumps(as_json)
    assert dockyard("webhook", "deliveries", "1", "--data-dir", folder).exit_code == 0
    unknown = dockyard("webhook", "deliveries", "7", "--data-dir", folder)
    assert unknown.exit_code == USAGE and "no webhook 7" in unknown.output
    assert dockyard("webhook", "remove", "1", "--data-dir", folder).exit_code == 0
    again = dockyard("webhook", "remove", "1", "--data-dir", folder)
    assert again.exit_code == USAGE and "no webhook 1" in again.output
    assert json.loads(dockyard("webhook", "list", "--json", "--data-dir", folder).stdout) == []
