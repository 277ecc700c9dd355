"""How many connections the server holds open: the open-file limit and granian's own caps.

granian accepts at most `backpressure` connections per worker and, by default, that is its
listen backlog (1024) divided among the workers: with two workers, the 1,025th keep-alive
connection (idle ones count: docker keeps a pool of them per registry) waited in the kernel's
queue, unanswered, until an idle one was closed by the header timeout. An idle connection costs
the server about ten KiB, so the cap that matters is the open-file limit, which is per process:
each worker may hold nearly as many connections as it may open files.
"""

from __future__ import annotations

import resource

# Descriptors each worker keeps for what is not a connection: blobs being read or written,
# database connections, logs, the event loop's own.
RESERVED_FILES = 512
# Pending connections the kernel queues before granian accepts them (it caps this at
# net.core.somaxconn).
LISTEN_BACKLOG = 4096
# A ceiling for systems whose hard limit is enormous or infinite.
MOST_FILES = 1 << 20


def raise_open_file_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit (workers inherit it);
    the soft limit in effect after.

    The soft limit is often 1,024 (systemd's default, many shells'), far below what a server
    with thousands of clients needs, while the hard limit allows more; Go servers such as
    CNCF Distribution raise it the same way at start. granian raises it too, but only once it
    starts, after the cap on connections per worker is computed from what this returns."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MOST_FILES if hard == resource.RLIM_INFINITY else min(hard, MOST_FILES)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return MOST_FILES if soft == resource.RLIM_INFINITY else soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ValueError, OSError):
        return soft  # a container may forbid it: serve within what there is
    return wanted


def connections_per_worker(open_files: int) -> int:
    """The most connections one worker accepts at once: what its open files allow after
    `RESERVED_FILES`; past it new connections wait in the backlog rather than fail to open."""
    return max(64, open_files - RESERVED_FILES)
