"""The opt-in start counter (tests/support/start_log.py): each start is one whole line in the
shared log, the test that asked for it named, and a start that fails is counted too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import start_log


class Peer:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def start(self) -> Peer:
        if self.fail:
            raise TimeoutError("did not answer")
        return self


def test_every_start_is_a_line_naming_its_kind_and_test(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "starts.tsv"
    monkeypatch.setenv("DOCKYARD_START_LOG", str(log))
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw7")
    monkeypatch.setitem(start_log._current, "test", "tests/x.py::test_y")
    monkeypatch.setattr(start_log, "COUNTS", start_log.Counter())
    monkeypatch.setattr(Peer, "start", start_log._counted("peer", Peer.start))

    peer = Peer()
    assert peer.start() is peer
    with pytest.raises(TimeoutError):
        Peer(fail=True).start()

    lines = [line.split("\t") for line in log.read_text().splitlines()]
    assert [(w, kind, test) for w, kind, _, test in lines] == [
        ("gw7", "peer", "tests/x.py::test_y"),
        ("gw7", "peer", "tests/x.py::test_y"),
    ]
    assert all(float(seconds) >= 0 for _, _, seconds, _ in lines)
    assert start_log.COUNTS == {"peer": 2}
