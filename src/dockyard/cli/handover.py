"""Replacing a worker without losing a connection, for a new TLS certificate (Linux).

granian's own replacement (`AbstractServer._respawn_workers`) starts the new worker, waits a
fixed interval and sends the old one SIGTERM. Each worker listens on a socket of its own,
bound with SO_REUSEPORT, and the kernel spreads new connections over them until the old
worker closes its socket. Stopping it then loses three kinds of connection (measured: 7 of
5,015 requests failed over 12 replacements, under loops of kept and new connections):

- the connections waiting in its socket's accept queue, which the kernel resets when the
  socket closes (unless the `net.ipv4.tcp_migrate_req` sysctl hands them to another socket);
- the TLS handshakes it has begun: its accept loop (`acceptor_impl_loop!` in granian's
  src/workers.rs) leaves on the stop signal and drops the TLS listener with the handshakes
  in it, and a connection it has just accepted is told to shut down before its first
  request is read ("Server disconnected without sending a response");
- its idle keep-alive connections, closed at once, on which a client may be sending.

So this module first takes new connections away from the old worker: a classic BPF program
on the socket group (SO_ATTACH_REUSEPORT_CBPF, unprivileged) sends every new connection to
the new worker's socket, the last to join the group. The old worker still accepts what is
queued for it and finishes its handshakes. It is told (SIGUSR2, `dockyard.api.reloading`) to
answer every request with `Connection: close`, so a kept connection ends cleanly after its
next answer; one that stays idle is closed by the server's own header timeout, as at any
time. Once the old worker holds no connection on the listening port, or after that timeout,
it is stopped as granian stops it; whatever it still holds is busy, and is finished.
Closing its socket leaves the program naming an index past the group's end, and the kernel
falls back to its usual spread; the program is then removed.

The program is set through a copy of the new worker's socket (pidfd_getfd, Linux 5.6; this
process is the workers' parent). Where any of that is missing, granian's own replacement
runs, with a warning.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("dockyard")

SO_ATTACH_REUSEPORT_CBPF = 51
SO_DETACH_REUSEPORT_BPF = 68
SYS_PIDFD_GETFD = 438  # the same number on every architecture Linux has
LISTEN = "0A"
TIME_WAIT = "06"
# How long a new worker may take to start listening (its application's start included).
START_TIMEOUT = 120.0
POLL = 0.05
SETTLE = 0.25


class HandoverUnavailable(OSError):
    """The kernel or the process cannot steer connections; granian's replacement runs."""


def port_sockets(port: int) -> tuple[dict[int, int], set[int]]:
    """The sockets on local `port`: listening ones (inode: connections in the accept
    queue) and the others holding a connection (inodes)."""
    listening: dict[int, int] = {}
    connected: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    if int(fields[1].rsplit(":", 1)[1], 16) != port:
                        continue
                    inode = int(fields[9])
                    if fields[3] == LISTEN:
                        listening[inode] = int(fields[4].split(":")[1], 16)
                    elif inode and fields[3] != TIME_WAIT:
                        connected.add(inode)
        except FileNotFoundError:  # no IPv6
            continue
    return listening, connected


