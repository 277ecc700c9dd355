"""Rounds take turns at going first (A B, B A, A B; A B C, B C A, C A B): no server always runs
right after another's writes."""

from __future__ import annotations

import io

from bench.cli import run_all
from bench.suite import Benchmark, Config, Metric, at_least


class FakeServer:
    version = command_line = ""
    pid = 0

    def __init__(self, key: str) -> None:
        self.key = self.title = key

    def alive(self) -> bool:
        return True


class Recorder(Benchmark):
    name = "recorder"
    metrics = (Metric("recorded", "recorded", "n", "higher", "any", at_least(0.0)),)

    def __init__(self, config: Config, order: list[tuple[int, str]]) -> None:
        super().__init__(config, None)  # type: ignore[arg-type]
        self.order = order

    def setup(self, server) -> None:
        pass

    def run(self, server, round_no: int) -> dict[str, float]:
        self.order.append((round_no, server.key))
        return {"recorded": float(round_no)}


def test_who_goes_first_alternates() -> None:
    order: list[tuple[int, str]] = []
    servers = [FakeServer("dockyard"), FakeServer("distribution")]
    values, errors = run_all(
        Config(rounds=4),
        servers,
        [Recorder(Config(), order)],  # type: ignore[arg-type]
        io.StringIO(),
    )
    assert errors == {}
    assert [key for _, key in order] == [
        "dockyard",
        "distribution",
        "distribution",
        "dockyard",
        "dockyard",
        "distribution",
        "distribution",
        "dockyard",
    ]
    assert values["recorded"] == {"dockyard": [1, 2, 3, 4], "distribution": [1, 2, 3, 4]}


def test_three_servers_take_every_place_in_turn() -> None:
    order: list[tuple[int, str]] = []
    servers = [FakeServer("sink"), FakeServer("dockyard"), FakeServer("distribution")]
    run_all(
        Config(rounds=3),
        servers,
        [Recorder(Config(), order)],  # type: ignore[arg-type]
        io.StringIO(),
    )
    rounds = [[key for n, key in order if n == r] for r in (1, 2, 3)]
    assert rounds == [
        ["sink", "dockyard", "distribution"],
        ["dockyard", "distribution", "sink"],
        ["distribution", "sink", "dockyard"],
    ]


class NotOnV3(Recorder):
    """A benchmark that, as the gc one, does not run on Distribution v3 at all."""

    name = "not_on_v3"
    metrics = (Metric("not_on_v3", "not on v3", "n", "higher"),)

    def applies(self, server) -> bool:
        return server.key != "distribution_v3"

    def run(self, server, round_no: int) -> dict[str, float]:
        return {"not_on_v3": 1.0}


def test_a_server_a_benchmark_does_not_run_on_shows_as_not_run_not_as_an_error() -> None:
    from bench.cli import build_results, table

    servers = [FakeServer("dockyard"), FakeServer("distribution_v3"), FakeServer("distribution")]
    bench = NotOnV3(Config(rounds=1), [])
    values, errors = run_all(Config(rounds=1), servers, [bench], io.StringIO())  # type: ignore[arg-type]
    assert not errors
    peak = {s.key: 0 for s in servers}
    results = build_results(
        Config(rounds=1),
        servers,
        [bench],
        values,
        errors,
        peak,
        peak,
        0.0,
        "",  # type: ignore[arg-type]
    )
    row = next(line for line in table(results).splitlines() if line.startswith("not on v3"))
    assert "error" not in row
