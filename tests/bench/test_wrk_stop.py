"""`bench.load.WrkUntilStopped` stops wrk even when its first SIGINT is lost: wrk's handler only
raises a flag and its main thread sleeps until the end of `-d`, so a SIGINT the kernel gives to a
load thread left it running for the rest of the hour (CI: "wrk did not stop on SIGINT")."""

from __future__ import annotations

import sys
from pathlib import Path

from bench import load

# A stand-in for wrk that takes no notice of the first SIGINT (as wrk does when a load thread
# takes it) and reports, as wrk does, on the second.
MISSES_THE_FIRST = """
import signal, sys, time
seen = []
signal.signal(signal.SIGINT, lambda *_: seen.append(1))
while len(seen) < 2:
    time.sleep(0.01)
print('''Running 1h test @ http://x
  1 threads and 1 connections
  Latency Distribution
     50%    1.00ms
     75%    1.00ms
     90%    1.00ms
     99%    2.00ms
  1000 requests in 1.00s, 1.00MB read
Requests/sec:   1000.00
Transfer/sec:      1.00MB''')
"""


def test_a_wrk_that_misses_the_first_sigint_still_stops_and_reports(tmp_path: Path) -> None:
    script = tmp_path / "fake_wrk.py"
    script.write_text(MISSES_THE_FIRST)
    run = load.WrkUntilStopped("http://127.0.0.1:9/")
    # Started with SIGINT ignored, so that Python installs no handler of its own: the stand-in
    # catches SIGINT (what the runner waits for) only once its own handler is set.
    run.cmd = ["sh", "-c", 'trap "" INT; exec "$0" "$1"', sys.executable, str(script)]
    with run:
        pass
    assert run.result is not None
    assert run.result.requests == 1000 and run.result.p99_ms == 2.0