def socket_fds(pid: int) -> dict[int, int]:
    """The process's sockets: inode -> its descriptor number there."""
    found = {}
    folder = f"/proc/{pid}/fd"
    for name in os.listdir(folder):
        try:
            target = os.readlink(f"{folder}/{name}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            found[int(target[8:-1])] = int(name)
    return found


def listener_of(pid: int, port: int) -> tuple[int, int] | None:
    """The worker's listening socket on `port` (inode, descriptor), or None yet."""
    listening, _ = port_sockets(port)
    for inode, fd in socket_fds(pid).items():
        if inode in listening:
            return inode, fd
    return None


def borrow(pid: int, fd: int) -> socket.socket:
    """A copy of another process's descriptor (the same socket)."""
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copy = libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        if copy < 0:
            raise HandoverUnavailable(ctypes.get_errno(), "pidfd_getfd")
    finally:
        os.close(pidfd)
    return socket.socket(fileno=copy)


def choose_index(index: int) -> tuple[bytes, Any]:
    """A reuseport program that gives every new connection to the socket at `index`: the
    `struct sock_fprog` to pass, and the instructions it points at (to keep alive until the
    kernel has copied them)."""
    instructions = ctypes.create_string_buffer(struct.pack("HBBI", 0x06, 0, 0, index))  # ret #k
    return struct.pack("@HP", 1, ctypes.addressof(instructions)), instructions


def steer_to(pid: int, port: int, group: set[int]) -> None:
    """Send every new connection on `port` to the process `pid`, whose socket joined the
    group last; `group` names every process with a socket in it (theirs are counted, not a
    listener of someone else's on another address with the same port)."""
    found = listener_of(pid, port)
    if found is None:
        raise HandoverUnavailable(0, "the new worker does not listen")
    listening, _ = port_sockets(port)
    members: set[int] = set()
    for member in group:
        with contextlib.suppress(FileNotFoundError):  # a process gone meanwhile
            members.update(inode for inode in socket_fds(member) if inode in listening)
    program, instructions = choose_index(len(members) - 1)
    with borrow(pid, found[1]) as sock:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, program)
    del instructions


def unsteer(pid: int, port: int) -> None:
    """Remove the program: the kernel spreads connections over the workers again."""
    found = listener_of(pid, port)
    if found is None:
        return
    with borrow(pid, found[1]) as sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
        except OSError as exc:
            log.warning("cannot remove the connection steering: %s", exc)


def holds_connections(pid: int, port: int) -> bool:
    """Whether the worker still has a connection on `port`, queued or open."""
    listening, connected = port_sockets(port)
    try:
        held = socket_fds(pid)
    except FileNotFoundError:  # the worker is gone
        return False
    return any(listening.get(inode) or inode in connected for inode in held)


def wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True


def replace_worker(
    server: Any, idx: int, spawn: Callable[[], Any], port: int, drain: float
) -> None:
    """Replace granian's worker `idx` by the one `spawn()` starts, moving new connections to
    it before the old one stops (granian's own words in the log, as its replacement)."""
    old = server.wrks[idx]
    server.respawned_wrks[idx] = time.monotonic()
    log.info("Respawning worker-%d", idx + 1)
    new = spawn()
    server.wrks[idx] = new
    new_pid, old_pid = new._id(), old._id()
    steered = False
    try:
        started = wait_until(
            lambda: not new.is_alive() or listener_of(new_pid, port) is not None, START_TIMEOUT
        )
        if started and new.is_alive():
            steer_to(new_pid, port, {worker._id() for worker in server.wrks} | {old_pid})
            steered = True
    except OSError as exc:
        log.warning("new connections still reach the old worker-%d: %s", idx + 1, exc)
    # A worker listens once its application has started, which set the SIGUSR2 handler; one
    # still starting would be killed by the signal.
    serving = False
    with contextlib.suppress(OSError):
        serving = listener_of(old_pid, port) is not None
    if steered and serving:
        with contextlib.suppress(ProcessLookupError):
            os.kill(old_pid, signal.SIGUSR2)  # Connection: close from now on
        # A connection whose SYN reached the old socket before the program was set is not
        # its yet (no inode in /proc/net/tcp) until the client's ACK: an instant on any
        # link, given this long.
        time.sleep(SETTLE)
        # After the header timeout, a connection the old worker still holds is busy. A stop
        # of the server meanwhile goes on to it.
        wait_until(lambda: server.interrupt_signal or not holds_connections(old_pid, port), drain)
    log.info("Stopping old worker-%d", idx + 1)
    old.terminate()
    old.join(server.workers_kill_timeout)
    # join returns when the worker's end of its sentinel pipe closes, which can be a moment
    # before the process can be reaped.
    wait_until(lambda: not old.is_alive(), 1.0)
    if server.workers_kill_timeout and old.is_alive():
        log.warning("Killing old worker-%d after it refused to gracefully stop", idx + 1)
        old.kill()
        old.join()
    log.info("Stopped old worker-%d", idx + 1)
    if steered:
        try:
            unsteer(new_pid, port)
        except OSError as exc:
            log.warning("cannot remove the connection steering: %s", exc)
