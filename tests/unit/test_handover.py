"""The kernel side of a worker handover (`dockyard.cli.handover`), on real sockets: the
program sends every new connection to the socket that joined the group last, removing it
spreads them again, and a process's connections on the port are seen until they end."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from dockyard.cli.handover import holds_connections, port_sockets, steer_to, unsteer
from tests.support.server import free_port


@contextmanager
def group_of_three(port: int) -> Iterator[list[socket.socket]]:
    """Three listening sockets sharing `port` as granian's workers do (SO_REUSEPORT)."""
    with ExitStack() as stack:
        members = []
        for _ in range(3):
            sock = stack.enter_context(socket.socket())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
            sock.setblocking(False)
            members.append(sock)
        yield members


def queued(listener: socket.socket) -> list[socket.socket]:
    """Accept every connection waiting on `listener`."""
    accepted = []
    while True:
        try:
            accepted.append(listener.accept()[0])
        except BlockingIOError:
            return accepted


def connect(port: int, count: int) -> list[socket.socket]:
    """`count` connections, each waited for until the listening side has it queued (the
    client's connect returns before its ACK is taken in)."""
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
    eventually(lambda: sum(port_sockets(port)[0].values()) == count)
    return clients


def eventually(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_steering_sends_every_new_connection_to_the_last_socket_until_removed() -> None:
    port = free_port()
    with group_of_three(port) as members, ExitStack() as stack:
        steer_to(os.getpid(), port, {os.getpid()})
        clients = connect(port, 20)
        for client in clients:
            stack.callback(client.close)
        listening, _ = port_sockets(port)
        assert sorted(listening.values()) == [0, 0, 20]  # all queued on one socket
        first, second, last = (queued(member) for member in members)
        assert (len(first), len(second), len(last)) == (0, 0, 20)
        for accepted in last:
            stack.callback(accepted.close)

        unsteer(os.getpid(), port)
        clients = connect(port, 60)
        for client in clients:
            stack.callback(client.close)
        spread = [queued(member) for member in members]
        for accepted in spread:
            for sock in accepted:
                stack.callback(sock.close)
        # Hashed over three sockets, 60 connections all missing one: about 1 in 10^10.
        assert all(spread), [len(accepted) for accepted in spread]


def test_connections_of_a_process_on_the_port_are_seen_until_closed() -> None:
    port = free_port()
    with group_of_three(port) as members:
        assert not holds_connections(os.getpid(), port)
        (client,) = connect(port, 1)
        assert holds_connections(os.getpid(), port)  # queued
        accepted = [sock for member in members for sock in queued(member)]
        assert len(accepted) == 1
        assert holds_connections(os.getpid(), port)  # open
        accepted[0].close()
        client.close()
        eventually(lambda: not holds_connections(os.getpid(), port))
